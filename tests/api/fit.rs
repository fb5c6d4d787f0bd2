//! Fit through the real server: sizes in the catalogue, the customer's
//! size profile in the context, suggestions in their size (through both
//! suggestion RPCs), a new return moving the size without a rebuild, and
//! bad sizes named as field violations.

use std::collections::HashMap;

use customer_context::proto::{self as pb, customer_ref::Identity};

use crate::{
    fixtures::*,
    harness::{Backend, TestApp, spawn_app},
    on_both_backends,
};

on_both_backends!(
    suggestions_come_in_the_size_the_customer_keeps,
    the_context_lists_sizes_and_the_brief_mentions_fit,
    a_new_size_return_moves_the_size_without_a_rebuild,
    bad_sizes_are_field_violations,
);

const DAY: i64 = 24 * 60;
const JACKETS: [&str; 2] = ["Apparel", "Jackets"];
const RUNNING: [&str; 2] = ["Footwear", "Running"];
const TOPS: [&str; 2] = ["Apparel", "Tops"];
const DRESSES: [&str; 2] = ["Apparel", "Dresses"];

/// Jackets, running shoes and tops in sizes (some sold out), a bag
/// without one; other customers buy everything so all of it sells.
/// Customer `maya` kept a windbreaker in L and trail shoes in 9, and sent
/// a shell back in M as too small; twenty others keep one size in tops and
/// jackets.
async fn shop(app: &TestApp) {
    let mut products = vec![
        sized("shell-m", "shell", "Shell", &JACKETS, "M", 5),
        sized("shell-l", "shell", "Shell", &JACKETS, "L", 5),
        sized(
            "windbreaker-l",
            "windbreaker",
            "Windbreaker",
            &JACKETS,
            "L",
            5,
        ),
        sized("trail-9", "trail", "Trail Shoe", &RUNNING, "9", 5),
    ];
    products.extend(style("fleece", "Fleece", &JACKETS, &["S", "M", "L", "XL"]));
    // The parka is sold out in L.
    products.push(sized("parka-m", "parka", "Parka", &JACKETS, "M", 5));
    products.push(sized("parka-l", "parka", "Parka", &JACKETS, "L", 0));
    products.extend(style("racer", "Racer", &RUNNING, &["8", "9", "10"]));
    // The tempo is sold out in 9.
    products.push(sized("tempo-9", "tempo", "Tempo", &RUNNING, "9", 0));
    products.push(sized("tempo-10", "tempo", "Tempo", &RUNNING, "10", 5));
    products.extend(style("tee", "Tee", &TOPS, &["S", "M", "L"]));
    // Numeric sizes: nothing of Maya's says hers.
    products.extend(style("dress", "Dress", &DRESSES, &["6", "8", "10"]));
    products.push(product(
        "daypack",
        "Daypack",
        &["Accessories", "Bags"],
        6900,
        5,
    ));
    let mut ingest = app.ingest.clone();
    ingest
        .upsert_products(pb::UpsertProductsRequest { products })
        .await
        .expect("products");
    ingest
        .upsert_customers(pb::UpsertCustomersRequest {
            customers: vec![
                customer("maya", "Maya Chen", "maya@example.com", "", ""),
                customer("other", "Other Buyer", "other@example.com", "", ""),
            ],
        })
        .await
        .expect("customers");
    let mut orders = vec![
        order(
            "o-maya-1",
            "maya",
            300 * DAY,
            vec![line("windbreaker-l", 1, 5000), line("trail-9", 1, 5000)],
        ),
        order("o-maya-2", "maya", 20 * DAY, vec![line("shell-m", 1, 5000)]),
    ];
    let sellers = [
        "fleece-S", "fleece-M", "parka-m", "racer-8", "racer-10", "tempo-10", "tee-S", "tee-M",
        "daypack", "dress-8",
    ];
    for (k, p) in sellers.iter().enumerate() {
        orders.push(order(
            &format!("o-other-{k}"),
            "other",
            (k as i64 + 1) * DAY,
            vec![line(p, 1, 5000)],
        ));
    }
    // Twenty customers keep the same size in tops and jackets: in this
    // shop a size carries between them.
    for k in 0..20 {
        let size = ["S", "M", "L"][k % 3];
        orders.push(order(
            &format!("o-twin-{k}"),
            &format!("twin-{k}"),
            (k as i64 + 2) * DAY,
            vec![
                line(&format!("tee-{size}"), 1, 5000),
                line(&format!("fleece-{size}"), 1, 5000),
            ],
        ));
    }
    let stored = ingest
        .record_orders(pb::RecordOrdersRequest { orders })
        .await
        .expect("orders")
        .into_inner();
    assert!(stored.results.iter().all(|r| r.violations.is_empty()));
    ingest
        .record_returns(pb::RecordReturnsRequest {
            returns: vec![return_("r-maya-1", "o-maya-2", "maya", "shell-m", 10 * DAY)],
        })
        .await
        .expect("returns");
    // Which domains share sizes is learned by a full build.
    app.rebuild_model().await.expect("rebuilt");
}

/// A style in stock in every one of `sizes` (variant ids `{group}-{size}`).
fn style(group: &str, name: &str, category: &[&str], sizes: &[&str]) -> Vec<pb::Product> {
    sizes
        .iter()
        .map(|size| sized(&format!("{group}-{size}"), group, name, category, size, 5))
        .collect()
}

/// Up to 50 suggestions for `who` through SuggestCrossSells.
async fn suggest_for(app: &TestApp, who: Option<pb::CustomerRef>) -> pb::Suggestions {
    app.context
        .clone()
        .suggest_cross_sells(pb::SuggestCrossSellsRequest {
            customer: who,
            limit: 50,
            ..Default::default()
        })
        .await
        .expect("suggestions")
        .into_inner()
        .suggestions
        .expect("a list")
}

fn maya() -> Option<pb::CustomerRef> {
    Some(pb::CustomerRef {
        identity: Some(Identity::CustomerId("maya".into())),
    })
}

/// Suggested styles with the product offered and how its size was chosen.
fn offered(s: &pb::Suggestions) -> HashMap<String, (String, pb::SizeChoice)> {
    s.items
        .iter()
        .map(|i| {
            let p = i.product.as_ref().expect("a product");
            let fit = i.fit.clone().expect("a size choice");
            (p.group_id.clone(), (p.product_id.clone(), fit))
        })
        .collect()
}

/// What both suggestion RPCs must offer Maya: fleece and racer in her
/// sizes, parka and tempo not at all (sold out in her size), the tee
/// probably in the size she keeps in jackets (same department and size
/// system), the dress with its size unknown (numeric sizes), the bag
/// without a size.
fn assert_offered_in_her_size(s: &pb::Suggestions) {
    let got = offered(s);
    let (fleece, fit) = &got["fleece"];
    assert_eq!(fleece, "fleece-L");
    assert_eq!(fit.status(), pb::SizeFit::CustomerSize);
    assert_eq!(
        (fit.size.as_str(), fit.size_domain.as_str()),
        ("L", "Apparel > Jackets")
    );
    assert_eq!(fit.confidence(), pb::SizeConfidence::Medium);
    assert_eq!(fit.text, "In L, the size you kept in jackets.");
    let item = s
        .items
        .iter()
        .find(|i| {
            i.product
                .as_ref()
                .is_some_and(|p| p.product_id == "fleece-L")
        })
        .expect("the fleece");
    let reason = item.reason.as_ref().expect("a reason");
    assert!(
        reason
            .text
            .ends_with(" In L, the size you kept in jackets."),
        "{}",
        reason.text
    );
    let (racer, fit) = &got["racer"];
    assert_eq!(
        (racer.as_str(), fit.status()),
        ("racer-9", pb::SizeFit::CustomerSize)
    );
    assert!(
        !got.contains_key("parka"),
        "no parka in L: not another size"
    );
    assert!(
        !got.contains_key("tempo"),
        "no tempo in 9: not another size"
    );
    let (tee, fit) = &got["tee"];
    assert_eq!(
        (tee.as_str(), fit.status(), fit.size.as_str()),
        ("tee-L", pb::SizeFit::Probable, "L")
    );
    assert_eq!(fit.size_domain, "Apparel > Tops");
    assert_eq!(fit.confidence(), pb::SizeConfidence::Low);
    assert_eq!(fit.text, "Probably L: the size you keep in jackets.");
    let (_, fit) = &got["dress"];
    assert_eq!(fit.status(), pb::SizeFit::Unknown);
    assert!(fit.size.is_empty());
    assert_eq!(fit.sizes_in_stock, ["6", "8", "10"]);
    assert_eq!(
        fit.text,
        "Their size in dresses is not known yet: ask. In stock in 6, 8, 10."
    );
    let (_, fit) = &got["daypack"];
    assert_eq!(fit.status(), pb::SizeFit::NotSized);
    assert!(fit.text.is_empty());
    assert!(!got.contains_key("shell"), "returned");
    assert!(
        !got.contains_key("windbreaker") && !got.contains_key("trail"),
        "bought"
    );
}

async fn suggestions_come_in_the_size_the_customer_keeps(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    shop(&app).await;
    assert_offered_in_her_size(&suggest_for(&app, maya()).await);
    // The same through the context's section.
    let ctx = app
        .context
        .clone()
        .get_customer_context(pb::GetCustomerContextRequest {
            customer: maya(),
            suggestions_limit: 50,
            ..Default::default()
        })
        .await
        .expect("a context")
        .into_inner();
    assert_offered_in_her_size(ctx.suggestions.as_ref().expect("suggestions"));
    // A visitor with no history: every sized style says its size is
    // unknown, and none is left out for it.
    let visitor = Some(pb::CustomerRef {
        identity: Some(Identity::AnonymousId("never-seen".into())),
    });
    let cold = suggest_for(&app, visitor).await;
    let got = offered(&cold);
    for style in ["fleece", "parka", "racer", "tempo", "tee"] {
        assert_eq!(got[style].1.status(), pb::SizeFit::Unknown, "{style}");
    }
}

async fn the_context_lists_sizes_and_the_brief_mentions_fit(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    shop(&app).await;
    let ctx = context_of(&app, Identity::CustomerId("maya".into())).await;
    let profile = ctx.profile.expect("a profile");
    let sizes: Vec<(&str, &str, pb::SizeConfidence, &str)> = profile
        .sizes
        .iter()
        .map(|e| {
            (
                e.category.as_str(),
                e.size.as_str(),
                e.confidence(),
                e.summary.as_str(),
            )
        })
        .collect();
    assert_eq!(
        sizes,
        [
            (
                "Apparel > Jackets",
                "L",
                pb::SizeConfidence::Medium,
                "L — kept 1, returned M as too small"
            ),
            (
                "Footwear > Running",
                "9",
                pb::SizeConfidence::Medium,
                "9 — kept 1"
            ),
        ],
        "latest evidence first"
    );
    let jackets = &profile.sizes[0];
    assert_eq!(jackets.size_system(), pb::SizeSystem::Alpha);
    assert_eq!((jackets.kept_items, jackets.kept_in_size), (1, 1));
    assert_eq!(jackets.returned_too_small, ["M"]);
    let brief = ctx.agent_brief;
    assert!(
        brief.ends_with("Fit: Shell (M) came back too small; they keep L in jackets."),
        "{brief}"
    );
    // Products carry their sizes.
    let line = ctx
        .recent_orders
        .iter()
        .flat_map(|o| &o.lines)
        .find_map(|l| l.product.as_ref().filter(|p| p.product_id == "trail-9"))
        .expect("the trail shoe");
    assert_eq!(
        (line.size.as_str(), line.size_system()),
        ("9", pb::SizeSystem::Numeric)
    );
}

async fn a_new_size_return_moves_the_size_without_a_rebuild(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    shop(&app).await;
    let before = suggest_for(&app, maya()).await;
    assert_eq!(offered(&before)["fleece"].0, "fleece-L");
    // The windbreaker in L goes back as too small too: XL now.
    let mut r = return_("r-maya-2", "o-maya-1", "maya", "windbreaker-l", 60);
    r.reason_code = "too_small".into();
    app.ingest
        .clone()
        .record_returns(pb::RecordReturnsRequest { returns: vec![r] })
        .await
        .expect("a return");
    let got = offered(&suggest_for(&app, maya()).await);
    assert_eq!(got["fleece"].0, "fleece-XL");
    assert_eq!(got["fleece"].1.confidence(), pb::SizeConfidence::Low);
    assert_eq!(
        got["fleece"].1.text,
        "In XL, one size up from the L you sent back as too small."
    );
    let ctx = context_of(&app, Identity::CustomerId("maya".into())).await;
    let jackets = &ctx.profile.expect("a profile").sizes[0];
    assert_eq!(jackets.size, "XL");
    assert_eq!(jackets.returned_too_small, ["L", "M"], "newest first");
}

async fn bad_sizes_are_field_violations(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let mut wrong_system = sized("p-1", "p", "Shell", &JACKETS, "M", 5);
    wrong_system.size_system = pb::SizeSystem::Numeric.into();
    let mut unknown_system = sized("p-2", "p", "Shell", &JACKETS, "M", 5);
    unknown_system.size_system = 99;
    let too_long = sized("p-3", "p", "Shell", &JACKETS, &"X".repeat(40), 5);
    let one_size = sized("p-4", "p", "Shell", &JACKETS, "One Size", 5);
    let results = app
        .ingest
        .clone()
        .upsert_products(pb::UpsertProductsRequest {
            products: vec![wrong_system, unknown_system, too_long, one_size],
        })
        .await
        .expect("a batch answer")
        .into_inner()
        .results;
    let fields: Vec<Vec<&str>> = results
        .iter()
        .map(|r| r.violations.iter().map(|v| v.field.as_str()).collect())
        .collect();
    assert_eq!(
        fields,
        [vec!["size"], vec!["size_system"], vec!["size"], vec![]]
    );
    // "One Size" is no size at all.
    app.ingest
        .clone()
        .upsert_customers(pb::UpsertCustomersRequest {
            customers: vec![customer("c-1", "Sam Smith", "sam@example.com", "", "")],
        })
        .await
        .expect("a customer");
    let ctx_product = app
        .ingest
        .clone()
        .record_orders(pb::RecordOrdersRequest {
            orders: vec![order("o-1", "c-1", 60, vec![line("p-4", 1, 5000)])],
        })
        .await
        .expect("an order");
    assert!(ctx_product.get_ref().results[0].violations.is_empty());
    let ctx = context_of(&app, Identity::CustomerId("c-1".into())).await;
    let p = ctx.recent_orders[0].lines[0].product.as_ref().expect("p");
    assert!(p.size.is_empty());
    assert_eq!(p.size_system(), pb::SizeSystem::Unspecified);
}
