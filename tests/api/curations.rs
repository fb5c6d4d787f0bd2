//! Stylists' curations through the real server: writes with validation,
//! pages, archive; anchors by product, category and customer; windows;
//! the hard filters and sizes inside curations; blending into
//! SuggestCrossSells; numbers per curation; roles; erasure.

use std::collections::HashSet;

use customer_context::{
    domain::Role,
    proto::{self as pb, customer_ref::Identity},
};
use tonic::Code;

use crate::{
    fixtures::*,
    harness::{Backend, Key, Stylist, TestApp, spawn_app},
    on_both_backends,
};

on_both_backends!(
    curations_are_validated_paged_filtered_and_archived,
    curations_match_by_product_category_and_customer_within_their_window,
    curated_items_pass_the_hard_filters_and_come_in_their_size,
    curated_items_blend_into_suggestions_and_are_counted_per_curation,
    stylists_write_agents_read_and_ingest_keys_do_neither,
    a_preview_shows_each_item_as_the_customer_would_get_it_and_stats_come_per_item,
);

const DAY: i64 = 24 * 60;

/// Trail shoes in two sizes, accessories, a jacket, tops in sizes; `c1`
/// bought the trail shoe in 10 and a tee in M; `c3` bought a jacket.
async fn shop(app: &TestApp) {
    let mut products = vec![
        sized(
            "trail-9",
            "trail",
            "Trail Shoe",
            &["Footwear", "Running"],
            "9",
            5,
        ),
        sized(
            "trail-10",
            "trail",
            "Trail Shoe",
            &["Footwear", "Running"],
            "10",
            5,
        ),
        product("socks", "Trail Socks", &["Accessories", "Socks"], 1500, 20),
        product("cap", "Trail Cap", &["Accessories", "Hats"], 2500, 20),
        product("gaiter", "Gaiter", &["Accessories", "Gaiters"], 2000, 0),
        product("bottle", "Bottle", &["Accessories", "Bottles"], 1200, 20),
        product("scarf", "Scarf", &["Accessories", "Scarves"], 3000, 20),
        product("gloves", "Gloves", &["Accessories", "Gloves"], 3000, 20),
        product(
            "jacket",
            "Shell Jacket",
            &["Apparel", "Jackets", "Rain"],
            9000,
            20,
        ),
        sized("tee-m", "tee", "Tee", &["Apparel", "Tops"], "M", 20),
    ];
    for size in ["S", "M", "L"] {
        products.push(sized(
            &format!("hoodie-{size}"),
            "hoodie",
            "Hoodie",
            &["Apparel", "Tops"],
            size,
            20,
        ));
    }
    let mut ingest = app.ingest.clone();
    ingest
        .upsert_products(pb::UpsertProductsRequest { products })
        .await
        .expect("products");
    let customers = ["c1", "c2", "c3", "c4"]
        .iter()
        .map(|c| customer(c, "Sam Lee", &format!("{c}@example.com"), "", ""))
        .collect();
    ingest
        .upsert_customers(pb::UpsertCustomersRequest { customers })
        .await
        .expect("customers");
    ingest
        .record_orders(pb::RecordOrdersRequest {
            orders: vec![
                order(
                    "o1",
                    "c1",
                    20 * DAY,
                    vec![line("trail-10", 1, 9000), line("tee-m", 1, 2000)],
                ),
                order("o3", "c3", 10 * DAY, vec![line("jacket", 1, 9000)]),
            ],
        })
        .await
        .expect("orders");
}

fn products_anchor(ids: &[&str]) -> Option<pb::CurationAnchor> {
    Some(pb::CurationAnchor {
        anchor: Some(pb::curation_anchor::Anchor::Products(pb::ProductIds {
            product_ids: ids.iter().map(|s| s.to_string()).collect(),
        })),
    })
}

fn category_anchor(path: &str) -> Option<pb::CurationAnchor> {
    Some(pb::CurationAnchor {
        anchor: Some(pb::curation_anchor::Anchor::Category(path.into())),
    })
}

fn customers_anchor(ids: &[&str]) -> Option<pb::CurationAnchor> {
    Some(pb::CurationAnchor {
        anchor: Some(pb::curation_anchor::Anchor::Customers(pb::CustomerIds {
            customer_ids: ids.iter().map(|s| s.to_string()).collect(),
        })),
    })
}

fn curation(
    title: &str,
    stylist: &str,
    anchor: Option<pb::CurationAnchor>,
    items: &[(&str, &str)],
) -> pb::Curation {
    pb::Curation {
        title: title.into(),
        stylist: stylist.into(),
        note: format!("{title} for the trail"),
        anchor,
        items: items
            .iter()
            .map(|(p, note)| pb::CuratedItem {
                product_id: (*p).into(),
                note: (*note).into(),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

async fn create(stylist: &mut Stylist, c: pb::Curation) -> pb::Curation {
    stylist
        .create_curation(pb::CreateCurationRequest {
            curation: Some(c),
            request_id: String::new(),
        })
        .await
        .expect("created")
        .into_inner()
}

async fn curated(app: &TestApp, who: &str, anchors: &[&str]) -> pb::Suggestions {
    app.stylist()
        .await
        .get_curated_cross_sells(pb::GetCuratedCrossSellsRequest {
            customer: Some(pb::CustomerRef {
                identity: Some(Identity::CustomerId(who.into())),
            }),
            anchor_product_ids: anchors.iter().map(|s| s.to_string()).collect(),
            limit: 10,
        })
        .await
        .expect("curated cross-sells")
        .into_inner()
        .suggestions
        .expect("a list")
}

/// The curated items of a list, in order: (product, curation id).
fn curated_items(s: &pb::Suggestions) -> Vec<(String, String)> {
    s.items
        .iter()
        .filter(|i| {
            i.reason
                .as_ref()
                .is_some_and(|r| r.code() == pb::ReasonCode::Curated)
        })
        .map(|i| {
            (
                i.product.as_ref().expect("p").product_id.clone(),
                i.curated.as_ref().expect("curated by").curation_id.clone(),
            )
        })
        .collect()
}

async fn curations_are_validated_paged_filtered_and_archived(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    shop(&app).await;
    let mut stylist = app.stylist().await;
    // Every bad field is named.
    let mut bad = curation(
        "",
        "ana",
        None,
        &[("socks", ""), ("nope", ""), ("socks", "")],
    );
    bad.ends_at = Some(ago(60));
    bad.starts_at = Some(ago(30));
    let err = stylist
        .create_curation(pb::CreateCurationRequest {
            curation: Some(bad),
            request_id: String::new(),
        })
        .await
        .expect_err("invalid");
    assert_eq!(err.code(), Code::InvalidArgument);
    let mut fields = violated_fields(&err);
    fields.sort();
    assert_eq!(
        fields,
        ["curation.anchor", "curation.ends_at", "curation.title"]
    );
    // Items not in the catalogue, or two of one style, are named too.
    let err = stylist
        .create_curation(pb::CreateCurationRequest {
            curation: Some(curation(
                "Kit",
                "ana",
                products_anchor(&["trail-9", "ghost"]),
                &[
                    ("socks", ""),
                    ("nope", ""),
                    ("trail-9", ""),
                    ("trail-10", ""),
                ],
            )),
            request_id: String::new(),
        })
        .await
        .expect_err("invalid");
    let mut fields = violated_fields(&err);
    fields.sort();
    assert_eq!(
        fields,
        [
            "curation.anchor.products.product_ids[1]",
            "curation.items[1].product_id",
            "curation.items[3].product_id",
        ]
    );

    // Created, and a retry with the same request id is the same curation.
    let request = pb::CreateCurationRequest {
        curation: Some(curation(
            "Trail kit",
            "ana",
            products_anchor(&["trail-9"]),
            &[("socks", "Merino, for long runs"), ("gaiter", "")],
        )),
        request_id: "req-1".into(),
    };
    let kit = stylist
        .create_curation(request.clone())
        .await
        .expect("created")
        .into_inner();
    assert!(kit.curation_id.starts_with("cur_"), "{}", kit.curation_id);
    assert_eq!(kit.state(), pb::CurationState::Active);
    let again = stylist.create_curation(request).await.expect("retry");
    assert_eq!(again.get_ref().curation_id, kit.curation_id);
    // The gaiter is out of stock: kept, shown as unavailable.
    let availability: Vec<(&str, bool)> = kit
        .items
        .iter()
        .map(|i| (i.product_id.as_str(), i.available))
        .collect();
    assert_eq!(availability, [("socks", true), ("gaiter", false)]);
    assert_eq!(kit.items[0].group_id, "socks");

    // Four more, by two stylists and two anchors.
    for k in 0..4 {
        let (who, anchor) = if k % 2 == 0 {
            ("bo", category_anchor("Apparel > Jackets"))
        } else {
            ("ana", products_anchor(&["trail-10"]))
        };
        create(
            &mut stylist,
            curation(&format!("Look {k}"), who, anchor, &[("cap", "")]),
        )
        .await;
    }
    // Pages of two: every curation once, newest first.
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = stylist
            .list_curations(pb::ListCurationsRequest {
                page_size: 2,
                page_token: token.clone(),
                ..Default::default()
            })
            .await
            .expect("a page")
            .into_inner();
        assert!(page.curations.len() <= 2);
        seen.extend(page.curations.iter().map(|c| c.title.clone()));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(seen, ["Look 3", "Look 2", "Look 1", "Look 0", "Trail kit"]);
    // A token is tied to its filters.
    let first = stylist
        .list_curations(pb::ListCurationsRequest {
            page_size: 1,
            ..Default::default()
        })
        .await
        .expect("a page")
        .into_inner();
    let err = stylist
        .list_curations(pb::ListCurationsRequest {
            page_size: 1,
            page_token: first.next_page_token,
            stylist: "bo".into(),
            ..Default::default()
        })
        .await
        .expect_err("another listing's token");
    assert_eq!(violated_fields(&err), ["page_token"]);
    // Filters: by stylist, by any variant of an anchor style, by category.
    let titles = |r: pb::ListCurationsResponse| -> Vec<String> {
        r.curations.into_iter().map(|c| c.title).collect()
    };
    let lister = stylist.clone();
    let list = |req: pb::ListCurationsRequest| {
        let mut s = lister.clone();
        async move { s.list_curations(req).await.expect("a page").into_inner() }
    };
    let by_bo = list(pb::ListCurationsRequest {
        stylist: "bo".into(),
        ..Default::default()
    })
    .await;
    assert_eq!(titles(by_bo), ["Look 2", "Look 0"]);
    let on_trail = list(pb::ListCurationsRequest {
        anchor_product_id: "trail-10".into(),
        ..Default::default()
    })
    .await;
    assert_eq!(titles(on_trail), ["Look 3", "Look 1", "Trail kit"]);
    let jackets = list(pb::ListCurationsRequest {
        anchor_category: "Apparel > Jackets".into(),
        ..Default::default()
    })
    .await;
    assert_eq!(titles(jackets), ["Look 2", "Look 0"]);

    // Updated, then archived: listed only when asked for, no longer editable.
    let mut changed = curation(
        "Trail kit v2",
        "ana",
        products_anchor(&["trail-9"]),
        &[("cap", "")],
    );
    changed.curation_id = kit.curation_id.clone();
    let updated = stylist
        .update_curation(pb::UpdateCurationRequest {
            curation: Some(changed.clone()),
        })
        .await
        .expect("updated")
        .into_inner();
    assert_eq!(updated.title, "Trail kit v2");
    assert_eq!(updated.items.len(), 1);
    let archived = stylist
        .archive_curation(pb::ArchiveCurationRequest {
            curation_id: kit.curation_id.clone(),
        })
        .await
        .expect("archived")
        .into_inner();
    assert_eq!(archived.state(), pb::CurationState::Archived);
    let active = list(pb::ListCurationsRequest::default()).await;
    assert!(
        active
            .curations
            .iter()
            .all(|c| c.curation_id != kit.curation_id)
    );
    let gone = list(pb::ListCurationsRequest {
        filter: pb::CurationFilter::Archived.into(),
        ..Default::default()
    })
    .await;
    assert_eq!(titles(gone), ["Trail kit v2"]);
    let err = stylist
        .update_curation(pb::UpdateCurationRequest {
            curation: Some(changed),
        })
        .await
        .expect_err("archived");
    assert_eq!(err.code(), Code::FailedPrecondition);
    let mut unknown = curation("X", "ana", products_anchor(&["trail-9"]), &[("cap", "")]);
    unknown.curation_id = "cur_0000".into();
    let err = stylist
        .update_curation(pb::UpdateCurationRequest {
            curation: Some(unknown),
        })
        .await
        .expect_err("unknown");
    assert_eq!(err.code(), Code::NotFound);
}

async fn curations_match_by_product_category_and_customer_within_their_window(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    shop(&app).await;
    let mut stylist = app.stylist().await;
    let on_trail = create(
        &mut stylist,
        curation(
            "Trail kit",
            "Ana",
            products_anchor(&["trail-9"]),
            &[("socks", "Merino, for long runs"), ("cap", "")],
        ),
    )
    .await;
    let jackets = create(
        &mut stylist,
        curation(
            "Rain look",
            "Bo",
            category_anchor("Apparel > Jackets"),
            &[("scarf", "")],
        ),
    )
    .await;
    let for_c2 = create(
        &mut stylist,
        curation(
            "For Sam",
            "Ana",
            customers_anchor(&["c2"]),
            &[("bottle", "")],
        ),
    )
    .await;
    // Not yet, and no longer: never served.
    let mut later = curation(
        "Winter",
        "Bo",
        products_anchor(&["trail-9"]),
        &[("gloves", "")],
    );
    later.starts_at = Some(ago(-60 * 24));
    let later = create(&mut stylist, later).await;
    assert_eq!(later.state(), pb::CurationState::Scheduled);
    let mut over = curation(
        "Summer",
        "Bo",
        products_anchor(&["trail-9"]),
        &[("bottle", "")],
    );
    over.starts_at = Some(ago(2 * DAY));
    over.ends_at = Some(ago(DAY));
    create(&mut stylist, over).await;

    // c1 bought the trail shoe in another size: the trail kit, in order,
    // with the stylist's name and note.
    let s = curated(&app, "c1", &[]).await;
    let id = |c: &pb::Curation| c.curation_id.clone();
    assert_eq!(
        curated_items(&s)[..2],
        [
            ("socks".to_string(), id(&on_trail)),
            ("cap".to_string(), id(&on_trail))
        ]
    );
    let first = &s.items[0];
    assert_eq!(first.rank, 1);
    let reason = first.reason.as_ref().expect("reason");
    assert_eq!(reason.product_ids, ["trail-9"]);
    assert!(
        reason
            .text
            .starts_with("Picked by Ana to go with the Trail Shoe"),
        "{}",
        reason.text
    );
    assert!(
        reason.text.contains("Merino, for long runs"),
        "{}",
        reason.text
    );
    let by = first.curated.as_ref().expect("curated by");
    assert_eq!(
        (by.title.as_str(), by.stylist.as_str()),
        ("Trail kit", "Ana")
    );
    let products: HashSet<String> = s
        .items
        .iter()
        .map(|i| i.product.as_ref().expect("p").product_id.clone())
        .collect();
    assert!(!products.contains("gloves"), "scheduled");
    assert!(
        curated_items(&s).iter().all(|(_, c)| *c == id(&on_trail)),
        "nothing else matches c1"
    );
    // c2 is named; c3 bought in the category; c4 asks about the trail shoe.
    assert_eq!(
        curated_items(&curated(&app, "c2", &[]).await),
        [("bottle".to_string(), id(&for_c2))]
    );
    assert_eq!(
        curated_items(&curated(&app, "c3", &[]).await),
        [("scarf".to_string(), id(&jackets))]
    );
    let asked = curated(&app, "c4", &["trail-9"]).await;
    assert_eq!(
        curated_items(&asked)[0],
        ("socks".to_string(), id(&on_trail))
    );
    // Computed suggestions fill the rest, after every curated item.
    let codes: Vec<pb::ReasonCode> = s
        .items
        .iter()
        .map(|i| i.reason.as_ref().expect("r").code())
        .collect();
    let last_curated = codes.iter().rposition(|c| *c == pb::ReasonCode::Curated);
    let first_computed = codes.iter().position(|c| *c != pb::ReasonCode::Curated);
    if let (Some(l), Some(f)) = (last_curated, first_computed) {
        assert!(l < f, "{codes:?}");
    }
}

async fn curated_items_pass_the_hard_filters_and_come_in_their_size(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    shop(&app).await;
    // Bottles and caps may be bought again after a day; c1 bought both
    // three weeks ago and sent the bottle back.
    let mut ingest = app.ingest.clone();
    let again = |id: &str, name: &str| pb::Product {
        replenish_after_days: 1,
        ..product(id, name, &["Accessories", "Refills"], 1200, 20)
    };
    ingest
        .upsert_products(pb::UpsertProductsRequest {
            products: vec![again("bottle", "Bottle"), again("cap", "Trail Cap")],
        })
        .await
        .expect("products");
    ingest
        .record_orders(pb::RecordOrdersRequest {
            orders: vec![order(
                "o-refill",
                "c1",
                21 * DAY,
                vec![line("bottle", 1, 1200), line("cap", 1, 1200)],
            )],
        })
        .await
        .expect("an order");
    let mut r = return_("r-refill", "o-refill", "c1", "bottle", 20 * DAY);
    r.reason_code = "damaged".into();
    ingest
        .record_returns(pb::RecordReturnsRequest { returns: vec![r] })
        .await
        .expect("a return");
    let mut stylist = app.stylist().await;
    // c1 bought the tee (M) and the trail shoe; the gaiter is sold out.
    let kit = create(
        &mut stylist,
        curation(
            "Everything",
            "Ana",
            products_anchor(&["trail-9"]),
            &[
                ("tee-m", ""),
                ("gaiter", ""),
                ("hoodie-S", ""),
                ("trail-9", ""),
                ("bottle", ""),
                ("cap", ""),
                ("socks", ""),
            ],
        ),
    )
    .await;
    let s = curated(&app, "c1", &[]).await;
    let items = curated_items(&s);
    let products: Vec<&str> = items.iter().map(|(p, _)| p.as_str()).collect();
    // Not the tee or the shoe (bought), not the gaiter (out of stock), not
    // the bottle (returned, though due again); the cap is due again; the
    // hoodie in M, the size c1 kept in tops, whatever variant was named.
    assert_eq!(products, ["hoodie-M", "cap", "socks"]);
    let hoodie = &s.items[0];
    let fit = hoodie.fit.as_ref().expect("fit");
    assert_eq!(
        (fit.status(), fit.size.as_str()),
        (pb::SizeFit::CustomerSize, "M")
    );
    // A thumbs down takes an item out of the curation for this customer.
    app.context
        .clone()
        .record_suggestion_feedback(pb::RecordSuggestionFeedbackRequest {
            feedback: vec![pb::SuggestionFeedback {
                suggestion_id: s.items[2].suggestion_id.clone(),
                kind: pb::FeedbackKind::ThumbsDown.into(),
                occurred_at: None,
            }],
        })
        .await
        .expect("feedback");
    let after = curated(&app, "c1", &[]).await;
    assert_eq!(
        curated_items(&after),
        [
            ("hoodie-M".to_string(), kit.curation_id.clone()),
            ("cap".to_string(), kit.curation_id.clone())
        ]
    );
}

async fn curated_items_blend_into_suggestions_and_are_counted_per_curation(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    shop(&app).await;
    let mut stylist = app.stylist().await;
    let kit = create(
        &mut stylist,
        curation(
            "Trail kit",
            "Ana",
            products_anchor(&["trail-9"]),
            &[("socks", ""), ("cap", "")],
        ),
    )
    .await;
    // SuggestCrossSells and the context carry the curated items too.
    let s = app
        .context
        .clone()
        .suggest_cross_sells(pb::SuggestCrossSellsRequest {
            customer: Some(pb::CustomerRef {
                identity: Some(Identity::CustomerId("c1".into())),
            }),
            limit: 10,
            ..Default::default()
        })
        .await
        .expect("suggestions")
        .into_inner()
        .suggestions
        .expect("a list");
    let mut got: Vec<String> = curated_items(&s).into_iter().map(|(p, _)| p).collect();
    got.sort();
    assert_eq!(got, ["cap", "socks"]);
    let ctx = context_of(&app, Identity::CustomerId("c1".into())).await;
    assert!(!curated_items(ctx.suggestions.as_ref().expect("s")).is_empty());
    // Feedback on a curated item counts for its curation.
    let socks = s
        .items
        .iter()
        .find(|i| i.product.as_ref().is_some_and(|p| p.product_id == "socks"))
        .expect("socks");
    app.context
        .clone()
        .record_suggestion_feedback(pb::RecordSuggestionFeedbackRequest {
            feedback: vec![pb::SuggestionFeedback {
                suggestion_id: socks.suggestion_id.clone(),
                kind: pb::FeedbackKind::ThumbsUp.into(),
                occurred_at: None,
            }],
        })
        .await
        .expect("feedback");
    // Bought afterwards: attributed to the suggestion, so to the curation.
    app.ingest
        .clone()
        .record_orders(pb::RecordOrdersRequest {
            orders: vec![order("o-later", "c1", 0, vec![line("socks", 1, 1500)])],
        })
        .await
        .expect("an order");
    let listed = stylist
        .list_curations(pb::ListCurationsRequest::default())
        .await
        .expect("a page")
        .into_inner();
    let stats = listed
        .curations
        .iter()
        .find(|c| c.curation_id == kit.curation_id)
        .and_then(|c| c.stats)
        .expect("stats");
    assert_eq!(
        (stats.shown, stats.accepted, stats.purchased, stats.rejected),
        (1, 1, 1, 0)
    );
}

async fn stylists_write_agents_read_and_ingest_keys_do_neither(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    shop(&app).await;
    let kit = || pb::CreateCurationRequest {
        curation: Some(curation(
            "Trail kit",
            "Ana",
            products_anchor(&["trail-9"]),
            &[("socks", "")],
        )),
        request_id: String::new(),
    };
    let mut stylist = app.stylist().await;
    stylist
        .create_curation(kit())
        .await
        .expect("a stylist curates");
    for role in [Role::Agent, Role::Crm] {
        let mut client = app.stylist_as(Key::bearer(&app.key(role).await));
        let err = client.create_curation(kit()).await.expect_err("read only");
        assert_eq!(err.code(), Code::PermissionDenied, "{role}");
        client
            .list_curations(pb::ListCurationsRequest::default())
            .await
            .expect("reads curations");
        client
            .get_curated_cross_sells(pb::GetCuratedCrossSellsRequest {
                customer: Some(pb::CustomerRef {
                    identity: Some(Identity::CustomerId("c1".into())),
                }),
                ..Default::default()
            })
            .await
            .expect("reads curated cross-sells");
    }
    let mut ingest = app.stylist_as(Key::bearer(&app.key(Role::Ingest).await));
    let err = ingest.create_curation(kit()).await.expect_err("no");
    assert_eq!(err.code(), Code::PermissionDenied);
    let err = ingest
        .list_curations(pb::ListCurationsRequest::default())
        .await
        .expect_err("no");
    assert_eq!(err.code(), Code::PermissionDenied);
    let err = app
        .stylist_as(Key::none())
        .list_curations(pb::ListCurationsRequest::default())
        .await
        .expect_err("no key");
    assert_eq!(err.code(), Code::Unauthenticated);
    // A customer named by a curation is erased from it with everything else.
    let named = create(
        &mut stylist,
        curation(
            "For c2",
            "Ana",
            customers_anchor(&["c2", "c3"]),
            &[("bottle", "")],
        ),
    )
    .await;
    app.privacy
        .clone()
        .erase_customer(pb::EraseCustomerRequest {
            customer: Some(pb::CustomerRef {
                identity: Some(Identity::CustomerId("c2".into())),
            }),
        })
        .await
        .expect("erased");
    let listed = stylist
        .list_curations(pb::ListCurationsRequest::default())
        .await
        .expect("a page")
        .into_inner();
    let anchor = listed
        .curations
        .iter()
        .find(|c| c.curation_id == named.curation_id)
        .and_then(|c| c.anchor.clone())
        .and_then(|a| a.anchor);
    match anchor {
        Some(pb::curation_anchor::Anchor::Customers(c)) => assert_eq!(c.customer_ids, ["c3"]),
        other => panic!("{other:?}"),
    }
    // Nor can a curation name them again: creating or updating one that
    // does is refused, naming the field, and stores nothing.
    let again = curation(
        "For c2 again",
        "Ana",
        customers_anchor(&["c3", "c2"]),
        &[("bottle", "")],
    );
    let err = stylist
        .create_curation(pb::CreateCurationRequest {
            curation: Some(again.clone()),
            request_id: String::new(),
        })
        .await
        .expect_err("refused");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(
        violated_fields(&err),
        ["curation.anchor.customers.customer_ids[1]"]
    );
    let err = stylist
        .update_curation(pb::UpdateCurationRequest {
            curation: Some(pb::Curation {
                curation_id: named.curation_id.clone(),
                ..again
            }),
        })
        .await
        .expect_err("refused");
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    let listed = stylist
        .list_curations(pb::ListCurationsRequest::default())
        .await
        .expect("a page")
        .into_inner();
    assert!(listed.curations.iter().all(|c| c.title != "For c2 again"));
}

async fn a_preview_shows_each_item_as_the_customer_would_get_it_and_stats_come_per_item(
    backend: Backend,
) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    crate::search::shop(&app).await;
    let mut stylist = app.stylist().await;
    let anchor = Some(pb::CurationAnchor {
        anchor: Some(pb::curation_anchor::Anchor::Customers(pb::CustomerIds {
            customer_ids: vec!["maya".into()],
        })),
    });
    let items = [
        ("fleece-S", "Warm under the shell"),
        ("windbreaker-L", ""),
        ("shell-S", ""),
        ("parka-M", ""),
        ("socks", ""),
    ];
    let c = create(
        &mut stylist,
        curation("Trail layers", "Ana", anchor, &items),
    )
    .await;
    let previewer = stylist.clone();
    let preview = |customer: Identity, id: String| {
        let mut stylist = previewer.clone();
        async move {
            stylist
                .preview_curation(pb::PreviewCurationRequest {
                    curation_id: id,
                    customer: Some(pb::CustomerRef {
                        identity: Some(customer),
                    }),
                })
                .await
        }
    };
    let p = preview(
        Identity::Email("maya@example.com".into()),
        c.curation_id.clone(),
    )
    .await
    .expect("a preview")
    .into_inner();
    assert_eq!(p.customer_id, "maya");
    assert_eq!(p.r#match(), pb::CurationMatch::Customer);
    assert!(p.personalised, "{}", p.note);
    let got: Vec<(String, pb::LeftOutReason)> = p
        .items
        .iter()
        .map(|i| {
            let shown = i.shown.as_ref().and_then(|s| s.product.as_ref());
            (
                shown.map_or(i.product_id.clone(), |p| p.product_id.clone()),
                i.left_out(),
            )
        })
        .collect();
    use pb::LeftOutReason as L;
    assert_eq!(
        got,
        [
            ("fleece-L".to_owned(), L::Unspecified),
            ("windbreaker-L".to_owned(), L::Owned),
            ("shell-S".to_owned(), L::Returned),
            ("parka-M".to_owned(), L::NotInTheirSize),
            ("socks".to_owned(), L::Unspecified),
        ]
    );
    let fleece = p.items[0].shown.as_ref().expect("shown");
    assert_eq!(
        fleece.fit.as_ref().expect("a size").text,
        "In L, the size you kept in jackets."
    );
    assert_eq!(
        fleece.curated.as_ref().expect("curated").note,
        "Warm under the shell"
    );
    assert_eq!(
        p.items[3].left_out_text,
        "Left out: not in stock in their size."
    );
    // Feedback on the previewed item counts for it, per item.
    app.context
        .clone()
        .record_suggestion_feedback(pb::RecordSuggestionFeedbackRequest {
            feedback: vec![pb::SuggestionFeedback {
                suggestion_id: fleece.suggestion_id.clone(),
                kind: pb::FeedbackKind::SentToCustomer.into(),
                ..Default::default()
            }],
        })
        .await
        .expect("feedback");
    let listed = stylist
        .list_curations(pb::ListCurationsRequest::default())
        .await
        .expect("a list")
        .into_inner();
    let c = &listed.curations[0];
    assert_eq!(c.stats.as_ref().unwrap().accepted, 1);
    let per_item: Vec<u64> = c
        .items
        .iter()
        .map(|i| i.stats.as_ref().unwrap().accepted)
        .collect();
    assert_eq!(per_item, [1, 0, 0, 0, 0]);
    // Unknown curation or customer; agents may not preview.
    let unknown = preview(
        Identity::Email("maya@example.com".into()),
        "cur_nope".into(),
    )
    .await;
    assert_eq!(unknown.expect_err("refused").code(), Code::NotFound);
    let nobody = preview(
        Identity::Email("nobody@example.com".into()),
        c.curation_id.clone(),
    )
    .await;
    assert_eq!(nobody.expect_err("refused").code(), Code::NotFound);
    let agent = app.stylist_as(Key::bearer(&app.key(Role::Agent).await));
    let denied = agent
        .clone()
        .preview_curation(pb::PreviewCurationRequest {
            curation_id: c.curation_id.clone(),
            customer: Some(pb::CustomerRef {
                identity: Some(Identity::CustomerId("maya".into())),
            }),
        })
        .await
        .expect_err("refused");
    assert_eq!(denied.code(), Code::PermissionDenied);
    // Withdrawn personalisation: curations naming her no longer reach her.
    withdraw_personalisation(&app, "maya").await;
    let p = preview(Identity::CustomerId("maya".into()), c.curation_id.clone())
        .await
        .expect("a preview")
        .into_inner();
    assert_eq!(p.r#match(), pb::CurationMatch::Unspecified);
    assert!(
        !p.personalised && p.note.contains("not agreed"),
        "{}",
        p.note
    );
}
