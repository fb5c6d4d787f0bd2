//! SearchProducts through the real server: words, prefixes and typos;
//! filters; results in the customer's size with what they own or returned
//! marked; consent; a change through another replica on the next search;
//! feedback on a result; field violations.

use customer_context::proto::{self as pb, customer_ref::Identity};

use crate::{
    fixtures::*,
    harness::{Backend, TestApp, spawn_app},
    on_both_backends,
};

on_both_backends!(
    words_in_any_order_prefixes_and_typos_find_products,
    filters_narrow_the_results,
    results_for_a_customer_come_in_their_size_with_what_they_own_marked,
    with_consent_withdrawn_nothing_is_personal,
    a_change_through_another_replica_shows_on_the_next_search,
    a_customer_id_is_known_until_erased,
    feedback_works_on_a_search_result,
    bad_searches_are_field_violations,
);

const DAY: i64 = 24 * 60;
const JACKETS: [&str; 2] = ["Apparel", "Jackets"];

/// Jackets in sizes (the parka sold out in L), hiking socks and boots of
/// two brands, a gift card. Maya kept a windbreaker in L and sent a shell
/// back in M as too small: she wears L in jackets.
pub async fn shop(app: &TestApp) {
    let mut products = Vec::new();
    for size in ["S", "M", "L"] {
        products.push(sized(
            &format!("shell-{size}"),
            "shell",
            "Waterproof Shell Jacket",
            &JACKETS,
            size,
            5,
        ));
        products.push(sized(
            &format!("fleece-{size}"),
            "fleece",
            "Polar Fleece Jacket",
            &JACKETS,
            size,
            5,
        ));
    }
    products.push(sized(
        "parka-M",
        "parka",
        "Insulated Parka",
        &JACKETS,
        "M",
        5,
    ));
    products.push(sized(
        "parka-L",
        "parka",
        "Insulated Parka",
        &JACKETS,
        "L",
        0,
    ));
    products.push(sized(
        "windbreaker-L",
        "windbreaker",
        "Windbreaker Jacket",
        &JACKETS,
        "L",
        5,
    ));
    products.push(product(
        "socks",
        "Merino Hiking Socks",
        &["Accessories", "Socks"],
        1_900,
        40,
    ));
    products.push(product(
        "boot-np",
        "Leather Hiking Boot",
        &["Footwear", "Boots"],
        15_900,
        4,
    ));
    products.push(pb::Product {
        brand: "Alpine".into(),
        ..product(
            "boot-alp",
            "Alpine Hiking Boot",
            &["Footwear", "Boots"],
            9_900,
            4,
        )
    });
    products.push(product(
        "card",
        "Hiking Gift Card",
        &["Gift Cards"],
        5_000,
        100,
    ));
    let mut ingest = app.ingest.clone();
    let r = ingest
        .upsert_products(pb::UpsertProductsRequest { products })
        .await
        .expect("products")
        .into_inner();
    assert_eq!(r.summary.expect("a summary").rejected, 0);
    ingest
        .upsert_customers(pb::UpsertCustomersRequest {
            customers: vec![customer("maya", "Maya Chen", "maya@example.com", "", "")],
        })
        .await
        .expect("customers");
    ingest
        .record_orders(pb::RecordOrdersRequest {
            orders: vec![
                order(
                    "o-maya-1",
                    "maya",
                    300 * DAY,
                    vec![line("windbreaker-L", 1, 5000)],
                ),
                order("o-maya-2", "maya", 20 * DAY, vec![line("shell-M", 1, 5000)]),
            ],
        })
        .await
        .expect("orders");
    ingest
        .record_returns(pb::RecordReturnsRequest {
            returns: vec![return_("r-maya-1", "o-maya-2", "maya", "shell-M", 10 * DAY)],
        })
        .await
        .expect("returns");
}

fn maya() -> Option<pb::CustomerRef> {
    Some(pb::CustomerRef {
        identity: Some(Identity::Email("MAYA@example.com".into())),
    })
}

pub fn request(query: &str) -> pb::SearchProductsRequest {
    pb::SearchProductsRequest {
        query: query.into(),
        limit: 20,
        ..Default::default()
    }
}

/// [`request`] for Maya, by her email.
fn for_maya(query: &str) -> pb::SearchProductsRequest {
    pb::SearchProductsRequest {
        customer: maya(),
        ..request(query)
    }
}

pub async fn search(app: &TestApp, r: pb::SearchProductsRequest) -> pb::SearchProductsResponse {
    app.context
        .clone()
        .search_products(r)
        .await
        .expect("a search")
        .into_inner()
}

fn styles(r: &pb::SearchProductsResponse) -> Vec<String> {
    r.results
        .iter()
        .map(|f| f.product.as_ref().expect("a product").group_id.clone())
        .collect()
}

fn found<'a>(r: &'a pb::SearchProductsResponse, group: &str) -> &'a pb::FoundProduct {
    r.results
        .iter()
        .find(|f| f.product.as_ref().is_some_and(|p| p.group_id == group))
        .unwrap_or_else(|| panic!("{group} in {:?}", styles(r)))
}

async fn words_in_any_order_prefixes_and_typos_find_products(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    shop(&app).await;
    let r = search(&app, request("jackets waterproof ")).await;
    assert_eq!(styles(&r)[0], "shell", "{:?}", styles(&r));
    assert!(!r.personalised && r.note.is_empty());
    assert_eq!(r.results[0].rank, 1);
    // One result per style.
    let mut unique = styles(&r);
    unique.dedup();
    assert_eq!(unique.len(), r.results.len());
    // The last word while typing; a typo.
    assert_eq!(styles(&search(&app, request("insul")).await), ["parka"]);
    assert_eq!(
        styles(&search(&app, request("windbraeker ")).await),
        ["windbreaker"]
    );
    // Every word named comes first; the gift card is not merchandise.
    let hiking = styles(&search(&app, request("hiking boot ")).await);
    assert_eq!(&hiking[..2], ["boot-alp", "boot-np"], "{hiking:?}");
    assert!(hiking.contains(&"socks".to_owned()), "{hiking:?}");
    assert!(!hiking.contains(&"card".to_owned()), "{hiking:?}");
    // Without a customer, a sized style says to ask.
    let fleece = search(&app, request("fleece")).await;
    let fit = fleece.results[0].fit.as_ref().expect("a size choice");
    assert_eq!(fit.status(), pb::SizeFit::Unknown);
    assert_eq!(fit.sizes_in_stock, ["S", "M", "L"]);
}

async fn filters_narrow_the_results(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    shop(&app).await;
    let with = |filter: pb::ProductFilter| pb::SearchProductsRequest {
        filter: Some(filter),
        ..request("hiking")
    };
    let boots = with(pb::ProductFilter {
        category_path: vec!["footwear".into()],
        ..Default::default()
    });
    let mut got = styles(&search(&app, boots).await);
    got.sort();
    assert_eq!(got, ["boot-alp", "boot-np"]);
    let alpine = with(pb::ProductFilter {
        brand: "ALPINE".into(),
        ..Default::default()
    });
    assert_eq!(styles(&search(&app, alpine).await), ["boot-alp"]);
    let cheap = with(pb::ProductFilter {
        max_price: usd(10_000),
        ..Default::default()
    });
    let got = styles(&search(&app, cheap).await);
    assert_eq!(got, ["boot-alp", "socks"], "{got:?}");
    let dear = with(pb::ProductFilter {
        min_price: usd(10_000),
        max_price: usd(20_000),
        ..Default::default()
    });
    assert_eq!(styles(&search(&app, dear).await), ["boot-np"]);
    let in_stock = pb::SearchProductsRequest {
        filter: Some(pb::ProductFilter {
            in_stock_only: true,
            ..Default::default()
        }),
        customer: maya(),
        ..request("parka")
    };
    assert!(
        search(&app, in_stock).await.results.is_empty(),
        "sold out in her L"
    );
}

async fn results_for_a_customer_come_in_their_size_with_what_they_own_marked(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    shop(&app).await;
    let r = search(&app, for_maya("jacket")).await;
    assert!(r.personalised, "{}", r.note);
    assert_eq!(r.customer_id, "maya");
    let fleece = found(&r, "fleece");
    assert_eq!(fleece.product.as_ref().unwrap().product_id, "fleece-L");
    let fit = fleece.fit.as_ref().unwrap();
    assert_eq!(fit.status(), pb::SizeFit::CustomerSize);
    assert_eq!(fit.text, "In L, the size you kept in jackets.");
    assert!(fleece.available && !fleece.owned && !fleece.returned);
    let shell = found(&r, "shell");
    assert!(shell.returned, "she sent the M back");
    assert_eq!(shell.product.as_ref().unwrap().product_id, "shell-L");
    assert!(found(&r, "windbreaker").owned);
    let parka = search(&app, for_maya("parka")).await;
    let parka = &parka.results[0];
    assert_eq!(parka.product.as_ref().unwrap().product_id, "parka-L");
    assert!(!parka.available, "L is sold out");
    assert_eq!(parka.fit.as_ref().unwrap().sizes_in_stock, ["M"]);
    // The search read her history: on record.
    let reads = crate::http::reads(&app, "maya").await;
    assert!(
        reads.get("SearchProducts").is_some_and(|n| *n > 0),
        "{reads:?}"
    );
    // She buys the fleece (through another replica): the same search,
    // asked again at once, marks it owned.
    let (mut ingest, _) = app.replica().await;
    ingest
        .record_orders(pb::RecordOrdersRequest {
            orders: vec![order(
                "o-maya-3",
                "maya",
                DAY,
                vec![line("fleece-L", 1, 8000)],
            )],
        })
        .await
        .expect("an order");
    let again = search(&app, for_maya("jacket")).await;
    assert!(found(&again, "fleece").owned, "{:?}", styles(&again));
}

async fn with_consent_withdrawn_nothing_is_personal(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    shop(&app).await;
    // Remembered first, so the withdrawal must reach this replica's memory.
    let before = search(&app, for_maya("jacket")).await;
    assert!(before.personalised);
    withdraw_personalisation(&app, "maya").await;
    let r = search(&app, for_maya("jacket")).await;
    assert!(!r.personalised);
    assert!(r.note.contains("not agreed"), "{}", r.note);
    assert!(r.results.iter().all(|f| !f.owned && !f.returned));
    let fit = found(&r, "fleece").fit.as_ref().unwrap();
    assert_eq!(fit.status(), pb::SizeFit::Unknown);
    // The same results as for anyone.
    assert_eq!(styles(&r), styles(&search(&app, request("jacket")).await));
}

async fn a_change_through_another_replica_shows_on_the_next_search(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    shop(&app).await;
    assert_eq!(styles(&search(&app, request("merino")).await), ["socks"]);
    let (mut other, _) = app.replica().await;
    other
        .upsert_products(pb::UpsertProductsRequest {
            products: vec![
                product(
                    "socks",
                    "Merino Hiking Socks",
                    &["Accessories", "Socks"],
                    2_400,
                    0,
                ),
                product(
                    "gaiter",
                    "Merino Neck Gaiter",
                    &["Accessories", "Scarves"],
                    2_900,
                    9,
                ),
            ],
        })
        .await
        .expect("changed elsewhere");
    let r = search(&app, request("merino")).await;
    let mut got = styles(&r);
    got.sort();
    assert_eq!(got, ["gaiter", "socks"], "a new product is found at once");
    let socks = found(&r, "socks");
    assert_eq!(socks.product.as_ref().unwrap().price, usd(2_400));
    assert!(!socks.available);
    let in_stock = pb::SearchProductsRequest {
        filter: Some(pb::ProductFilter {
            in_stock_only: true,
            max_price: usd(2_000),
            ..Default::default()
        }),
        ..request("merino")
    };
    assert!(search(&app, in_stock).await.results.is_empty());
}

async fn a_customer_id_is_known_until_erased(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    shop(&app).await;
    let by_id = |id: &str| pb::SearchProductsRequest {
        customer: Some(pb::CustomerRef {
            identity: Some(Identity::CustomerId(id.into())),
        }),
        ..request("jacket")
    };
    assert_eq!(search(&app, by_id("nobody")).await.customer_id, "");
    // Found once, then remembered by this replica.
    for _ in 0..2 {
        let r = search(&app, by_id("maya")).await;
        assert_eq!(r.customer_id, "maya");
        assert!(r.personalised && found(&r, "windbreaker").owned);
    }
    erase(&app, Identity::CustomerId("maya".into())).await;
    let r = search(&app, by_id("maya")).await;
    assert_eq!(r.customer_id, "", "erased: nobody we know");
    assert!(r.results.iter().all(|f| !f.owned && !f.returned));
}

async fn feedback_works_on_a_search_result(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    shop(&app).await;
    let r = search(&app, for_maya("fleece")).await;
    let id = r.results[0].suggestion_id.clone();
    let sent = app
        .context
        .clone()
        .record_suggestion_feedback(pb::RecordSuggestionFeedbackRequest {
            feedback: vec![pb::SuggestionFeedback {
                suggestion_id: id,
                kind: pb::FeedbackKind::SentToCustomer.into(),
                ..Default::default()
            }],
        })
        .await
        .expect("feedback")
        .into_inner();
    assert_eq!(outcomes(&sent.results), [pb::ItemOutcome::Created]);
}

async fn bad_searches_are_field_violations(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    shop(&app).await;
    let bad = |r: pb::SearchProductsRequest| {
        let mut client = app.context.clone();
        async move {
            let status = client.search_products(r).await.expect_err("refused");
            violated_fields(&status)
        }
    };
    assert_eq!(bad(request("")).await, ["query"]);
    assert_eq!(bad(request("   ")).await, ["query"]);
    assert_eq!(bad(request("?! --")).await, ["query"]);
    assert_eq!(bad(request(&"x".repeat(201))).await, ["query"]);
    assert_eq!(
        bad(pb::SearchProductsRequest {
            limit: 51,
            ..request("jacket")
        })
        .await,
        ["limit"]
    );
    let filter = |f: pb::ProductFilter| pb::SearchProductsRequest {
        filter: Some(f),
        ..request("jacket")
    };
    assert_eq!(
        bad(filter(pb::ProductFilter {
            category_path: vec!["a".into(); 9],
            ..Default::default()
        }))
        .await,
        ["filter.category_path"]
    );
    assert_eq!(
        bad(filter(pb::ProductFilter {
            category_path: vec!["Apparel".into(), " ".into()],
            brand: "b".repeat(201),
            ..Default::default()
        }))
        .await,
        ["filter.category_path[1]", "filter.brand"]
    );
    assert_eq!(
        bad(filter(pb::ProductFilter {
            min_price: usd(5_000),
            max_price: usd(1_000),
            ..Default::default()
        }))
        .await,
        ["filter.max_price"]
    );
    assert_eq!(
        bad(filter(pb::ProductFilter {
            min_price: Some(pb::Money {
                currency_code: "EURO".into(),
                amount_minor: 1,
            }),
            max_price: Some(pb::Money {
                currency_code: "USD".into(),
                amount_minor: -1,
            }),
            ..Default::default()
        }))
        .await,
        [
            "filter.min_price.currency_code",
            "filter.max_price.amount_minor"
        ]
    );
    assert_eq!(
        bad(pb::SearchProductsRequest {
            customer: Some(pb::CustomerRef {
                identity: Some(Identity::Email("not an email".into())),
            }),
            ..request("jacket")
        })
        .await,
        ["customer.email"]
    );
    // Nothing found is an empty answer, not an error.
    assert!(search(&app, request("zzzzqqqq")).await.results.is_empty());
}
