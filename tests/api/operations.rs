//! Operations: retention (old rows pruned, newer kept, the profile's
//! lifetime figures unchanged), backup while ingesting and restore with
//! erasures replayed, and a PostgreSQL dump restored and served.

use customer_context::{
    domain::{CustomerId, Timestamp},
    proto::{self as pb, customer_ref::Identity},
    retention::{self, Retention},
    store::{AccessEntry, Aged},
};

use crate::{
    fixtures::*,
    harness::{Backend, Key, TestApp, fresh_database, spawn_app},
    on_both_backends,
};

on_both_backends!(
    retention_prunes_what_is_older_and_keeps_lifetime_figures,
    a_database_of_the_previous_release_migrates_and_serves_the_same_context,
);

const DAY: i64 = 24 * 60;

async fn seed_history(app: &TestApp, who: &str) {
    seed_catalog(app).await;
    let mut ingest = app.ingest.clone();
    ingest
        .upsert_customers(pb::UpsertCustomersRequest {
            customers: vec![customer(
                who,
                "Ret Ention",
                &format!("{who}@example.com"),
                "",
                "",
            )],
        })
        .await
        .expect("customer");
    let events = vec![
        view(&format!("{who}-old"), who, "mouse", 200 * DAY),
        view(&format!("{who}-new"), who, "socks", DAY),
    ];
    ingest
        .record_events(pb::RecordEventsRequest { events })
        .await
        .expect("events");
    let orders = vec![
        order(
            &format!("{who}-o-old"),
            who,
            400 * DAY,
            vec![line("socks", 2, 1900)],
        ),
        order(
            &format!("{who}-o-new"),
            who,
            10 * DAY,
            vec![line("mouse", 1, 2900)],
        ),
    ];
    ingest
        .record_orders(pb::RecordOrdersRequest { orders })
        .await
        .expect("orders");
    ingest
        .record_returns(pb::RecordReturnsRequest {
            returns: vec![return_(
                &format!("{who}-r-old"),
                &format!("{who}-o-old"),
                who,
                "socks",
                390 * DAY,
            )],
        })
        .await
        .expect("returns");
    let tickets = vec![
        ticket(
            &format!("{who}-t-closed"),
            who,
            pb::TicketStatus::Closed,
            "",
            400 * DAY,
        ),
        ticket(
            &format!("{who}-t-open"),
            who,
            pb::TicketStatus::Open,
            "",
            400 * DAY,
        ),
    ];
    ingest
        .upsert_tickets(pb::UpsertTicketsRequest { tickets })
        .await
        .expect("tickets");
}

/// The ids of the customer's stored rows in `table`, by `column`.
async fn stored(app: &TestApp, who: &str, table: &str, column: &str) -> Vec<String> {
    let export = app
        .store
        .export_customer(&CustomerId::parse(who).expect("an id"))
        .await
        .expect("an export");
    let mut ids: Vec<String> = export
        .into_iter()
        .filter(|(t, _)| t == table)
        .flat_map(|(_, rows)| rows)
        .filter_map(|r| r.get(column).and_then(|v| v.as_str()).map(str::to_owned))
        .collect();
    ids.sort();
    ids
}

fn access(entry_id: &str, who: &str, days_ago: i64) -> AccessEntry {
    AccessEntry {
        entry_id: entry_id.into(),
        at: Timestamp::now().plus_millis(-days_ago * 86_400_000),
        key_id: "k".into(),
        key_name: "test".into(),
        role: "agent".into(),
        rpc: "/customer_context.v1.CustomerContextService/GetCustomerContext".into(),
        customer_id: Some(who.into()),
        anonymous_id: None,
    }
}

async fn retention_prunes_what_is_older_and_keeps_lifetime_figures(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let who = "c-retained";
    seed_history(&app, who).await;
    app.store
        .append_access(&[access("a-old", who, 500), access("a-new", who, 2)])
        .await
        .expect("access log");
    let before = context_of(&app, Identity::CustomerId(who.into())).await;
    let browsed = |c: &pb::CustomerContext| -> Vec<String> {
        let mut ids: Vec<String> = c
            .recent_browsing
            .iter()
            .filter_map(|b| b.product.as_ref().map(|p| p.product_id.clone()))
            .collect();
        ids.sort();
        ids
    };
    assert_eq!(
        browsed(&before),
        ["mouse", "socks"],
        "both views are within the year's lookback"
    );

    // The defaults keep orders and tickets: only the old view and the old
    // access-log entry go.
    let done = retention::prune(
        &app.store,
        &Retention::default(),
        Timestamp::now(),
        |_, _| {},
    )
    .await
    .expect("a pass");
    let deleted = |kind| done.iter().find(|p| p.kind == kind).map(|p| p.deleted);
    assert_eq!(deleted(Aged::Events), Some(1));
    assert_eq!(deleted(Aged::AccessLog), Some(1));
    assert_eq!(deleted(Aged::Purchases), None, "orders are kept by default");
    assert_eq!(
        stored(&app, who, "events", "message_id").await,
        [format!("{who}-new")]
    );
    let log = stored(&app, who, "access_log", "entry_id").await;
    assert!(
        log.contains(&"a-new".to_owned()) && !log.contains(&"a-old".to_owned()),
        "{log:?}"
    );
    assert_eq!(stored(&app, who, "orders", "order_id").await.len(), 2);

    // Configured: a year of orders and tickets.
    let policy = Retention {
        purchases: Some(365),
        tickets: Some(365),
        ..Retention::default()
    };
    retention::prune(&app.store, &policy, Timestamp::now(), |_, _| {})
        .await
        .expect("a pass");
    assert_eq!(
        stored(&app, who, "orders", "order_id").await,
        [format!("{who}-o-new")]
    );
    assert_eq!(
        stored(&app, who, "order_lines", "order_id").await,
        [format!("{who}-o-new")]
    );
    assert!(
        stored(&app, who, "returns", "return_id").await.is_empty(),
        "the old order's return went with it"
    );
    assert_eq!(
        stored(&app, who, "tickets", "ticket_id").await,
        [format!("{who}-t-open")],
        "a closed ticket past the window goes, an open one stays"
    );

    // A second pass finds nothing left to delete.
    let again = retention::prune(&app.store, &policy, Timestamp::now(), |_, _| {})
        .await
        .expect("a pass");
    assert!(again.iter().all(|p| p.deleted == 0), "{again:?}");

    // The context, from a replica that did not remember the customer (one
    // that did serves its remembered reads until the hour turns): the old
    // view is gone, the new one stays; the profile's lifetime figures (kept
    // on the customer) are as they were.
    let (_, mut replica) = app.replica().await;
    let after = replica
        .get_customer_context(by(Identity::CustomerId(who.into())))
        .await
        .expect("a context")
        .into_inner();
    assert_eq!(browsed(&after), ["socks"]);
    let (p0, p1) = (
        before.profile.expect("a profile"),
        after.profile.expect("a profile"),
    );
    assert_eq!(p1.order_count, p0.order_count);
    assert_eq!(p1.units_purchased, p0.units_purchased);
    assert_eq!(p1.units_returned, p0.units_returned);
    assert_eq!(p1.lifetime_spend, p0.lifetime_spend);
    assert_eq!(p1.customer_since, p0.customer_since);
    assert_eq!(p1.last_order_at, p0.last_order_at);
    assert_eq!(
        after
            .recent_orders
            .iter()
            .map(|o| o.order_id.as_str())
            .collect::<Vec<_>>(),
        [format!("{who}-o-new")]
    );
    assert_eq!(after.open_tickets.len(), 1);
}

/// Runs the binary with `args`; panics with its output when it fails.
async fn run(args: Vec<String>) -> String {
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_customer-context"))
            .args(&args)
            .env_remove("RUST_LOG")
            .output()
            .expect("the binary runs")
    })
    .await
    .expect("joined");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "the command failed: {text}");
    text
}

/// Serves `url` in this process; returns admin context and ingest clients.
async fn serve(url: &str) -> (customer_context::store::Store, crate::harness::Context) {
    use customer_context::{
        domain::Role,
        startup::{Application, ServeConfig},
        store::{Store, StoreOptions},
    };
    let config = ServeConfig {
        listen: "127.0.0.1:0".parse().expect("an address"),
        database_url: url.to_owned(),
        store: StoreOptions::default(),
        gate: Default::default(),
        tls: None,
        suggest: Default::default(),
        model_rebuild_every: None,
        model: Default::default(),
        customer_memory: customer_context::suggest::memo::CUSTOMER_BYTES,
        connectors: Default::default(),
        frame_origins: Vec::new(),
        retention: Default::default(),
    };
    let app = Application::build(&config)
        .await
        .expect("the restored database serves");
    let addr = app.local_addr();
    tokio::spawn(app.run_until_stopped(std::future::pending()));
    let store = Store::connect(url, &StoreOptions::default())
        .await
        .expect("a store");
    let admin = Key::bearer(
        &store
            .create_key("restored admin", Role::Admin)
            .await
            .expect("a key")
            .1,
    );
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .expect("a URI")
        .connect()
        .await
        .expect("connecting");
    (
        store,
        pb::customer_context_service_client::CustomerContextServiceClient::with_interceptor(
            channel, admin,
        ),
    )
}

/// A customer who is erased after the backup, with browsing and an order.
async fn seed_erased(app: &TestApp, who: &str) {
    let mut ingest = app.ingest.clone();
    let mut c = customer(who, "Erased Later", &format!("{who}@example.com"), "", "");
    c.anonymous_ids = vec![format!("{who}-anon")];
    ingest
        .upsert_customers(pb::UpsertCustomersRequest { customers: vec![c] })
        .await
        .expect("customer");
    ingest
        .record_events(pb::RecordEventsRequest {
            events: vec![view(&format!("{who}-v"), who, "socks", 5)],
        })
        .await
        .expect("events");
    ingest
        .record_orders(pb::RecordOrdersRequest {
            orders: vec![order(
                &format!("{who}-o"),
                who,
                60,
                vec![line("mouse", 1, 2900)],
            )],
        })
        .await
        .expect("orders");
}

/// Events of 50 a batch for `who` until `stop`; `acked` is the last batch
/// acknowledged.
fn keep_ingesting(
    app: &TestApp,
    who: &'static str,
    acked: std::sync::Arc<std::sync::atomic::AtomicI64>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    use std::sync::atomic::Ordering;
    let mut ingest = app.ingest.clone();
    tokio::spawn(async move {
        for batch in 0.. {
            if stop.load(Ordering::SeqCst) {
                break;
            }
            let events = (0..50)
                .map(|i| view(&format!("b-{batch}-{i}"), who, "socks", 1))
                .collect();
            ingest
                .record_events(pb::RecordEventsRequest { events })
                .await
                .expect("a batch");
            acked.store(batch, Ordering::SeqCst);
        }
    })
}

async fn wait_for(acked: &std::sync::atomic::AtomicI64, at_least: i64) {
    while acked.load(std::sync::atomic::Ordering::SeqCst) < at_least {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

/// The batches whose 50 events are all stored for `who`.
async fn whole_batches(store: &customer_context::store::Store, who: &str) -> (Vec<i64>, usize) {
    let export = store
        .export_customer(&CustomerId::parse(who).expect("an id"))
        .await
        .expect("an export");
    let mut per_batch = std::collections::BTreeMap::<i64, usize>::new();
    let mut events = 0;
    for (_, rows) in export.into_iter().filter(|(t, _)| t == "events") {
        for r in rows {
            let id = r["message_id"].as_str().unwrap_or_default().to_owned();
            if let Some(batch) = id.strip_prefix("b-").and_then(|r| r.split('-').next()) {
                *per_batch
                    .entry(batch.parse().expect("a number"))
                    .or_default() += 1;
                events += 1;
            }
        }
    }
    let whole = per_batch
        .into_iter()
        .filter(|(_, n)| *n == 50)
        .map(|(b, _)| b)
        .collect();
    (whole, events)
}

/// `backup` while another client ingests: every batch acknowledged before
/// it began is in the copy, each batch whole or absent. `restore` (the
/// service stopped) brings it back, replays the erasure made after the
/// backup, and the restored database serves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_while_ingesting_then_restore_keeps_writes_and_erasures() {
    use std::sync::{Arc, atomic::Ordering};
    let app = spawn_app(Backend::Sqlite).await.expect("SQLite");
    seed_catalog(&app).await;
    seed_history(&app, "c-kept").await;
    seed_erased(&app, "c-gone").await;
    let dir = tempfile::tempdir().expect("a dir");
    let backup = dir.path().join("backup.db");

    let acked = Arc::new(std::sync::atomic::AtomicI64::new(-1));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = keep_ingesting(&app, "c-kept", acked.clone(), stop.clone());
    wait_for(&acked, 3).await;
    let before = acked.load(Ordering::SeqCst);
    let said = run(vec![
        "backup".into(),
        "--database-url".into(),
        app.database_url.clone(),
        "--to".into(),
        backup.display().to_string(),
    ])
    .await;
    assert!(said.contains("Backed up to"), "{said}");
    let during = acked.load(Ordering::SeqCst);
    wait_for(&acked, during + 2).await;
    stop.store(true, Ordering::SeqCst);
    writer.await.expect("the writer");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&backup)
            .expect("the backup")
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "the backup is readable by its owner only");
    }
    erase(&app, Identity::CustomerId("c-gone".into())).await;

    // Restoring refuses while the service has the database open.
    let file = customer_context::store::sqlite_file_of(&app.database_url).expect("a file");
    let restore = vec![
        "restore".into(),
        "--database-url".into(),
        app.database_url.clone(),
        "--from".into(),
        backup.display().to_string(),
    ];
    let busy = std::process::Command::new(env!("CARGO_BIN_EXE_customer-context"))
        .args(&restore)
        .output()
        .expect("runs");
    assert!(!busy.status.success());
    assert!(
        String::from_utf8_lossy(&busy.stderr).contains("in use"),
        "{busy:?}"
    );

    app.store.close().await;
    let said = run(restore).await;
    assert!(
        said.contains("1 customers and 0 visitors erased again"),
        "{said}"
    );
    let replaced = format!("{}.before-restore", file.display());
    assert!(
        std::path::Path::new(&replaced).exists(),
        "the replaced file is kept: {said}"
    );

    let (store, mut context) = serve(&app.database_url).await;
    let (whole, events) = whole_batches(&store, "c-kept").await;
    assert!(
        (0..=before).all(|b| whole.contains(&b)),
        "every batch acknowledged before the backup began is in it: {before} {whole:?}"
    );
    assert_eq!(events, whole.len() * 50, "no batch is there in part");
    assert!(
        whole.len() as i64 <= during + 1,
        "nothing acknowledged after the backup ended"
    );
    let kept = context
        .get_customer_context(by(Identity::CustomerId("c-kept".into())))
        .await
        .expect("the kept customer");
    assert_eq!(
        kept.into_inner().recent_orders.len(),
        1,
        "the order within the year"
    );
    for identity in [
        Identity::CustomerId("c-gone".into()),
        Identity::Email("c-gone@example.com".into()),
        Identity::AnonymousId("c-gone-anon".into()),
    ] {
        let gone = context.get_customer_context(by(identity)).await;
        assert_eq!(gone.expect_err("erased").code(), tonic::Code::NotFound);
    }
}

/// The documented PostgreSQL steps: `pg_dump -Fc`, `pg_restore` into an
/// empty database, `replay-erasures --from` the live one; the restored
/// database serves the same context and the erasure made after the dump
/// holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_dump_restores_and_erasures_replay() {
    let Some(app) = spawn_app(Backend::Postgres).await else {
        return;
    };
    seed_catalog(&app).await;
    seed_history(&app, "c-kept").await;
    seed_erased(&app, "c-gone").await;
    let original = context_of(&app, Identity::CustomerId("c-kept".into())).await;
    let dir = tempfile::tempdir().expect("a dir");
    let dump = dir.path().join("cc.dump");
    let status = std::process::Command::new("pg_dump")
        .args(["-Fc", "--no-owner", "-f"])
        .arg(&dump)
        .arg(&app.database_url)
        .status()
        .expect("pg_dump runs");
    assert!(status.success(), "pg_dump");
    erase(&app, Identity::CustomerId("c-gone".into())).await;

    let (restored_url, _guard) = fresh_database(Backend::Postgres).await.expect("a database");
    let status = std::process::Command::new("pg_restore")
        .args(["--no-owner", "--exit-on-error", "-d", &restored_url])
        .arg(&dump)
        .status()
        .expect("pg_restore runs");
    assert!(status.success(), "pg_restore");
    let said = run(vec![
        "replay-erasures".into(),
        "--database-url".into(),
        restored_url.clone(),
        "--from".into(),
        app.database_url.clone(),
    ])
    .await;
    assert!(
        said.contains("1 customers and 0 visitors erased again"),
        "{said}"
    );

    let (_store, mut context) = serve(&restored_url).await;
    let restored = context
        .get_customer_context(by(Identity::CustomerId("c-kept".into())))
        .await
        .expect("the kept customer")
        .into_inner();
    assert_eq!(restored.profile, original.profile);
    assert_eq!(restored.recent_orders, original.recent_orders);
    assert_eq!(restored.recent_browsing, original.recent_browsing);
    assert_eq!(restored.open_tickets, original.open_tickets);
    let gone = context
        .get_customer_context(by(Identity::Email("c-gone@example.com".into())))
        .await;
    assert_eq!(gone.expect_err("erased").code(), tonic::Code::NotFound);
}

/// The fixtures' directory.
fn upgrade_fixtures() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/upgrade")
}

/// A database written by the previous release (schema 0010, committed
/// fixtures) is migrated by this version and serves every customer (and
/// the anonymous visitor) exactly the context this version serves after
/// importing the same files into an empty database.
async fn a_database_of_the_previous_release_migrates_and_serves_the_same_context(backend: Backend) {
    let Some((old_url, _old)) = fresh_database(backend).await else {
        return;
    };
    let fixtures = upgrade_fixtures();
    match backend {
        Backend::Sqlite => {
            let file = customer_context::store::sqlite_file_of(&old_url).expect("a file");
            std::fs::copy(fixtures.join("v0010.db"), file).expect("the SQLite fixture");
        }
        Backend::Postgres => {
            use sqlx::Connection as _;
            let sql =
                std::fs::read_to_string(fixtures.join("v0010.postgres.sql")).expect("the dump");
            let mut conn = sqlx::PgConnection::connect(&old_url)
                .await
                .expect("connects");
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(&mut conn)
                .await
                .expect("the dump loads");
        }
    }
    let (new_url, _new) = fresh_database(backend).await.expect("a database");
    run(vec![
        "import".into(),
        "--database-url".into(),
        new_url.clone(),
        "--catalog".into(),
        fixtures.join("catalog.jsonl").display().to_string(),
        "--events".into(),
        fixtures.join("events.jsonl").display().to_string(),
    ])
    .await;
    let (_, mut migrated) = serve(&old_url).await;
    let (_, mut fresh) = serve(&new_url).await;
    let identities = ["u-ada", "u-bob", "u-cy", "u-dee", "u-eve"]
        .map(|c| Identity::CustomerId(c.into()))
        .into_iter()
        .chain([
            Identity::Email("cy@example.com".into()),
            Identity::AnonymousId("anon-visitor".into()),
        ]);
    for identity in identities {
        let request = || pb::GetCustomerContextRequest {
            lookback_days: 3650,
            ..by(identity.clone())
        };
        let mut old = migrated
            .get_customer_context(request())
            .await
            .expect("migrated")
            .into_inner();
        let mut new = fresh
            .get_customer_context(request())
            .await
            .expect("fresh")
            .into_inner();
        assert!(
            !old.recent_orders.is_empty()
                || identity == Identity::AnonymousId("anon-visitor".into())
        );
        // Per answer: when it was made, and suggestion ids (signed, dated).
        for c in [&mut old, &mut new] {
            c.as_of = None;
            for s in c.suggestions.iter_mut().flat_map(|s| s.items.iter_mut()) {
                s.suggestion_id.clear();
            }
        }
        assert_eq!(old, new, "{identity:?}");
    }
}
