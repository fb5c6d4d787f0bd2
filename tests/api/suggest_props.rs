//! The hard filters as a property, through both RPCs: for any generated
//! catalogue and history (purchases, returns, browsing, thumbs down, a
//! model rebuilt or only live), no suggestion is already bought (any
//! variant of the style), returned, out of stock, inactive, excluded by the
//! request or thumbed down; and no style appears twice. A stylist's
//! curation naming every customer feeds curated items into both RPCs and
//! GetCuratedCrossSells, which the same checks cover.

use std::collections::{HashMap, HashSet};

use customer_context::proto::{self as pb, customer_ref::Identity};
use proptest::{prelude::*, test_runner::TestRunner};

use crate::{
    fixtures::*,
    harness::{Backend, TestApp, spawn_app},
    on_both_backends,
};

on_both_backends!(no_suggestion_breaks_a_hard_filter);

/// One generated shop. Indexes refer to `products` and customers 0..4.
#[derive(Debug, Clone)]
struct World {
    /// (style index, category index, in stock, active)
    products: Vec<(usize, usize, bool, bool)>,
    /// (customer, products, days ago)
    orders: Vec<(usize, Vec<usize>, i64)>,
    /// Orders (by index) whose first line came back.
    returned: Vec<usize>,
    /// (customer, product, minutes ago)
    views: Vec<(usize, usize, i64)>,
    /// Per customer: how many of their first suggestions they reject.
    thumbs_down: Vec<usize>,
    anchors: Vec<usize>,
    excluded: Vec<usize>,
    rebuild: bool,
    /// Products a stylist curated for every customer.
    curated: Vec<usize>,
}

fn world() -> impl Strategy<Value = World> {
    (3usize..14).prop_flat_map(|n| {
        let product = (
            0..n,
            0usize..4,
            prop::bool::weighted(0.8),
            prop::bool::weighted(0.9),
        );
        (
            prop::collection::vec(product, n),
            prop::collection::vec(
                (0usize..4, prop::collection::vec(0..n, 1..4), 1i64..90),
                0..14,
            ),
            prop::collection::vec(0usize..14, 0..4),
            prop::collection::vec((0usize..4, 0..n, 1i64..600), 0..12),
            prop::collection::vec(0usize..3, 4),
            prop::collection::vec(0..n, 0..3),
            prop::collection::vec(0..n, 0..3),
            (any::<bool>(), prop::collection::vec(0..n, 0..5)),
        )
            .prop_map(
                |(
                    products,
                    orders,
                    returned,
                    views,
                    thumbs_down,
                    anchors,
                    excluded,
                    (rebuild, curated),
                )| {
                    World {
                        products,
                        orders,
                        returned,
                        views,
                        thumbs_down,
                        anchors,
                        excluded,
                        rebuild,
                        curated,
                    }
                },
            )
    })
}

/// Everything the checks need to know about every product of every case.
#[derive(Default)]
struct Known {
    /// product id -> (style, sellable)
    products: HashMap<String, (String, bool)>,
}

async fn check(app: &TestApp, case: usize, w: &World, known: &mut Known) -> Result<(), String> {
    let p = |i: usize| format!("k{case}-p{i}");
    let style = |i: usize| format!("k{case}-s{}", w.products[i].0);
    let c = |i: usize| format!("k{case}-c{i}");
    let mut ingest = app.ingest.clone();
    let products = w
        .products
        .iter()
        .enumerate()
        .map(|(i, &(s, cat, in_stock, active))| {
            let mut pr = product(
                &p(i),
                &format!("Product {i}"),
                &["Dept", &format!("Cat {cat}")],
                1000 + 100 * i as i64,
                i64::from(in_stock),
            );
            pr.group_id = format!("k{case}-s{s}");
            pr.active = Some(active);
            known
                .products
                .insert(p(i), (pr.group_id.clone(), in_stock && active));
            pr
        })
        .collect();
    ingest
        .upsert_products(pb::UpsertProductsRequest { products })
        .await
        .map_err(|e| e.to_string())?;
    let mut bought: HashMap<usize, HashSet<String>> = HashMap::new();
    let mut orders = Vec::new();
    for (k, (who, lines, days)) in w.orders.iter().enumerate() {
        let mut distinct: Vec<usize> = lines.clone();
        distinct.sort_unstable();
        distinct.dedup();
        bought
            .entry(*who)
            .or_default()
            .extend(distinct.iter().map(|&i| style(i)));
        orders.push(order(
            &format!("k{case}-o{k}"),
            &c(*who),
            days * 24 * 60,
            distinct.iter().map(|&i| line(&p(i), 1, 1000)).collect(),
        ));
    }
    if !orders.is_empty() {
        ingest
            .record_orders(pb::RecordOrdersRequest { orders })
            .await
            .map_err(|e| e.to_string())?;
    }
    let mut returns = Vec::new();
    for (k, &o) in w.returned.iter().enumerate() {
        if let Some((who, lines, days)) = w.orders.get(o) {
            returns.push(return_(
                &format!("k{case}-r{k}"),
                &format!("k{case}-o{o}"),
                &c(*who),
                &p(lines[0]),
                days * 24 * 60 - 1,
            ));
        }
    }
    if !returns.is_empty() {
        ingest
            .record_returns(pb::RecordReturnsRequest { returns })
            .await
            .map_err(|e| e.to_string())?;
    }
    let events: Vec<pb::BrowsingEvent> = w
        .views
        .iter()
        .enumerate()
        .map(|(k, &(who, i, minutes))| view(&format!("k{case}-e{k}"), &c(who), &p(i), minutes))
        .collect();
    if !events.is_empty() {
        ingest
            .record_events(pb::RecordEventsRequest { events })
            .await
            .map_err(|e| e.to_string())?;
    }
    // One item per style, as a curation requires.
    let mut curated_styles = HashSet::new();
    let items: Vec<pb::CuratedItem> = w
        .curated
        .iter()
        .filter(|&&i| curated_styles.insert(style(i)))
        .map(|&i| pb::CuratedItem {
            product_id: p(i),
            ..Default::default()
        })
        .collect();
    if !items.is_empty() {
        let curation = pb::Curation {
            title: format!("Case {case}"),
            stylist: "Ana".into(),
            anchor: Some(pb::CurationAnchor {
                anchor: Some(pb::curation_anchor::Anchor::Customers(pb::CustomerIds {
                    customer_ids: (0..4).map(c).collect(),
                })),
            }),
            items,
            ..Default::default()
        };
        app.stylist()
            .await
            .create_curation(pb::CreateCurationRequest {
                curation: Some(curation),
                request_id: String::new(),
            })
            .await
            .map_err(|e| e.to_string())?;
    }
    if w.rebuild {
        app.rebuild_model().await.map_err(|e| format!("{e:?}"))?;
    }

    let excluded: HashSet<String> = w.excluded.iter().map(|&i| style(i)).collect();
    let anchors: Vec<String> = w.anchors.iter().map(|&i| p(i)).collect();
    let mut context = app.context.clone();
    for who in 0..4 {
        let ask = pb::SuggestCrossSellsRequest {
            customer: Some(pb::CustomerRef {
                identity: Some(Identity::CustomerId(c(who))),
            }),
            anchor_product_ids: anchors.clone(),
            exclude_product_ids: w.excluded.iter().map(|&i| p(i)).collect(),
            limit: 50,
        };
        let first = context
            .suggest_cross_sells(ask.clone())
            .await
            .map_err(|e| e.to_string())?
            .into_inner()
            .suggestions
            .ok_or("no list")?;
        // Reject the first few.
        let rejected: Vec<&pb::SuggestedItem> =
            first.items.iter().take(w.thumbs_down[who]).collect();
        let mut rejected_styles = HashSet::new();
        if !rejected.is_empty() {
            context
                .record_suggestion_feedback(pb::RecordSuggestionFeedbackRequest {
                    feedback: rejected
                        .iter()
                        .map(|i| pb::SuggestionFeedback {
                            suggestion_id: i.suggestion_id.clone(),
                            kind: pb::FeedbackKind::ThumbsDown.into(),
                            occurred_at: None,
                        })
                        .collect(),
                })
                .await
                .map_err(|e| e.to_string())?;
            for i in rejected {
                rejected_styles.insert(i.product.as_ref().ok_or("product")?.group_id.clone());
            }
        }
        let again = context
            .suggest_cross_sells(ask)
            .await
            .map_err(|e| e.to_string())?
            .into_inner()
            .suggestions
            .ok_or("no list")?;
        let in_context = context
            .get_customer_context(pb::GetCustomerContextRequest {
                customer: Some(pb::CustomerRef {
                    identity: Some(Identity::CustomerId(c(who))),
                }),
                suggestions_limit: 50,
                ..Default::default()
            })
            .await;
        let curated = app
            .stylist()
            .await
            .get_curated_cross_sells(pb::GetCuratedCrossSellsRequest {
                customer: Some(pb::CustomerRef {
                    identity: Some(Identity::CustomerId(c(who))),
                }),
                anchor_product_ids: anchors.clone(),
                limit: 50,
            })
            .await
            .map_err(|e| e.to_string())?
            .into_inner()
            .suggestions
            .ok_or("no list")?;
        let owned = bought.get(&who).cloned().unwrap_or_default();
        let mut lists = vec![
            ("SuggestCrossSells", first, true),
            ("again", again, true),
            ("GetCuratedCrossSells", curated, false),
        ];
        match in_context {
            Ok(ctx) => lists.push((
                "GetCustomerContext",
                ctx.into_inner().suggestions.ok_or("no section")?,
                false,
            )),
            // A customer with no order and no browsing does not exist.
            Err(s) if s.code() == tonic::Code::NotFound && !owned.is_empty() => {
                return Err(format!("{} not found", c(who)));
            }
            Err(s) if s.code() == tonic::Code::NotFound => {}
            Err(s) => return Err(s.to_string()),
        }
        for (n, (rpc, list, with_request)) in lists.iter().enumerate() {
            let mut styles = HashSet::new();
            for item in &list.items {
                let prod = item.product.as_ref().ok_or("product")?;
                let (group, sellable) = known
                    .products
                    .get(&prod.product_id)
                    .ok_or(format!("unknown product {}", prod.product_id))?;
                let fail = |why: &str| {
                    Err(format!(
                        "{rpc}: {} suggested to {} although {why}",
                        prod.product_id,
                        c(who)
                    ))
                };
                if !sellable {
                    return fail("it cannot be sold");
                }
                if owned.contains(group) {
                    return fail("that style was bought");
                }
                if *with_request && excluded.contains(group) {
                    return fail("the request excluded it");
                }
                if anchors.iter().any(|a| known.products[a].0 == *group)
                    && *rpc != "GetCustomerContext"
                {
                    return fail("it is what they asked about");
                }
                if n > 0 && rejected_styles.contains(group) {
                    return fail("they gave it a thumbs down");
                }
                if !styles.insert(group.clone()) {
                    return fail("its style is listed twice");
                }
            }
        }
    }
    Ok(())
}

async fn no_suggestion_breaks_a_hard_filter(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let mut runner = TestRunner::new(ProptestConfig {
        cases: 24,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let case = std::cell::Cell::new(0usize);
    let known = std::cell::RefCell::new(Known::default());
    let handle = tokio::runtime::Handle::current();
    let result = tokio::task::block_in_place(|| {
        runner
            .run(&world(), |w| {
                let n = case.get();
                case.set(n + 1);
                let outcome = handle.block_on(check(&app, n, &w, &mut known.borrow_mut()));
                prop_assert!(outcome.is_ok(), "{}", outcome.unwrap_err());
                Ok(())
            })
            .map_err(|e| e.to_string())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}
