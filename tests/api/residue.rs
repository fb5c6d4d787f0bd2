//! Erasure leaves no readable residue: the raw bytes of the database files
//! are searched for the erased customer's email, phone, name and ids.

use customer_context::proto::{self as pb, customer_ref::Identity};
use sqlx::{Connection, Row};

use crate::{
    fixtures::*,
    harness::{Backend, TestApp, spawn_app},
    on_both_backends,
};

on_both_backends!(erasure_leaves_no_readable_residue);

const EMAIL: &str = "zelda.residuewoman@example.com";
const PHONE: &str = "+15550177341";
const NAME: &str = "Zelda Residuewoman";
const CUSTOMER: &str = "cust-residue-4711";
const LOYALTY: &str = "loyal-residue-4711";
const ANONYMOUS: &str = "anon-residue-4711";

/// What must not be found after the erasure.
const NEEDLES: [&str; 6] = [EMAIL, PHONE, NAME, CUSTOMER, LOYALTY, ANONYMOUS];

/// A customer with a history, written several times over (so old row
/// versions exist), plus a neighbour who stays.
async fn seed(app: &TestApp) {
    seed_catalog(app).await;
    let mut ingest = app.ingest.clone();
    for round in 0..3 {
        let mut c = customer(CUSTOMER, NAME, EMAIL, PHONE, LOYALTY);
        c.anonymous_ids = vec![ANONYMOUS.into()];
        c.display_name = format!("{NAME}{}", " ".repeat(round));
        ingest
            .upsert_customers(pb::UpsertCustomersRequest {
                customers: vec![c, customer("c-stays", "Stay", "stay@example.com", "", "")],
            })
            .await
            .expect("customers");
    }
    let events = (0..20)
        .map(|i| {
            event(
                &format!("m-res-{i}"),
                if i % 2 == 0 { CUSTOMER } else { "" },
                ANONYMOUS,
                pb::BrowsingEventType::ProductViewed,
                "socks",
                i,
            )
        })
        .collect();
    ingest
        .record_events(pb::RecordEventsRequest { events })
        .await
        .expect("events");
    let orders = (0..5)
        .map(|i| {
            order(
                &format!("o-res-{i}"),
                CUSTOMER,
                100 + i,
                vec![line("socks", 1, 1900)],
            )
        })
        .chain([order(
            "o-stays",
            "c-stays",
            50,
            vec![line("mouse", 1, 3900)],
        )])
        .collect();
    ingest
        .record_orders(pb::RecordOrdersRequest { orders })
        .await
        .expect("orders");
    ingest
        .record_returns(pb::RecordReturnsRequest {
            returns: vec![return_("r-res", "o-res-0", CUSTOMER, "socks", 10)],
        })
        .await
        .expect("returns");
    ingest
        .upsert_tickets(pb::UpsertTicketsRequest {
            tickets: vec![ticket(
                "t-res",
                CUSTOMER,
                pb::TicketStatus::Open,
                "o-res-1",
                5,
            )],
        })
        .await
        .expect("tickets");
    // Reads leave access-log rows and served suggestions behind.
    context_of(app, Identity::Email(EMAIL.into())).await;
}

/// The needles found in `bytes`.
fn found(bytes: &[u8]) -> Vec<&'static str> {
    NEEDLES
        .into_iter()
        .filter(|n| bytes.windows(n.len()).any(|w| w == n.as_bytes()))
        .collect()
}

async fn erasure_leaves_no_readable_residue(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    seed(&app).await;
    match backend {
        Backend::Sqlite => {
            let path = app
                .database_url
                .trim_start_matches("sqlite://")
                .split('?')
                .next()
                .expect("a path")
                .to_owned();
            let files = || {
                ["", "-wal"]
                    .iter()
                    .filter_map(|s| std::fs::read(format!("{path}{s}")).ok())
                    .flatten()
                    .collect::<Vec<u8>>()
            };
            assert!(!found(&files()).is_empty(), "the search sees stored data");
            let receipt = erase(&app, Identity::Email(EMAIL.into())).await;
            assert!(receipt.storage.contains("zeros"), "{}", receipt.storage);
            assert_eq!(found(&files()), Vec::<&str>::new(), "left in {path}");
        }
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(&app.database_url)
                .await
                .expect("a superuser connection");
            assert!(!found(&relation_bytes(&mut conn).await).is_empty());
            let receipt = erase(&app, Identity::Email(EMAIL.into())).await;
            assert!(receipt.storage.contains("scrub"), "{}", receipt.storage);
            app.store.scrub().await.expect("scrubbed");
            let left = found(&relation_bytes(&mut conn).await);
            assert_eq!(
                left,
                Vec::<&str>::new(),
                "left in the table files: {:?}",
                relations_holding(&mut conn).await
            );
        }
    }
    // The neighbour is untouched.
    let ctx = context_of(&app, Identity::CustomerId("c-stays".into())).await;
    assert_eq!(ctx.recent_orders.len(), 1);
}

/// Every table, index and TOAST file of the database, as on disk after a
/// checkpoint (read through the server, as the superuser the tests use).
async fn relation_bytes(conn: &mut sqlx::PgConnection) -> Vec<u8> {
    sqlx::raw_sql("CHECKPOINT")
        .execute(&mut *conn)
        .await
        .expect("a checkpoint");
    let rows = sqlx::query(
        "SELECT pg_read_binary_file(f.path) FROM (SELECT pg_relation_filepath(c.oid) AS path \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind IN ('r', 'i', 't') AND n.nspname NOT IN ('pg_catalog', 'information_schema')) f \
         WHERE f.path IS NOT NULL AND (pg_stat_file(f.path, true)).size IS NOT NULL",
    )
    .fetch_all(&mut *conn)
    .await
    .expect("relation files");
    rows.iter()
        .filter_map(|r| r.try_get::<Option<Vec<u8>>, _>(0).ok().flatten())
        .flatten()
        .collect()
}

/// The relations whose files hold a needle (to say where, on failure).
async fn relations_holding(conn: &mut sqlx::PgConnection) -> Vec<String> {
    let rows = sqlx::query(
        "SELECT c.relname, pg_read_binary_file(f.path) FROM (SELECT c.oid, pg_relation_filepath(c.oid) AS path \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind IN ('r', 'i', 't') AND n.nspname NOT IN ('pg_catalog', 'information_schema')) f \
         JOIN pg_class c ON c.oid = f.oid \
         WHERE f.path IS NOT NULL AND (pg_stat_file(f.path, true)).size IS NOT NULL",
    )
    .fetch_all(&mut *conn)
    .await
    .expect("relation files");
    rows.iter()
        .filter_map(|r| {
            let name: String = r.try_get(0).ok()?;
            let bytes: Vec<u8> = r.try_get(1).ok()?;
            (!found(&bytes).is_empty()).then(|| format!("{name}: {:?}", found(&bytes)))
        })
        .collect()
}
