//! Cross-sell suggestions through the real server: every candidate source,
//! the cold start, the hard filters, feedback, attribution, experiments and
//! their stats, and the context's suggestions section.

use std::collections::HashSet;

use customer_context::proto::{self as pb, customer_ref::Identity};
use tonic::Code;

use crate::{
    fixtures::*,
    harness::{Backend, TestApp, spawn_app},
    on_both_backends,
};

on_both_backends!(
    complements_say_what_they_go_with_and_never_repeat_a_style,
    a_fresh_order_changes_complements_without_a_rebuild,
    a_remembered_list_shows_the_catalog_as_it_is_now,
    viewed_together_offers_alternatives_to_what_was_viewed,
    new_category_names_where_similar_customers_went_next,
    a_visitor_with_no_history_gets_best_sellers,
    returned_and_excluded_styles_stay_out_and_replenishables_come_back,
    thumbs_down_suppresses_and_orders_are_attributed,
    experiments_assign_stably_and_report_per_variant,
    the_context_offers_suggestions_but_not_the_cart,
    without_consent_suggestions_are_not_personal,
    opt_in_deployments_personalise_only_with_consent,
    reads_are_logged_and_erasure_removes_feedback,
    a_visitors_thumbs_down_follows_them_when_they_sign_in,
    bad_requests_name_their_fields,
    products_the_retailer_marks_as_not_merchandise_are_never_suggested,
);

/// (id, name, category, price, stock, group, replenish days, active)
type P = (
    &'static str,
    &'static str,
    [&'static str; 2],
    i64,
    i64,
    &'static str,
    u32,
    bool,
);

const CATALOG: &[P] = &[
    (
        "tr2-9",
        "Trail Runner 2 (9)",
        ["Footwear", "Running"],
        12900,
        10,
        "tr2",
        0,
        true,
    ),
    (
        "tr2-10",
        "Trail Runner 2 (10)",
        ["Footwear", "Running"],
        12900,
        10,
        "tr2",
        0,
        true,
    ),
    (
        "road-runner",
        "Road Runner",
        ["Footwear", "Running"],
        11900,
        10,
        "",
        0,
        true,
    ),
    (
        "rain-jacket-m",
        "Rain Jacket (M)",
        ["Apparel", "Jackets"],
        15900,
        5,
        "rain-jacket",
        0,
        true,
    ),
    (
        "rain-jacket-l",
        "Rain Jacket (L)",
        ["Apparel", "Jackets"],
        15900,
        5,
        "rain-jacket",
        0,
        true,
    ),
    (
        "wind-jacket",
        "Wind Jacket",
        ["Apparel", "Jackets"],
        9900,
        5,
        "",
        0,
        true,
    ),
    (
        "run-socks",
        "Running Socks",
        ["Accessories", "Socks"],
        1900,
        50,
        "",
        30,
        true,
    ),
    (
        "gaiter",
        "Trail Gaiter",
        ["Accessories", "Gaiters"],
        2500,
        0,
        "",
        0,
        true,
    ),
    (
        "insoles",
        "Trail Insoles",
        ["Accessories", "Insoles"],
        2900,
        10,
        "",
        0,
        true,
    ),
    (
        "old-cap",
        "Old Cap",
        ["Accessories", "Hats"],
        1500,
        10,
        "",
        0,
        false,
    ),
    (
        "bottle",
        "Bottle",
        ["Equipment", "Bottles"],
        1200,
        10,
        "",
        0,
        true,
    ),
];

const DAY: i64 = 24 * 60;

/// The shop: a catalog, other customers' history (trail runners go with
/// insoles and the out-of-stock gaiter; their buyers move on to jackets;
/// bottles sell every day), and Maya, who bought a Trail Runner 2 ten days
/// ago.
pub(crate) async fn shop(app: &TestApp) {
    let mut ingest = app.ingest.clone();
    let products = CATALOG
        .iter()
        .map(|&(id, name, cat, price, stock, group, replenish, active)| {
            let mut p = product(id, name, &cat, price, stock);
            p.group_id = group.into();
            p.replenish_after_days = replenish;
            p.active = Some(active);
            p
        })
        .collect();
    ingest
        .upsert_products(pb::UpsertProductsRequest { products })
        .await
        .expect("catalog");
    let l = |p: &str| line(p, 1, 1000);
    let orders = vec![
        order(
            "o-c1-1",
            "c1",
            30 * DAY,
            vec![l("tr2-10"), l("insoles"), l("gaiter")],
        ),
        order("o-c1-2", "c1", 20 * DAY, vec![l("rain-jacket-l")]),
        order(
            "o-c2-1",
            "c2",
            30 * DAY,
            vec![l("tr2-9"), l("insoles"), l("gaiter")],
        ),
        order("o-c2-2", "c2", 10 * DAY, vec![l("rain-jacket-m")]),
        order(
            "o-c3-1",
            "c3",
            25 * DAY,
            vec![l("tr2-9"), l("insoles"), l("gaiter")],
        ),
        order("o-c3-2", "c3", 5 * DAY, vec![l("rain-jacket-m")]),
        order("o-c4-1", "c4", 3 * DAY, vec![l("bottle")]),
        order("o-c4-2", "c4", 2 * DAY, vec![l("bottle"), l("run-socks")]),
        order("o-c5-1", "c5", DAY, vec![l("bottle")]),
        order("o-maya-1", "maya", 10 * DAY, vec![l("tr2-9")]),
    ];
    let r = ingest
        .record_orders(pb::RecordOrdersRequest { orders })
        .await
        .expect("orders")
        .into_inner();
    assert_eq!(r.summary.expect("summary").rejected, 0);
}

fn customer(id: &str) -> Option<pb::CustomerRef> {
    Some(pb::CustomerRef {
        identity: Some(Identity::CustomerId(id.into())),
    })
}

fn anonymous(id: &str) -> Option<pb::CustomerRef> {
    Some(pb::CustomerRef {
        identity: Some(Identity::AnonymousId(id.into())),
    })
}

async fn suggest(app: &TestApp, request: pb::SuggestCrossSellsRequest) -> pb::Suggestions {
    app.context
        .clone()
        .suggest_cross_sells(request)
        .await
        .expect("suggestions")
        .into_inner()
        .suggestions
        .expect("a list")
}

pub(crate) async fn for_customer(app: &TestApp, id: &str) -> pb::Suggestions {
    suggest(
        app,
        pb::SuggestCrossSellsRequest {
            customer: customer(id),
            limit: 50,
            ..Default::default()
        },
    )
    .await
}

fn ids(s: &pb::Suggestions) -> Vec<String> {
    s.items
        .iter()
        .map(|i| i.product.as_ref().expect("product").product_id.clone())
        .collect()
}

fn find<'a>(s: &'a pb::Suggestions, id: &str) -> Option<&'a pb::SuggestedItem> {
    s.items
        .iter()
        .find(|i| i.product.as_ref().is_some_and(|p| p.product_id == id))
}

fn reason(item: &pb::SuggestedItem) -> &pb::SuggestionReason {
    item.reason.as_ref().expect("a reason")
}

/// What no answer may ever contain, whoever asks: out of stock, inactive.
fn assert_sellable(s: &pb::Suggestions) {
    for item in &s.items {
        let p = item.product.as_ref().expect("product");
        assert!(p.available, "{} is not available", p.product_id);
        assert!(!["gaiter", "old-cap"].contains(&p.product_id.as_str()));
        let r = reason(item);
        assert!(!r.text.is_empty() && r.code != 0, "{item:?}");
        assert!(!item.suggestion_id.is_empty());
    }
    let groups: HashSet<&str> = s
        .items
        .iter()
        .map(|i| i.product.as_ref().expect("product").group_id.as_str())
        .collect();
    assert_eq!(groups.len(), s.items.len(), "one item per style");
    let ranks: Vec<u32> = s.items.iter().map(|i| i.rank).collect();
    assert_eq!(ranks, (1..=s.items.len() as u32).collect::<Vec<_>>());
}

async fn complements_say_what_they_go_with_and_never_repeat_a_style(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    shop(&app).await;
    let s = for_customer(&app, "maya").await;
    assert_sellable(&s);
    assert!(s.personalised && s.note.is_empty(), "{s:?}");
    assert_eq!((s.experiment.as_str(), s.variant.as_str()), ("", "default"));
    let ids = ids(&s);
    assert!(
        !ids.iter().any(|p| p.starts_with("tr2-")),
        "another size of the style she bought: {ids:?}"
    );
    let insoles = find(&s, "insoles").expect("insoles go with trail runners");
    let r = reason(insoles);
    assert_eq!(r.code(), pb::ReasonCode::BoughtTogether);
    assert_eq!(r.product_ids, ["tr2-9"]);
    assert!(
        r.text
            .starts_with("Goes with the Trail Runner 2 (9) you bought on "),
        "{}",
        r.text
    );
    // Deterministic: the same data and request give the same answer.
    let again = for_customer(&app, "maya").await;
    assert_eq!(self::ids(&again), ids);
    let scores: Vec<f64> = s.items.iter().map(|i| i.score).collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "{scores:?}");
}

async fn a_fresh_order_changes_complements_without_a_rebuild(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    shop(&app).await;
    let ask = || pb::SuggestCrossSellsRequest {
        customer: anonymous("visitor-1"),
        anchor_product_ids: vec!["bottle".into()],
        limit: 50,
        ..Default::default()
    };
    let before = suggest(&app, ask()).await;
    let wind = find(&before, "wind-jacket").map(|i| reason(i).code());
    assert_ne!(wind, Some(pb::ReasonCode::BoughtTogether));
    // Two customers buy a bottle with a wind jacket: no rebuild follows.
    let l = |p: &str| line(p, 1, 1000);
    app.ingest
        .clone()
        .record_orders(pb::RecordOrdersRequest {
            orders: vec![
                order("o-c6", "c6", 60, vec![l("bottle"), l("wind-jacket")]),
                order("o-c7", "c7", 30, vec![l("bottle"), l("wind-jacket")]),
            ],
        })
        .await
        .expect("orders");
    let after = suggest(&app, ask()).await;
    assert_sellable(&after);
    assert!(
        !ids(&after).contains(&"bottle".to_string()),
        "not the anchor itself"
    );
    let wind = find(&after, "wind-jacket").expect("now goes with bottles");
    assert_eq!(reason(wind).code(), pb::ReasonCode::BoughtTogether);
    assert_eq!(reason(wind).product_ids, ["bottle"]);
    assert_eq!(reason(wind).text, "Often bought together with the Bottle.");
    assert_eq!(
        after.items[0].product.as_ref().expect("p").product_id,
        "wind-jacket"
    );
}

/// A replica remembers the items it served a customer (only their signed
/// ids are made again): a price change or a sell-out still shows at once,
/// in SuggestCrossSells and in the context.
async fn a_remembered_list_shows_the_catalog_as_it_is_now(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    shop(&app).await;
    let price = |s: &pb::Suggestions| {
        let insoles = find(s, "insoles").expect("insoles go with trail runners");
        let p = insoles.product.as_ref().expect("product");
        p.price.as_ref().expect("price").amount_minor
    };
    let first = for_customer(&app, "maya").await;
    let again = for_customer(&app, "maya").await;
    assert_eq!(ids(&again), ids(&first));
    assert_eq!((price(&first), price(&again)), (2900, 2900));
    let in_context = || async {
        let c = context_of(&app, Identity::CustomerId("maya".into())).await;
        let s = c.suggestions.expect("suggestions");
        s.items
            .iter()
            .map(|i| i.product.clone().expect("product"))
            .collect::<Vec<_>>()
    };
    let before = in_context().await;
    assert!(
        before.iter().any(|p| p.product_id == "insoles"),
        "{before:?}"
    );
    assert_eq!(in_context().await, before, "remembered, the same");
    let mut insoles = product(
        "insoles",
        "Trail Insoles",
        &["Accessories", "Insoles"],
        2500,
        10,
    );
    insoles.active = Some(true);
    let mut ingest = app.ingest.clone();
    ingest
        .upsert_products(pb::UpsertProductsRequest {
            products: vec![insoles.clone()],
        })
        .await
        .expect("new price");
    assert_eq!(price(&for_customer(&app, "maya").await), 2500);
    let shown = in_context().await;
    let p = shown.iter().find(|p| p.product_id == "insoles");
    assert_eq!(
        p.and_then(|p| p.price.as_ref()).map(|m| m.amount_minor),
        Some(2500)
    );
    insoles.stock = Some(pb::product::Stock::StockQuantity(0));
    ingest
        .upsert_products(pb::UpsertProductsRequest {
            products: vec![insoles],
        })
        .await
        .expect("sold out");
    let s = for_customer(&app, "maya").await;
    assert!(find(&s, "insoles").is_none(), "sold out: {:?}", ids(&s));
    assert_sellable(&s);
    let shown = in_context().await;
    assert!(
        !shown.iter().any(|p| p.product_id == "insoles"),
        "{shown:?}"
    );
}

async fn viewed_together_offers_alternatives_to_what_was_viewed(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    shop(&app).await;
    let mut events = Vec::new();
    // Two visitors look at the wind jacket, the rain jacket and a bottle in
    // one visit.
    for v in ["v1", "v2"] {
        for (n, product, minutes) in [
            ("a", "wind-jacket", 50),
            ("c", "bottle", 48),
            ("b", "rain-jacket-m", 45),
        ] {
            events.push(event(
                &format!("{v}-{n}"),
                "",
                v,
                pb::BrowsingEventType::ProductViewed,
                product,
                minutes,
            ));
        }
    }
    // Leo looked at the wind jacket and bought nothing.
    events.push(view("leo-1", "leo", "wind-jacket", 20));
    let r = app
        .ingest
        .clone()
        .record_events(pb::RecordEventsRequest { events })
        .await
        .expect("events")
        .into_inner();
    assert_eq!(r.summary.expect("summary").rejected, 0);
    let summary = app.rebuild_model().await.expect("rebuild");
    assert_eq!(summary.sessions, 3);
    let s = for_customer(&app, "leo").await;
    assert_sellable(&s);
    assert!(s.personalised);
    let jacket = find(&s, "rain-jacket-m").expect("the alternative");
    let r = reason(jacket);
    assert_eq!(r.code(), pb::ReasonCode::ViewedTogether);
    assert_eq!(r.product_ids, ["wind-jacket"]);
    assert_eq!(
        r.text,
        "You looked at the Wind Jacket; shoppers who did often chose this instead."
    );
    // A bottle is no alternative to a jacket, however often both are viewed.
    let bottle = find(&s, "bottle").expect("a best-seller");
    assert_ne!(reason(bottle).code(), pb::ReasonCode::ViewedTogether);
    // Anchors work the same way for someone asking about a product now.
    let asked = suggest(
        &app,
        pb::SuggestCrossSellsRequest {
            customer: anonymous("visitor-2"),
            anchor_product_ids: vec!["wind-jacket".into()],
            ..Default::default()
        },
    )
    .await;
    let jacket = find(&asked, "rain-jacket-m").expect("the alternative");
    assert_eq!(
        reason(jacket).text,
        "Shoppers looking at the Wind Jacket also consider this."
    );
}

async fn new_category_names_where_similar_customers_went_next(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    shop(&app).await;
    let before = for_customer(&app, "maya").await;
    assert!(
        before
            .items
            .iter()
            .all(|i| reason(i).code() != pb::ReasonCode::NewCategory),
        "transitions come from a rebuild"
    );
    // Zoe bought running shoes nobody else bought: nothing goes with them
    // item by item, but runners in general moved on to jackets.
    app.ingest
        .clone()
        .record_orders(pb::RecordOrdersRequest {
            orders: vec![order(
                "o-zoe-1",
                "zoe",
                10 * DAY,
                vec![line("road-runner", 1, 1000)],
            )],
        })
        .await
        .expect("order");
    let summary = app.rebuild_model().await.expect("rebuild");
    assert!(summary.transitions > 0);
    let s = for_customer(&app, "zoe").await;
    assert_sellable(&s);
    let jacket = s
        .items
        .iter()
        .find(|i| reason(i).code() == pb::ReasonCode::NewCategory)
        .expect("a new-category suggestion");
    let r = reason(jacket);
    assert_eq!(r.from_category, "Footwear > Running");
    assert_eq!(r.category, "Apparel > Jackets");
    assert_eq!(
        r.text,
        "Customers who buy running often add jackets next; you have none yet."
    );
    assert!(
        jacket
            .product
            .as_ref()
            .expect("p")
            .product_id
            .starts_with("rain-jacket-")
    );
    // Maya's trail runners were bought with insoles and, by the same
    // customers, with the jacket: the more specific reasons win.
    let s = for_customer(&app, "maya").await;
    assert_eq!(
        reason(find(&s, "insoles").expect("insoles")).code(),
        pb::ReasonCode::BoughtTogether
    );
    let jacket = reason(find(&s, "rain-jacket-m").expect("the jacket"));
    assert_eq!(jacket.code(), pb::ReasonCode::AlsoBought);
    assert_eq!(jacket.product_ids, ["tr2-9"]);
    assert_eq!(
        jacket.text,
        "Customers who bought the Trail Runner 2 (9) you have often buy this too."
    );
}

async fn a_visitor_with_no_history_gets_best_sellers(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    shop(&app).await;
    for who in [
        anonymous("never-seen"),
        Some(pb::CustomerRef {
            identity: Some(Identity::Email("nobody@example.com".into())),
        }),
    ] {
        let response = app
            .context
            .clone()
            .suggest_cross_sells(pb::SuggestCrossSellsRequest {
                customer: who,
                ..Default::default()
            })
            .await
            .expect("an answer, not NOT_FOUND")
            .into_inner();
        assert!(response.customer_id.is_empty());
        let s = response.suggestions.expect("list");
        assert_sellable(&s);
        assert!(!s.personalised);
        assert_eq!(
            s.note,
            "No purchase or browsing history yet: these are the shop's best-sellers."
        );
        // Every sellable style that sells (the gaiter is out of stock).
        let mut styles = ids(&s);
        styles.sort();
        assert_eq!(
            styles,
            ["bottle", "insoles", "rain-jacket-m", "run-socks", "tr2-9"]
        );
        assert_eq!(s.items[0].product.as_ref().expect("p").product_id, "bottle");
        assert!(
            s.items
                .iter()
                .all(|i| reason(i).code() == pb::ReasonCode::Popular)
        );
        assert_eq!(
            reason(&s.items[0]).text,
            "One of the shop's best-sellers right now."
        );
    }
}

async fn returned_and_excluded_styles_stay_out_and_replenishables_come_back(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    shop(&app).await;
    let mut ingest = app.ingest.clone();
    // Sam and Tom bought socks 60 days ago (they come back after 30); Tom
    // returned his, and a rain jacket.
    ingest
        .record_orders(pb::RecordOrdersRequest {
            orders: vec![
                order("o-sam", "sam", 60 * DAY, vec![line("run-socks", 1, 1900)]),
                order(
                    "o-tom",
                    "tom",
                    60 * DAY,
                    vec![line("run-socks", 1, 1900), line("rain-jacket-m", 1, 15900)],
                ),
            ],
        })
        .await
        .expect("orders");
    let mut jacket = return_("r-tom", "o-tom", "tom", "rain-jacket-m", 55 * DAY);
    jacket.lines.push(pb::ReturnLine {
        product_id: "run-socks".into(),
        quantity: 1,
    });
    ingest
        .record_returns(pb::RecordReturnsRequest {
            returns: vec![jacket],
        })
        .await
        .expect("returns");
    let sam = for_customer(&app, "sam").await;
    assert!(
        ids(&sam).contains(&"run-socks".to_string()),
        "replenished: {:?}",
        ids(&sam)
    );
    let tom = for_customer(&app, "tom").await;
    assert_sellable(&tom);
    let tom_ids = ids(&tom);
    assert!(
        !tom_ids.contains(&"run-socks".to_string()),
        "returned: {tom_ids:?}"
    );
    assert!(
        !tom_ids.iter().any(|p| p.starts_with("rain-jacket")),
        "returned style, any size: {tom_ids:?}"
    );
    // Exclusions cover the style too.
    let s = suggest(
        &app,
        pb::SuggestCrossSellsRequest {
            customer: customer("maya"),
            exclude_product_ids: vec!["road-runner".into(), "rain-jacket-m".into()],
            limit: 50,
            ..Default::default()
        },
    )
    .await;
    let maya = ids(&s);
    assert!(
        !maya
            .iter()
            .any(|p| p == "road-runner" || p.starts_with("rain-jacket")),
        "{maya:?}"
    );
    assert!(!maya.is_empty());
}

async fn feedback(
    app: &TestApp,
    items: Vec<(String, pb::FeedbackKind)>,
) -> pb::RecordSuggestionFeedbackResponse {
    app.context
        .clone()
        .record_suggestion_feedback(pb::RecordSuggestionFeedbackRequest {
            feedback: items
                .into_iter()
                .map(|(id, kind)| pb::SuggestionFeedback {
                    suggestion_id: id,
                    kind: kind.into(),
                    occurred_at: None,
                })
                .collect(),
        })
        .await
        .expect("feedback")
        .into_inner()
}

async fn thumbs_down_suppresses_and_orders_are_attributed(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    shop(&app).await;
    app.rebuild_model().await.expect("rebuild");
    let s = for_customer(&app, "maya").await;
    let jacket = s
        .items
        .iter()
        .find(|i| i.product.as_ref().expect("p").group_id == "rain-jacket")
        .expect("a rain jacket");
    let insoles = find(&s, "insoles").expect("insoles");
    let mut items: Vec<(String, pb::FeedbackKind)> = s
        .items
        .iter()
        .map(|i| (i.suggestion_id.clone(), pb::FeedbackKind::Shown))
        .collect();
    items.push((jacket.suggestion_id.clone(), pb::FeedbackKind::ThumbsDown));
    items.push((
        insoles.suggestion_id.clone(),
        pb::FeedbackKind::SentToCustomer,
    ));
    // A forged id is rejected on its own; the rest is recorded.
    let mut forged = insoles.suggestion_id.clone();
    forged.replace_range(forged.len() - 4.., "AAAA");
    items.push((forged, pb::FeedbackKind::ThumbsUp));
    let r = feedback(&app, items.clone()).await;
    let summary = r.summary.expect("summary");
    assert_eq!(
        (summary.created, summary.rejected),
        (s.items.len() as u32 + 2, 1)
    );
    let last = r.results.last().expect("a result");
    assert_eq!(last.violations[0].field, "suggestion_id");
    // Sending it again changes nothing.
    let again = feedback(&app, items).await.summary.expect("summary");
    assert_eq!(
        (again.created, again.duplicate),
        (0, s.items.len() as u32 + 2)
    );

    let after = for_customer(&app, "maya").await;
    assert!(
        !ids(&after).iter().any(|p| p.starts_with("rain-jacket")),
        "thumbed down, any size: {:?}",
        ids(&after)
    );

    // Maya buys the insoles a day later: the suggestion gets the credit.
    app.ingest
        .clone()
        .record_orders(pb::RecordOrdersRequest {
            orders: vec![order("o-maya-2", "maya", 0, vec![line("insoles", 1, 2900)])],
        })
        .await
        .expect("order");
    let stats = app
        .context
        .clone()
        .get_suggestion_stats(pb::GetSuggestionStatsRequest::default())
        .await
        .expect("stats")
        .into_inner();
    assert_eq!(stats.experiment, "");
    let v = &stats.variants[0];
    assert_eq!(v.variant, "default");
    assert_eq!(
        (v.shown, v.accepted, v.purchased, v.rejected),
        (s.items.len() as u64, 1, 1, 1)
    );
    // Recording the same order again attributes nothing twice.
    app.ingest
        .clone()
        .record_orders(pb::RecordOrdersRequest {
            orders: vec![order("o-maya-2", "maya", 0, vec![line("insoles", 2, 2900)])],
        })
        .await
        .expect("order");
    let stats = app
        .context
        .clone()
        .get_suggestion_stats(pb::GetSuggestionStatsRequest::default())
        .await
        .expect("stats")
        .into_inner();
    assert_eq!(stats.variants[0].purchased, 1);
}

async fn experiments_assign_stably_and_report_per_variant(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    shop(&app).await;
    // Before the experiment: one suggestion shown with the default strategy.
    let before = for_customer(&app, "maya").await;
    feedback(
        &app,
        vec![(
            before.items[0].suggestion_id.clone(),
            pb::FeedbackKind::Shown,
        )],
    )
    .await;
    let variant = |name: &str, popular: f32| pb::Variant {
        name: name.into(),
        traffic_weight: 50,
        weights: Some(pb::StrategyWeights {
            popular: Some(popular),
            // The heavy variant also asks for the learned re-ranker (this
            // small shop trained none, so it changes nothing there).
            learned_reranker: Some(popular > 1.0),
            ..Default::default()
        }),
    };
    let set = app
        .context
        .clone()
        .set_experiment(pb::SetExperimentRequest {
            experiment: Some(pb::Experiment {
                name: "spring".into(),
                variants: vec![variant("control", 0.5), variant("popular-heavy", 3.0)],
                running: true,
                updated_at: None,
            }),
        })
        .await
        .expect("experiment")
        .into_inner();
    assert!(set.running && set.updated_at.is_some());
    assert_eq!(
        set.variants[1].weights.as_ref().and_then(|w| w.popular),
        Some(3.0)
    );
    assert_eq!(
        set.variants[1]
            .weights
            .as_ref()
            .and_then(|w| w.per_category),
        Some(3)
    );
    assert_eq!(
        set.variants[1]
            .weights
            .as_ref()
            .and_then(|w| w.new_categories),
        Some(3)
    );
    let learned = |k: usize| {
        set.variants[k]
            .weights
            .as_ref()
            .and_then(|w| w.learned_reranker)
    };
    assert_eq!((learned(0), learned(1)), (Some(false), Some(true)));

    // Every customer lands in one variant, the same every time; both
    // variants get customers.
    let mut seen = HashSet::new();
    let mut shown = Vec::new();
    for c in ["c1", "c2", "c3", "c4", "c5", "maya"] {
        let first = for_customer(&app, c).await;
        let second = for_customer(&app, c).await;
        assert_eq!(first.experiment, "spring");
        assert_eq!(first.variant, second.variant, "{c}");
        assert!(["control", "popular-heavy"].contains(&first.variant.as_str()));
        seen.insert(first.variant.clone());
        shown.push(first);
    }
    assert_eq!(seen.len(), 2, "six customers, two variants: {seen:?}");

    // Feedback: everything shown; the first item of each list sent.
    let mut items = Vec::new();
    for s in &shown {
        for i in &s.items {
            items.push((i.suggestion_id.clone(), pb::FeedbackKind::Shown));
        }
        items.push((s.items[0].suggestion_id.clone(), pb::FeedbackKind::ThumbsUp));
    }
    let r = feedback(&app, items).await;
    assert_eq!(r.summary.expect("summary").rejected, 0);
    let stats = app
        .context
        .clone()
        .get_suggestion_stats(pb::GetSuggestionStatsRequest {
            experiment: "spring".into(),
            ..Default::default()
        })
        .await
        .expect("stats")
        .into_inner();
    assert_eq!(stats.experiment, "spring");
    let names: Vec<&str> = stats.variants.iter().map(|v| v.variant.as_str()).collect();
    assert_eq!(names, ["control", "popular-heavy"]);
    for v in &stats.variants {
        let lists: Vec<&pb::Suggestions> =
            shown.iter().filter(|s| s.variant == v.variant).collect();
        let expected_shown: usize = lists.iter().map(|s| s.items.len()).sum();
        assert_eq!(v.shown, expected_shown as u64, "{}", v.variant);
        assert_eq!(v.accepted, lists.len() as u64);
        let a = v.acceptance.as_ref().expect("rate");
        assert!((a.value - v.accepted as f64 / v.shown as f64).abs() < 1e-9);
        assert!(
            a.low < a.value && a.value < a.high && a.low >= 0.0 && a.high <= 1.0,
            "{a:?}"
        );
        let c = v.conversion.as_ref().expect("rate");
        assert_eq!(c.value, 0.0);
        assert!(c.high > 0.0, "an interval even with no purchase");
    }
    // The default strategy's numbers are apart from the experiment's.
    let outside = app
        .context
        .clone()
        .get_suggestion_stats(pb::GetSuggestionStatsRequest {
            outside_experiments: true,
            ..Default::default()
        })
        .await
        .expect("stats")
        .into_inner();
    assert_eq!(outside.experiment, "");
    assert_eq!(outside.variants.len(), 1);
    assert_eq!(
        (
            outside.variants[0].variant.as_str(),
            outside.variants[0].shown
        ),
        ("default", 1)
    );
    let err = app
        .context
        .clone()
        .get_suggestion_stats(pb::GetSuggestionStatsRequest {
            experiment: "autumn".into(),
            ..Default::default()
        })
        .await
        .expect_err("unknown");
    assert_eq!(err.code(), Code::NotFound);
    let err = app
        .context
        .clone()
        .get_suggestion_stats(pb::GetSuggestionStatsRequest {
            experiment: "spring".into(),
            outside_experiments: true,
        })
        .await
        .expect_err("contradictory");
    assert_eq!(violated_fields(&err), ["experiment"]);

    // Stopping it: back to the default strategy at once.
    let mut stopped = set.clone();
    stopped.running = false;
    app.context
        .clone()
        .set_experiment(pb::SetExperimentRequest {
            experiment: Some(stopped),
        })
        .await
        .expect("stopped");
    let s = for_customer(&app, "maya").await;
    assert_eq!((s.experiment.as_str(), s.variant.as_str()), ("", "default"));
}

async fn the_context_offers_suggestions_but_not_the_cart(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    shop(&app).await;
    app.ingest
        .clone()
        .record_events(pb::RecordEventsRequest {
            events: vec![event(
                "maya-cart",
                "maya",
                "",
                pb::BrowsingEventType::ProductAddedToCart,
                "insoles",
                5,
            )],
        })
        .await
        .expect("event");
    let ctx = context_of(&app, Identity::CustomerId("maya".into())).await;
    let s = ctx.suggestions.expect("a suggestions section");
    assert_sellable(&s);
    assert!(s.items.len() <= 5, "default 5");
    assert!(!s.items.is_empty());
    assert!(
        !ids(&s).contains(&"insoles".to_string()),
        "in the cart: {:?}",
        ids(&s)
    );
    // A read mask without it reads none.
    let mut request = by(Identity::CustomerId("maya".into()));
    request.read_mask = Some(prost_types::FieldMask {
        paths: vec!["profile".into()],
    });
    assert!(
        context(&app, request)
            .await
            .expect("ctx")
            .suggestions
            .is_none()
    );
    let mut request = by(Identity::CustomerId("maya".into()));
    request.suggestions_limit = 2;
    let s = context(&app, request)
        .await
        .expect("ctx")
        .suggestions
        .expect("s");
    assert_eq!(s.items.len(), 2);
}

async fn without_consent_suggestions_are_not_personal(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    shop(&app).await;
    withdraw_personalisation(&app, "maya").await;
    let s = for_customer(&app, "maya").await;
    assert_sellable(&s);
    assert!(!s.personalised);
    assert!(
        s.note
            .contains("has not agreed to personalised suggestions"),
        "{}",
        s.note
    );
    assert!(
        s.items
            .iter()
            .all(|i| reason(i).code() == pb::ReasonCode::Popular),
        "nothing drawn from her history: {s:?}"
    );
    assert!(
        !ids(&s).iter().any(|p| p.starts_with("tr2-")),
        "still never what she owns"
    );
}

async fn opt_in_deployments_personalise_only_with_consent(backend: Backend) {
    let Some(app) = crate::harness::spawn_with_suggest(
        backend,
        customer_context::suggest::SuggestConfig {
            personalise_without_consent: false,
            ..Default::default()
        },
    )
    .await
    else {
        return;
    };
    shop(&app).await;
    let before = for_customer(&app, "maya").await;
    assert!(!before.personalised, "no consent on file: {before:?}");
    assert!(
        before
            .items
            .iter()
            .all(|i| reason(i).code() == pb::ReasonCode::Popular)
    );
    app.privacy
        .clone()
        .set_consent(pb::SetConsentRequest {
            customer_id: "maya".into(),
            consents: vec![pb::Consent {
                purpose: pb::ConsentPurpose::PersonalisedSuggestions.into(),
                granted: true,
                updated_at: Some(ago(1)),
                source: String::new(),
            }],
        })
        .await
        .expect("consent");
    let after = for_customer(&app, "maya").await;
    assert!(after.personalised);
    assert_eq!(
        reason(find(&after, "insoles").expect("insoles")).code(),
        pb::ReasonCode::BoughtTogether
    );
}

async fn reads_are_logged_and_erasure_removes_feedback(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    shop(&app).await;
    let s = for_customer(&app, "maya").await;
    let r = feedback(
        &app,
        vec![(
            s.items[0].suggestion_id.clone(),
            pb::FeedbackKind::ThumbsDown,
        )],
    )
    .await;
    assert_eq!(r.summary.expect("summary").created, 1);
    let log = app
        .privacy
        .clone()
        .list_access_log(pb::ListAccessLogRequest {
            customer: customer("maya"),
            page_size: 0,
            page_token: String::new(),
        })
        .await
        .expect("log")
        .into_inner();
    assert!(
        log.entries
            .iter()
            .any(|e| e.rpc.ends_with("/SuggestCrossSells") && e.customer_id == "maya"),
        "{:?}",
        log.entries
    );
    let receipt = app
        .privacy
        .clone()
        .erase_customer(pb::EraseCustomerRequest {
            customer: customer("maya"),
        })
        .await
        .expect("erased")
        .into_inner();
    let deleted = receipt
        .deleted
        .iter()
        .find(|t| t.table == "suggestion_feedback")
        .map(|t| t.rows);
    assert_eq!(deleted, Some(1));
    // Feedback on a suggestion made to her before: its id is still
    // genuine, but she is erased, so it is dropped, not stored.
    let late = feedback(
        &app,
        vec![(
            s.items[1].suggestion_id.clone(),
            pb::FeedbackKind::SentToCustomer,
        )],
    )
    .await;
    assert_eq!(
        crate::fixtures::outcomes(&late.results),
        [pb::ItemOutcome::Suppressed]
    );
    let stored: i64 = {
        use sqlx::Connection as _;
        let mut conn = sqlx::AnyConnection::connect(&app.database_url)
            .await
            .expect("a connection");
        sqlx::query_scalar("SELECT COUNT(*) FROM suggestion_feedback")
            .fetch_one(&mut conn)
            .await
            .expect("counted")
    };
    assert_eq!(stored, 0, "nothing names her");
    let stats = app
        .context
        .clone()
        .get_suggestion_stats(pb::GetSuggestionStatsRequest::default())
        .await
        .expect("stats")
        .into_inner();
    assert!(stats.variants.iter().all(|v| v.shown == 0), "{stats:?}");
}

async fn a_visitors_thumbs_down_follows_them_when_they_sign_in(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    shop(&app).await;
    let visitor = suggest(
        &app,
        pb::SuggestCrossSellsRequest {
            customer: anonymous("anon-zoe"),
            ..Default::default()
        },
    )
    .await;
    let bottle = find(&visitor, "bottle").expect("a best-seller");
    let r = feedback(
        &app,
        vec![(bottle.suggestion_id.clone(), pb::FeedbackKind::ThumbsDown)],
    )
    .await;
    assert_eq!(r.summary.expect("summary").created, 1);
    let again = suggest(
        &app,
        pb::SuggestCrossSellsRequest {
            customer: anonymous("anon-zoe"),
            ..Default::default()
        },
    )
    .await;
    assert!(find(&again, "bottle").is_none(), "{:?}", ids(&again));
    // She signs up; the anonymous id is linked to her account.
    let mut ingest = app.ingest.clone();
    ingest
        .upsert_customers(pb::UpsertCustomersRequest {
            customers: vec![crate::fixtures::customer("zoe", "Zoe", "", "", "")],
        })
        .await
        .expect("customer");
    ingest
        .link_identity(pb::LinkIdentityRequest {
            customer_id: "zoe".into(),
            kind: pb::IdentityKind::AnonymousId.into(),
            value: "anon-zoe".into(),
        })
        .await
        .expect("linked");
    let zoe = for_customer(&app, "zoe").await;
    assert!(!zoe.items.is_empty());
    assert!(find(&zoe, "bottle").is_none(), "{:?}", ids(&zoe));
}

async fn bad_requests_name_their_fields(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let err = app
        .context
        .clone()
        .suggest_cross_sells(pb::SuggestCrossSellsRequest {
            customer: None,
            anchor_product_ids: vec![" ".into()],
            exclude_product_ids: vec!["x".into(); 201],
            limit: 51,
        })
        .await
        .expect_err("invalid");
    let mut fields = violated_fields(&err);
    fields.sort();
    assert_eq!(
        fields,
        [
            "anchor_product_ids[0]",
            "customer",
            "exclude_product_ids",
            "limit"
        ]
    );
    let err = app
        .context
        .clone()
        .set_experiment(pb::SetExperimentRequest {
            experiment: Some(pb::Experiment {
                name: "bad name!".into(),
                variants: vec![pb::Variant {
                    name: "only".into(),
                    traffic_weight: 0,
                    weights: None,
                }],
                running: true,
                updated_at: None,
            }),
        })
        .await
        .expect_err("invalid");
    let mut fields = violated_fields(&err);
    fields.sort();
    assert_eq!(
        fields,
        [
            "experiment.name",
            "experiment.variants",
            "experiment.variants[0].traffic_weight"
        ]
    );
    let r = feedback(
        &app,
        vec![
            ("".into(), pb::FeedbackKind::Shown),
            ("s1.bm9wZQ.AAAA".into(), pb::FeedbackKind::Unspecified),
        ],
    )
    .await;
    assert_eq!(r.results[0].violations[0].field, "suggestion_id");
    assert_eq!(r.results[1].violations[0].field, "kind");
}

/// What a visitor with no history is offered.
async fn best_sellers(app: &TestApp) -> Vec<String> {
    let request = pb::SuggestCrossSellsRequest {
        customer: anonymous("visitor-9"),
        limit: 50,
        ..Default::default()
    };
    ids(&suggest(app, request).await)
}

async fn products_the_retailer_marks_as_not_merchandise_are_never_suggested(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    shop(&app).await;
    assert!(best_sellers(&app).await.contains(&"bottle".to_owned()));
    // The bottle is a deposit item here: the retailer says so.
    let mut bottle = product("bottle", "Bottle", &["Equipment", "Bottles"], 1200, 10);
    bottle.merchandise = Some(false);
    let upsert = |p: pb::Product| {
        let mut ingest = app.ingest.clone();
        async move {
            ingest
                .upsert_products(pb::UpsertProductsRequest { products: vec![p] })
                .await
                .expect("upsert")
                .into_inner()
        }
    };
    assert_eq!(
        upsert(bottle.clone())
            .await
            .summary
            .expect("summary")
            .updated,
        1
    );
    let list = best_sellers(&app).await;
    assert!(!list.contains(&"bottle".to_owned()), "{list:?}");
    // Left unsaid, the category decides again ("Equipment" is merchandise).
    bottle.merchandise = None;
    upsert(bottle).await;
    assert!(best_sellers(&app).await.contains(&"bottle".to_owned()));
}
