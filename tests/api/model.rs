//! The suggestion model in the database: live updates from orders, a full
//! rebuild that agrees with them, and erasure taking a customer's share out.

use customer_context::{
    proto::{self as pb, customer_ref::Identity},
    suggest::snapshot::FORMAT,
};

use crate::{
    fixtures::*,
    harness::{Backend, spawn_app},
    on_both_backends,
};

on_both_backends!(
    the_model_follows_orders_live_and_a_rebuild_agrees,
    erasure_removes_a_customers_share_of_the_model,
    bought_styles_are_known_for_the_whole_history,
    one_replica_claims_each_periodic_rebuild,
    a_model_in_an_older_format_is_rebuilt_at_once,
);

/// A product's bought-together partners with the orders they share, as
/// another replica sees them (most shared first).
async fn partners(app: &crate::harness::TestApp, product: &str) -> Vec<(String, i64)> {
    let live = app.replica_model().await;
    live.read(|m| {
        let Some(i) = m.item(product) else {
            return Vec::new();
        };
        let mut out: Vec<(String, i64)> = m.partners[i as usize]
            .iter()
            .map(|&(b, n)| (m.catalog.items[b as usize].product_id.clone(), i64::from(n)))
            .collect();
        out.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        out
    })
}

/// Orders containing a product, as another replica counts them.
async fn baskets(app: &crate::harness::TestApp, product: &str) -> Option<u32> {
    let live = app.replica_model().await;
    live.read(|m| m.item(product).map(|i| m.baskets[i as usize]))
}

fn pairs(list: &[(&str, i64)]) -> Vec<(String, i64)> {
    list.iter().map(|(p, n)| (p.to_string(), *n)).collect()
}

async fn the_model_follows_orders_live_and_a_rebuild_agrees(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    seed_catalog(&app).await;
    let mut ingest = app.ingest.clone();
    let o2 = order(
        "o2",
        "c2",
        50,
        vec![
            line("shell-m", 1, 12900),
            line("socks", 1, 1900),
            line("mouse", 1, 3900),
        ],
    );
    let orders = vec![
        order(
            "o1",
            "c1",
            60,
            vec![line("shell-m", 1, 12900), line("socks", 2, 1900)],
        ),
        o2.clone(),
        order(
            "o3",
            "c3",
            40,
            vec![line("shell-m", 1, 12900), line("mouse", 1, 3900)],
        ),
    ];
    ingest
        .record_orders(pb::RecordOrdersRequest { orders })
        .await
        .expect("ok");
    // Live: the orders count at once.
    assert_eq!(
        partners(&app, "shell-m").await,
        pairs(&[("mouse", 2), ("socks", 2)])
    );
    assert_eq!(
        partners(&app, "socks").await,
        pairs(&[("shell-m", 2), ("mouse", 1)])
    );
    assert_eq!(baskets(&app, "shell-m").await, Some(3));

    // A rebuild from the history keeps pairs seen in two orders or more,
    // with the same counts.
    let summary = app.rebuild_model().await.expect("rebuilt");
    assert_eq!(summary.orders, 3);
    assert_eq!(
        partners(&app, "shell-m").await,
        pairs(&[("mouse", 2), ("socks", 2)])
    );
    assert_eq!(partners(&app, "socks").await, pairs(&[("shell-m", 2)]));
    assert_eq!(baskets(&app, "shell-m").await, Some(3));

    // A cancellation takes the order out again.
    let mut cancelled = o2;
    cancelled.status = pb::OrderStatus::Cancelled.into();
    ingest
        .record_orders(pb::RecordOrdersRequest {
            orders: vec![cancelled],
        })
        .await
        .expect("ok");
    assert_eq!(
        partners(&app, "shell-m").await,
        pairs(&[("mouse", 1), ("socks", 1)])
    );
    assert_eq!(baskets(&app, "mouse").await, Some(1));

    // A guest order counts once its anonymous id is linked to a customer.
    let mut guest = order(
        "o4",
        "",
        30,
        vec![line("socks", 1, 1900), line("mouse", 1, 3900)],
    );
    guest.anonymous_id = "anon-g".into();
    ingest
        .record_orders(pb::RecordOrdersRequest {
            orders: vec![guest],
        })
        .await
        .expect("ok");
    assert_eq!(partners(&app, "mouse").await, pairs(&[("shell-m", 1)]));
    let link = pb::LinkIdentityRequest {
        customer_id: "c4".into(),
        kind: pb::IdentityKind::AnonymousId.into(),
        value: "anon-g".into(),
    };
    ingest.link_identity(link).await.expect("linked");
    assert_eq!(
        partners(&app, "mouse").await,
        pairs(&[("shell-m", 1), ("socks", 1)])
    );
}

async fn erasure_removes_a_customers_share_of_the_model(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    seed_catalog(&app).await;
    let mut ingest = app.ingest.clone();
    let orders = vec![
        order(
            "o-a",
            "c-a",
            60,
            vec![line("shell-l", 1, 12900), line("socks", 1, 1900)],
        ),
        order(
            "o-b",
            "c-b",
            50,
            vec![line("shell-l", 1, 12900), line("socks", 1, 1900)],
        ),
    ];
    ingest
        .record_orders(pb::RecordOrdersRequest { orders })
        .await
        .expect("ok");
    assert_eq!(partners(&app, "shell-l").await, pairs(&[("socks", 2)]));
    app.privacy
        .clone()
        .erase_customer(pb::EraseCustomerRequest {
            customer: Some(pb::CustomerRef {
                identity: Some(Identity::CustomerId("c-a".into())),
            }),
        })
        .await
        .expect("erased");
    assert_eq!(partners(&app, "shell-l").await, pairs(&[("socks", 1)]));
    assert_eq!(baskets(&app, "shell-l").await, Some(1));
}

async fn bought_styles_are_known_for_the_whole_history(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    // Two sizes of one rain shell share a style; socks are their own.
    let mut m = product(
        "shell-m",
        "Rain Shell (M)",
        &["Apparel", "Jackets"],
        12900,
        5,
    );
    m.group_id = "shell".into();
    let mut l = product(
        "shell-l",
        "Rain Shell (L)",
        &["Apparel", "Jackets"],
        12900,
        5,
    );
    l.group_id = "shell".into();
    let socks = product("socks", "Merino Socks", &["Accessories"], 1900, 5);
    app.ingest
        .clone()
        .upsert_products(pb::UpsertProductsRequest {
            products: vec![m, l, socks],
        })
        .await
        .expect("ok");
    let mut ingest = app.ingest.clone();
    // Many old orders, then the one that bought the shell.
    let mut orders: Vec<pb::Order> = (0..30)
        .map(|i| {
            order(
                &format!("old{i}"),
                "c1",
                5000 - i,
                vec![line("socks", 1, 1900)],
            )
        })
        .collect();
    orders.push(order("o-shell", "c1", 10, vec![line("shell-m", 1, 12900)]));
    ingest
        .record_orders(pb::RecordOrdersRequest { orders })
        .await
        .expect("ok");
    let c1 = customer_context::domain::CustomerId::parse("c1").expect("id");
    let bought = app.store.all_bought_groups(&c1).await.expect("read");
    let mut bought: Vec<String> = bought.into_keys().collect();
    bought.sort();
    assert_eq!(bought, ["shell", "socks"]);

    // Cancelling the only shell order forgets it; socks stay.
    let mut cancelled = order("o-shell", "c1", 10, vec![line("shell-m", 1, 12900)]);
    cancelled.status = pb::OrderStatus::Cancelled.into();
    ingest
        .record_orders(pb::RecordOrdersRequest {
            orders: vec![cancelled],
        })
        .await
        .expect("ok");
    let bought = app.store.all_bought_groups(&c1).await.expect("read");
    assert_eq!(bought.into_keys().collect::<Vec<_>>(), ["socks"]);
}

async fn one_replica_claims_each_periodic_rebuild(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let hour = 3_600_000;
    // Never rebuilt: due, and the first to ask claims it; the next does not.
    assert!(app.store.claim_rebuild(hour, FORMAT).await.expect("claim"));
    assert!(!app.store.claim_rebuild(hour, FORMAT).await.expect("claim"));
    // Rebuilt just now: not due, whatever the claim.
    app.rebuild_model().await.expect("rebuild");
    assert!(!app.store.claim_rebuild(hour, FORMAT).await.expect("claim"));
    // A period of zero is always due, and each claim moves the mark on.
    assert!(app.store.claim_rebuild(0, FORMAT).await.expect("claim"));
}

async fn a_model_in_an_older_format_is_rebuilt_at_once(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let hour = 3_600_000;
    app.rebuild_model().await.expect("rebuild");
    assert!(!app.store.claim_rebuild(hour, FORMAT).await.expect("claim"));
    // A version that reads a newer format than the one stored: due now,
    // claimed by one replica, and at most once a minute.
    assert!(
        app.store
            .claim_rebuild(hour, FORMAT + 1)
            .await
            .expect("claim")
    );
    assert!(
        !app.store
            .claim_rebuild(hour, FORMAT + 1)
            .await
            .expect("claim")
    );
}
