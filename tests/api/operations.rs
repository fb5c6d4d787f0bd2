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
    harness::{Backend, TestApp, spawn_app},
    on_both_backends,
};

on_both_backends!(retention_prunes_what_is_older_and_keeps_lifetime_figures);

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
