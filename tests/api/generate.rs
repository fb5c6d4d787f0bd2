//! `generate`: a small generated shop written through the store on both
//! backends; the same seed gives the same customers' contexts in two fresh
//! databases, and writing it again adds nothing.

use customer_context::{
    domain::Timestamp,
    generate::{Plan, write},
    proto::{self as pb, customer_ref::Identity},
};

use crate::{
    fixtures::*,
    harness::{Backend, TestApp, spawn_app},
    on_both_backends,
};

on_both_backends!(a_generated_shop_is_stored_the_same_way_every_time);

fn plan() -> Plan {
    Plan {
        long_customers: 1,
        long_events: 2000,
        ..Plan::new(42, 300, 600, 8000)
    }
}

async fn shop(app: &TestApp, now: Timestamp) -> customer_context::generate::Written {
    write(&app.store, &plan(), now, |_, _| {})
        .await
        .expect("written")
}

async fn summary(app: &TestApp, customer: &str) -> (Vec<String>, Vec<String>, usize, String) {
    let c = context_of(app, Identity::CustomerId(customer.into())).await;
    (
        c.recent_orders.iter().map(|o| o.order_id.clone()).collect(),
        c.returns.iter().map(|r| r.reason_code.clone()).collect(),
        c.recent_browsing.len(),
        c.profile.map(|p| p.display_name).unwrap_or_default(),
    )
}

async fn a_generated_shop_is_stored_the_same_way_every_time(backend: Backend) {
    let (Some(a), Some(b)) = (spawn_app(backend).await, spawn_app(backend).await) else {
        return;
    };
    let now = Timestamp::now();
    let written = shop(&a, now).await;
    assert_eq!(written.rejected, 0);
    assert_eq!(written.customers, 300);
    assert!(written.orders > 50 && written.returns > 0, "{written:?}");
    assert_eq!(shop(&b, now).await, written, "the same plan, the same shop");
    // What `generate` does after writing (ANALYZE of the loaded tables on
    // PostgreSQL): every table it names exists.
    a.store
        .refresh_statistics()
        .await
        .expect("statistics refreshed");
    for customer in ["gen-c0000000", "gen-c0000007", "gen-c0000123"] {
        assert_eq!(
            summary(&a, customer).await,
            summary(&b, customer).await,
            "{customer}"
        );
    }
    let long = context_of(&a, Identity::CustomerId("gen-c0000000".into())).await;
    assert!(long.browsing_events_scanned > 0);

    // Again into the same database: every write is a duplicate.
    let before = summary(&a, "gen-c0000007").await;
    let again = shop(&a, now).await;
    assert_eq!(again.rejected, 0);
    assert_eq!(summary(&a, "gen-c0000007").await, before);
    let r = a
        .ingest
        .clone()
        .record_events(pb::RecordEventsRequest {
            events: vec![view("gen-e7-0", "gen-c0000007", "gen-p0", 0)],
        })
        .await
        .expect("ok")
        .into_inner();
    assert_eq!(
        r.summary.expect("summary").duplicate,
        1,
        "generated message ids are stable"
    );
}
