//! Several replicas on one database share the suggestion model through it:
//! a snapshot built through one is served by another, and the change feed
//! carries orders and stock changes to every replica before its next
//! answer. A model build never holds up ingestion.

use customer_context::{
    proto::{self as pb, customer_ref::Identity},
    suggest::{ModelConfig, live},
};

use crate::{
    fixtures::*,
    harness::{Backend, TestApp, spawn_app},
    on_both_backends,
};

on_both_backends!(
    a_model_built_through_one_replica_is_served_by_another,
    an_order_through_one_replica_changes_complements_on_another,
    a_product_out_of_stock_through_one_replica_is_not_suggested_by_another,
    ingestion_goes_on_while_a_model_is_built,
    a_remembered_context_follows_writes_through_another_replica,
    a_model_stored_while_a_replica_reads_the_feed_is_loaded,
    a_starting_replica_reads_the_most_bought_rows_and_the_feed_drops_a_changed_one,
    a_replica_keeps_no_more_of_its_customers_than_its_memory_budget,
    a_replica_started_before_any_model_reads_the_most_bought_rows_when_one_arrives,
    a_catch_up_whose_caller_stops_waiting_applies_every_entry_once,
);

type Context = crate::harness::Context;

/// Suggestions for someone asking about `anchor` (no history of their own).
async fn asking_about(context: &mut Context, anchor: &str) -> Vec<(String, pb::ReasonCode)> {
    let s = context
        .suggest_cross_sells(pb::SuggestCrossSellsRequest {
            customer: Some(pb::CustomerRef {
                identity: Some(Identity::AnonymousId("visitor-1".into())),
            }),
            anchor_product_ids: vec![anchor.into()],
            limit: 10,
            ..Default::default()
        })
        .await
        .expect("suggestions")
        .into_inner()
        .suggestions
        .expect("a list");
    s.items
        .iter()
        .map(|i| {
            let id = i
                .product
                .as_ref()
                .map(|p| p.product_id.clone())
                .unwrap_or_default();
            (
                id,
                i.reason
                    .as_ref()
                    .map_or(pb::ReasonCode::Unspecified, |r| r.code()),
            )
        })
        .collect()
}

/// Two customers buy the shell with socks, through `ingest`.
async fn shells_with_socks(ingest: &mut crate::harness::Ingest) {
    let orders = vec![
        order(
            "o-1",
            "c1",
            60,
            vec![line("shell-m", 1, 12900), line("socks", 1, 1900)],
        ),
        order(
            "o-2",
            "c2",
            50,
            vec![line("shell-m", 1, 12900), line("socks", 1, 1900)],
        ),
    ];
    let r = ingest
        .record_orders(pb::RecordOrdersRequest { orders })
        .await
        .expect("orders")
        .into_inner();
    assert_eq!(r.summary.expect("summary").rejected, 0);
}

fn bought_together(list: &[(String, pb::ReasonCode)], product: &str) -> bool {
    list.iter()
        .any(|(p, r)| p == product && *r == pb::ReasonCode::BoughtTogether)
}

async fn a_model_built_through_one_replica_is_served_by_another(backend: Backend) {
    let Some(a) = spawn_app(backend).await else {
        return;
    };
    seed_catalog(&a).await;
    shells_with_socks(&mut a.ingest.clone()).await;
    // Built and stored through replica A (as its periodic build does)...
    let built = a.rebuild_model().await.expect("built");
    assert_eq!(built.version, 1);
    // ...loaded by replica B at start: the customer-level "also bought"
    // exists only in built models.
    let (_, mut b) = a.replica().await;
    let list = b
        .suggest_cross_sells(pb::SuggestCrossSellsRequest {
            customer: Some(pb::CustomerRef {
                identity: Some(Identity::CustomerId("c3".into())),
            }),
            anchor_product_ids: vec!["shell-m".into()],
            ..Default::default()
        })
        .await
        .expect("suggestions")
        .into_inner()
        .suggestions
        .expect("a list");
    let socks = list
        .items
        .iter()
        .find(|i| i.product.as_ref().is_some_and(|p| p.product_id == "socks"))
        .expect("socks go with the shell");
    assert_eq!(
        socks.reason.as_ref().expect("reason").code(),
        pb::ReasonCode::BoughtTogether
    );
    let live = a.replica_model().await;
    assert_eq!(live.version(), 1, "every replica loads the stored version");
    let also = live.read(|m| {
        let shell = m.item("shell-m").expect("known");
        m.also_bought[shell as usize]
            .iter()
            .map(|(i, _)| m.catalog.items[*i as usize].product_id.clone())
            .collect::<Vec<_>>()
    });
    assert_eq!(
        also,
        ["socks"],
        "customers who bought the shell bought socks"
    );
}

async fn an_order_through_one_replica_changes_complements_on_another(backend: Backend) {
    let Some(a) = spawn_app(backend).await else {
        return;
    };
    seed_catalog(&a).await;
    a.rebuild_model().await.expect("built");
    let (_, mut b) = a.replica().await;
    assert!(
        !bought_together(&asking_about(&mut b, "shell-m").await, "socks"),
        "nothing goes with the shell yet"
    );
    // Orders through A; the very next answer of B counts them (B checks
    // the change feed before answering), with no rebuild.
    shells_with_socks(&mut a.ingest.clone()).await;
    assert!(bought_together(
        &asking_about(&mut b, "shell-m").await,
        "socks"
    ));
    // A cancellation through A takes one order back out: a pair seen in
    // one order only is noise again.
    let mut cancelled = order(
        "o-2",
        "c2",
        50,
        vec![line("shell-m", 1, 12900), line("socks", 1, 1900)],
    );
    cancelled.status = pb::OrderStatus::Cancelled.into();
    a.ingest
        .clone()
        .record_orders(pb::RecordOrdersRequest {
            orders: vec![cancelled],
        })
        .await
        .expect("cancelled");
    assert!(!bought_together(
        &asking_about(&mut b, "shell-m").await,
        "socks"
    ));
}

async fn a_product_out_of_stock_through_one_replica_is_not_suggested_by_another(backend: Backend) {
    let Some(a) = spawn_app(backend).await else {
        return;
    };
    seed_catalog(&a).await;
    shells_with_socks(&mut a.ingest.clone()).await;
    a.rebuild_model().await.expect("built");
    let (_, mut b) = a.replica().await;
    assert!(bought_together(
        &asking_about(&mut b, "shell-m").await,
        "socks"
    ));
    let socks = product("socks", "Merino Socks", &["Accessories", "Socks"], 1900, 0);
    a.ingest
        .clone()
        .upsert_products(pb::UpsertProductsRequest {
            products: vec![socks],
        })
        .await
        .expect("stock change");
    let list = asking_about(&mut b, "shell-m").await;
    assert!(list.iter().all(|(p, _)| p != "socks"), "{list:?}");
    // Back in stock, back in the list.
    a.ingest
        .clone()
        .upsert_products(pb::UpsertProductsRequest {
            products: vec![product(
                "socks",
                "Merino Socks",
                &["Accessories", "Socks"],
                1900,
                40,
            )],
        })
        .await
        .expect("restocked");
    assert!(bought_together(
        &asking_about(&mut b, "shell-m").await,
        "socks"
    ));
}

async fn ingestion_goes_on_while_a_model_is_built(backend: Backend) {
    let Some(a) = spawn_app(backend).await else {
        return;
    };
    seed_catalog(&a).await;
    shells_with_socks(&mut a.ingest.clone()).await;
    // A build's read is open (pinned to its snapshot)...
    let read = a.store.begin_model_read().await.expect("read begins");
    // ...and an order is acknowledged meanwhile: the build holds no write
    // lock. (Were it to, this call would never return.)
    let o3 = order(
        "o-3",
        "c3",
        40,
        vec![line("shell-m", 1, 12900), line("socks", 1, 1900)],
    );
    a.ingest
        .clone()
        .record_orders(pb::RecordOrdersRequest { orders: vec![o3] })
        .await
        .expect("an order while the model is built");
    assert!(a.store.feed_head().await.expect("head") > read.as_of_seq());
    let inputs = read
        .finish(customer_context::domain::Timestamp::MIN)
        .await
        .expect("read");
    let orders: std::collections::HashSet<&str> = inputs
        .purchases
        .iter()
        .map(|p| p.order_id.as_str())
        .collect();
    assert_eq!(orders.len(), 2, "the build sees its snapshot only");
    live::save_built(&a.store, inputs, &ModelConfig::default(), 0.0)
        .await
        .expect("stored");
    // A replica loading it applies the rest from the feed: every order
    // counts, once.
    let live = a.replica_model().await;
    let (shell, together) = live.read(|m| {
        let shell = m.item("shell-m").expect("known");
        let socks = m.item("socks").expect("known");
        let together = m.partners[shell as usize]
            .iter()
            .find(|(b, _)| *b == socks)
            .map_or(0, |p| p.1);
        (m.baskets[shell as usize], together)
    });
    assert_eq!((shell, together), (3, 3));
    check_no_loss(&a).await;
}

/// A customer's whole context, through `context`.
async fn context_of(context: &mut Context, customer: &str) -> pb::CustomerContext {
    context
        .get_customer_context(pb::GetCustomerContextRequest {
            customer: Some(pb::CustomerRef {
                identity: Some(Identity::CustomerId(customer.into())),
            }),
            ..Default::default()
        })
        .await
        .expect("context")
        .into_inner()
}

/// The customers' totals still agree with their orders.
async fn check_no_loss(app: &TestApp) {
    for c in ["c1", "c2", "c3"] {
        let ctx = context_of(&mut app.context.clone(), c).await;
        assert_eq!(ctx.profile.expect("profile").order_count, 1, "{c}");
    }
}

/// The orders a replica's context shows for `customer`, and its order count.
async fn orders_seen(context: &mut Context, customer: &str) -> (Vec<String>, u64) {
    let ctx = context_of(context, customer).await;
    let ids = ctx
        .recent_orders
        .iter()
        .map(|o| o.order_id.clone())
        .collect();
    (ids, ctx.profile.expect("profile").order_count)
}

async fn a_remembered_context_follows_writes_through_another_replica(backend: Backend) {
    let Some(a) = spawn_app(backend).await else {
        return;
    };
    seed_catalog(&a).await;
    shells_with_socks(&mut a.ingest.clone()).await;
    let (_, mut b) = a.replica().await;
    // Read twice on B: the second answer comes from B's memory.
    assert_eq!(orders_seen(&mut b, "c1").await, (vec!["o-1".to_owned()], 1));
    assert_eq!(orders_seen(&mut b, "c1").await, (vec!["o-1".to_owned()], 1));
    // An order through A is in B's very next answer.
    let o = order("o-9", "c1", 5, vec![line("socks", 1, 1900)]);
    a.ingest
        .clone()
        .record_orders(pb::RecordOrdersRequest { orders: vec![o] })
        .await
        .expect("order");
    let (ids, count) = orders_seen(&mut b, "c1").await;
    assert_eq!((ids.first().map(String::as_str), count), (Some("o-9"), 2));
    // So is a price change of a product it shows.
    a.ingest
        .clone()
        .upsert_products(pb::UpsertProductsRequest {
            products: vec![product(
                "socks",
                "Merino Socks",
                &["Accessories", "Socks"],
                2500,
                40,
            )],
        })
        .await
        .expect("price change");
    let ctx = context_of(&mut b, "c1").await;
    let socks = ctx.recent_orders[0].lines[0]
        .product
        .as_ref()
        .expect("product");
    assert_eq!(socks.price.as_ref().map(|p| p.amount_minor), Some(2500));
}

/// A replica that checked for a new model just before one was stored, then
/// reads the feed: the feed's entry for the new model makes it load it (it
/// used to step over it and serve the old model until the next build).
async fn a_model_stored_while_a_replica_reads_the_feed_is_loaded(backend: Backend) {
    let Some(a) = spawn_app(backend).await else {
        return;
    };
    seed_catalog(&a).await;
    shells_with_socks(&mut a.ingest.clone()).await;
    let live = a.replica_model().await;
    let before = live.version();
    let summary = a.rebuild_model().await.expect("built");
    // The feed alone, as after a version check that came too early.
    live.follow_feed(&a.store).await.expect("followed");
    assert_eq!(live.version(), summary.version);
    assert!(live.version() > before);
    let also = live.read(|m| {
        let shell = m.item("shell-m").expect("known");
        m.also_bought[shell as usize].len()
    });
    assert_eq!(
        also, 1,
        "the built model's bought-together pairs are served"
    );
}

/// A replica starting reads the catalogue rows of the most bought items
/// into memory (socks: three buyers, mouse: two, shell: one), and a row
/// changed afterwards through another replica is dropped by the feed, so
/// the new price is what gets served.
async fn a_starting_replica_reads_the_most_bought_rows_and_the_feed_drops_a_changed_one(
    backend: Backend,
) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    seed_catalog(&app).await;
    let orders = vec![
        order(
            "o1",
            "c1",
            60,
            vec![line("socks", 1, 1900), line("mouse", 1, 3900)],
        ),
        order(
            "o2",
            "c2",
            50,
            vec![line("socks", 1, 1900), line("mouse", 1, 3900)],
        ),
        order(
            "o3",
            "c3",
            40,
            vec![line("socks", 1, 1900), line("shell-m", 1, 12900)],
        ),
    ];
    app.ingest
        .clone()
        .record_orders(pb::RecordOrdersRequest { orders })
        .await
        .expect("orders");
    app.rebuild_model().await.expect("built");
    let live = std::sync::Arc::new(app.replica_model().await);
    let suggest = customer_context::suggest::SuggestService::new(
        app.store.clone(),
        Default::default(),
        live.clone(),
    );
    assert_eq!(suggest.warm_products(2).await.expect("warmed"), 2);
    let price = |id: &str| live.memo().products.with(id, |row| row.price_minor);
    assert_eq!(price("socks"), Some(1900));
    assert_eq!(price("mouse"), Some(3900));
    assert_eq!(price("shell-m"), None);

    let (mut other, _) = app.replica().await;
    other
        .upsert_products(pb::UpsertProductsRequest {
            products: vec![product(
                "socks",
                "Merino Socks",
                &["Accessories", "Socks"],
                2100,
                40,
            )],
        })
        .await
        .expect("repriced");
    live.ensure_current(&app.store).await.expect("caught up");
    assert_eq!(price("socks"), None);
    assert_eq!(price("mouse"), Some(3900));
}

/// What a context shows of `customer`: their orders, order count and the
/// products suggested.
async fn seen(context: &mut Context, customer: &str) -> (Vec<String>, u64, Vec<String>) {
    let ctx = context_of(context, customer).await;
    let suggested = ctx
        .suggestions
        .map(|l| l.items)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|i| i.product.map(|p| p.product_id))
        .collect();
    let orders = ctx
        .recent_orders
        .iter()
        .map(|o| o.order_id.clone())
        .collect();
    (orders, ctx.profile.expect("profile").order_count, suggested)
}

/// A gauge's value for one label set in a `/metrics` page.
fn sample(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{series} in {metrics}"))
}

async fn scrape(addr: &str) -> String {
    reqwest::get(format!("http://{addr}/metrics"))
        .await
        .expect("scraped")
        .text()
        .await
        .expect("a body")
}

/// `serve --customer-memory-mb` bounds what a replica keeps of the
/// customers it read, as `/metrics` shows; with none kept, every answer is
/// read again, and the answers are the same.
async fn a_replica_keeps_no_more_of_its_customers_than_its_memory_budget(backend: Backend) {
    let Some(a) = spawn_app(backend).await else {
        return;
    };
    seed_catalog(&a).await;
    shells_with_socks(&mut a.ingest.clone()).await;
    let mouse = order("o-3", "c3", 40, vec![line("mouse", 1, 3900)]);
    a.ingest
        .clone()
        .record_orders(pb::RecordOrdersRequest {
            orders: vec![mouse],
        })
        .await
        .expect("an order");
    a.rebuild_model().await.expect("a model");
    let customers = "cc_replica_memory_bytes{kind=\"customers\"}";
    // The default budget: each customer read is kept, and weighed.
    let (keeping, _, mut kept) = a.replica_process().await;
    let (keeping_none, _, mut none) = a.replica_process_with(&["--customer-memory-mb", "0"]).await;
    for c in ["c1", "c2"] {
        let first = seen(&mut kept, c).await;
        assert!(!first.0.is_empty() && !first.2.is_empty(), "{c}: {first:?}");
        assert_eq!(seen(&mut kept, c).await, first, "{c} remembered");
        assert_eq!(seen(&mut none, c).await, first, "{c} read again");
        assert_eq!(seen(&mut none, c).await, first, "{c} read again");
    }
    let metrics = scrape(keeping.addr()).await;
    assert!(sample(&metrics, customers) > 1_000.0, "{metrics}");
    assert!(sample(&metrics, "cc_replica_memory_keys{kind=\"customers\"}") >= 2.0);
    assert_eq!(
        sample(
            &metrics,
            "cc_replica_memory_emptied_total{kind=\"customers\"}"
        ),
        0.0
    );
    // None kept: nothing weighed, nothing to empty.
    let metrics = scrape(keeping_none.addr()).await;
    assert_eq!(sample(&metrics, customers), 0.0, "{metrics}");
}

/// A replica started on a shop with no model yet reads the most bought
/// products' rows ahead once the first model arrives through the feed.
async fn a_replica_started_before_any_model_reads_the_most_bought_rows_when_one_arrives(
    backend: Backend,
) {
    let Some(a) = spawn_app(backend).await else {
        return;
    };
    let (replica, _, _) = a.replica_process().await;
    // Rows kept weigh something; the feed's marks of changed products
    // weigh nothing.
    let products = "cc_replica_memory_bytes{kind=\"products\"}";
    assert_eq!(sample(&scrape(replica.addr()).await, products), 0.0);
    seed_catalog(&a).await;
    shells_with_socks(&mut a.ingest.clone()).await;
    a.rebuild_model().await.expect("a model");
    // Waits for the replica to load the model and read ahead (no
    // duration asserted); nothing else reads rows on this replica.
    let mut kept = 0.0;
    for _ in 0..600 {
        kept = sample(&scrape(replica.addr()).await, products);
        if kept > 0.0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(kept > 0.0, "the rows of the products bought are kept");
}

/// Polls `f` once: whether it is done.
async fn poll_once(f: &mut std::pin::Pin<Box<impl std::future::Future>>) -> bool {
    std::future::poll_fn(|cx| std::task::Poll::Ready(f.as_mut().poll(cx).is_ready())).await
}

/// A replica's catching up with the change feed goes on when the request
/// that started it stops waiting (its client gone, or a read beside it
/// that failed), to the end of the feed, and applies each entry once.
async fn a_catch_up_whose_caller_stops_waiting_applies_every_entry_once(backend: Backend) {
    use std::sync::Arc;

    use sqlx::Connection;

    let Some((url, _guard)) = crate::harness::fresh_database(backend).await else {
        return;
    };
    // The demo shop's whole feed (thousands of catalogue and basket
    // entries) with no stored model to start from, and no server to trim
    // the feed.
    let store = crate::harness::demo_store(&url).await;
    let mut conn = sqlx::AnyConnection::connect(&url)
        .await
        .expect("a raw connection");
    sqlx::raw_sql("DELETE FROM model_snapshots")
        .execute(&mut conn)
        .await
        .expect("no stored model");
    let counts = |live: &live::LiveModel| live.read(|m| (m.baskets.clone(), m.buyers.clone()));
    let whole = live::LiveModel::new(ModelConfig::default());
    whole.catch_up(&store).await.expect("caught up");
    let expected = counts(&whole);
    assert!(expected.0.iter().sum::<u32>() > 0, "baskets were applied");

    // Callers that give up, each a step later than the one before, and
    // none that waits: each gives up long before it could apply a batch
    // of the feed by itself (the first takes over thirty steps: the
    // catalogue rows of a thousand products are read and indexed). A
    // bounded wait for the end of the feed; no duration asserted.
    let live = Arc::new(live::LiveModel::new(ModelConfig::default()));
    for steps in 0..12 {
        let mut caller = Box::pin(live.ensure_current(&store));
        for _ in 0..steps {
            if poll_once(&mut caller).await {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
    }
    for _ in 0..6000 {
        if live.applied() == whole.applied() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(
        live.applied(),
        whole.applied(),
        "caught up without a caller"
    );
    assert!(counts(&live) == expected, "each entry applied once");
}
