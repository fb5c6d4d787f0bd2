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
    the_ranker_that_wins_on_the_shops_orders_is_served_by_every_replica,
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

/// A shop whose customers' newest purchases tell what they buy next: 60
/// customers show what goes with A (X0..X9) and with B (Y0..Y9), 200 bought
/// A in three orders, B in their next two and then the Ys; 60 more show
/// what goes with P (U0..U9) and Q (V0..V9), and "probe" bought P three
/// times, then Q twice.
async fn recency_shop(app: &crate::harness::TestApp) {
    let mut ingest = app.ingest.clone();
    let ten = |c: char| (0..10).map(move |k| format!("{c}{k}"));
    let ids: Vec<String> = ["A", "B", "P", "Q"]
        .into_iter()
        .map(String::from)
        .chain("XYUV".chars().flat_map(ten))
        .collect();
    let products = ids
        .iter()
        .map(|id| {
            product(
                id,
                &format!("Item {id}"),
                &[&format!("C{id}"), "x"],
                1000,
                50,
            )
        })
        .collect();
    ingest
        .upsert_products(pb::UpsertProductsRequest { products })
        .await
        .expect("products");
    let lines = |ids: Vec<String>| ids.iter().map(|p| line(p, 1, 1000)).collect::<Vec<_>>();
    let mut orders = Vec::new();
    for t in 0..30 {
        for (first, partner) in [("A", 'X'), ("B", 'Y'), ("P", 'U'), ("Q", 'V')] {
            let who = format!("t{first}{t}");
            let items = [first.to_string()]
                .into_iter()
                .chain(ten(partner))
                .collect();
            orders.push(order(&format!("{who}-0"), &who, 20_000, lines(items)));
        }
    }
    for c in 0..200 {
        let who = format!("c{c}");
        for n in 0..5 {
            let bought = if n < 3 { "A" } else { "B" };
            let at = 10_000 - n * 100;
            orders.push(order(
                &format!("{who}-{n}"),
                &who,
                at,
                lines(vec![bought.into()]),
            ));
        }
        orders.push(order(
            &format!("{who}-5"),
            &who,
            1_000,
            lines(ten('Y').collect()),
        ));
    }
    for (n, bought) in ["P", "P", "P", "Q", "Q"].into_iter().enumerate() {
        let at = 9_000 - n as i64 * 100;
        orders.push(order(
            &format!("probe-{n}"),
            "probe",
            at,
            lines(vec![bought.into()]),
        ));
    }
    for chunk in orders.chunks(200) {
        ingest
            .record_orders(pb::RecordOrdersRequest {
                orders: chunk.to_vec(),
            })
            .await
            .expect("orders");
    }
}

async fn the_ranker_that_wins_on_the_shops_orders_is_served_by_every_replica(backend: Backend) {
    use customer_context::suggest::validate::Ranker;
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    recency_shop(&app).await;
    let summary = app.rebuild_model().await.expect("rebuilt");
    let ranking = summary.ranking;
    assert_eq!(ranking.served, Ranker::RecentBlend, "{ranking:?}");
    assert_eq!(ranking.customers, 200, "{ranking:?}");
    let hit = |r: Ranker| {
        ranking
            .validations
            .iter()
            .find(|v| v.ranker == r)
            .expect("validated")
            .hit_rate
    };
    assert!(hit(Ranker::RecentBlend) > hit(Ranker::Blend), "{ranking:?}");
    // Another replica reads the choice from the stored snapshot...
    let live = app.replica_model().await;
    assert_eq!(live.read(|m| m.ranking.clone()), ranking);
    let (process, _, mut context) = app.replica_process().await;
    // ...serves with it: the probe's newest purchase (Q) leads, where the
    // blend would follow its most repeated one (P)...
    let list = context
        .suggest_cross_sells(pb::SuggestCrossSellsRequest {
            customer: Some(pb::CustomerRef {
                identity: Some(Identity::CustomerId("probe".into())),
            }),
            limit: 10,
            ..Default::default()
        })
        .await
        .expect("suggestions")
        .into_inner()
        .suggestions
        .expect("a list");
    let ids: Vec<String> = list
        .items
        .iter()
        .filter_map(|i| i.product.as_ref().map(|p| p.product_id.clone()))
        .collect();
    assert!(ids.first().is_some_and(|p| p.starts_with('V')), "{ids:?}");
    let count = |c: char| ids.iter().filter(|p| p.starts_with(c)).count();
    assert!(count('V') > count('U'), "{ids:?}");
    // ...and says so in /metrics, with the numbers that chose it.
    let metrics = reqwest::get(format!("http://{}/metrics", process.addr()))
        .await
        .expect("scraped")
        .text()
        .await
        .expect("a body");
    assert!(
        metrics.contains("cc_model_ranker_served{ranker=\"recent_blend\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("cc_model_ranker_served{ranker=\"blend\"} 0"));
    assert!(metrics.contains("cc_model_validation_customers 200"));
    for v in &ranking.validations {
        let line = format!(
            "cc_model_validation_hit_rate{{ranker=\"{}\"}} {}",
            v.ranker.name(),
            hit(v.ranker)
        );
        assert!(metrics.contains(&line), "{line} in {metrics}");
    }
    // Six orders a customer are too few to train trees on the orders
    // before both held-out ones: no learned ranker was a candidate.
    assert_eq!(ranking.learned, None);
    assert!(metrics.contains("cc_model_learned_trees 0"), "{metrics}");
}
