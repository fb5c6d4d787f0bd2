//! Every ingest RPC: created, duplicate, updated, mixed good/bad batches.

use customer_context::proto::{self as pb, ItemOutcome as O, customer_ref::Identity};
use tonic::Code;

use crate::{
    fixtures::*,
    harness::{Backend, spawn_app},
    on_both_backends,
};

on_both_backends!(
    products_are_created_deduplicated_updated_and_validated,
    customers_merge_and_refuse_stolen_identities,
    events_batch_keeps_valid_items_and_deduplicates,
    an_event_repeated_in_one_batch_counts_once,
    stream_events_commits_and_reports_rejects,
    orders_update_totals_and_status_changes,
    returns_resolve_their_customer_and_count_in_the_rate,
    tickets_show_while_unresolved_and_never_roll_back,
    batch_limits_are_enforced,
);

async fn products_are_created_deduplicated_updated_and_validated(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let mut ingest = app.ingest.clone();
    let good = product("p1", "Rain Shell", &["Apparel", "Jackets"], 12900, 3);
    let mut bad = product("", &"x".repeat(600), &[], -5, 1);
    bad.price = Some(pb::Money {
        currency_code: "dollars".into(),
        amount_minor: 5,
    });
    let r = ingest
        .upsert_products(pb::UpsertProductsRequest {
            products: vec![
                good.clone(),
                bad,
                product("p2", "Tee", &["Apparel"], 1000, 1),
            ],
        })
        .await
        .expect("a batch")
        .into_inner();
    assert_eq!(outcomes(&r.results), [O::Created, O::Rejected, O::Created]);
    let fields: Vec<&str> = r.results[1]
        .violations
        .iter()
        .map(|v| v.field.as_str())
        .collect();
    assert_eq!(
        fields,
        ["product_id", "name", "category_path", "price.currency_code"]
    );
    assert_eq!(
        r.summary,
        Some(pb::BatchSummary {
            created: 2,
            updated: 0,
            duplicate: 0,
            rejected: 1,
            suppressed: 0
        })
    );

    let r = ingest
        .upsert_products(pb::UpsertProductsRequest {
            products: vec![good.clone()],
        })
        .await
        .expect("ok")
        .into_inner();
    assert_eq!(outcomes(&r.results), [O::Duplicate]);
    let mut cheaper = good;
    cheaper.price = usd(9900);
    let r = ingest
        .upsert_products(pb::UpsertProductsRequest {
            products: vec![cheaper],
        })
        .await
        .expect("ok")
        .into_inner();
    assert_eq!(outcomes(&r.results), [O::Updated]);

    // The stored price is the new one: seen through a customer's browsing.
    ingest
        .record_events(pb::RecordEventsRequest {
            events: vec![view("m1", "c1", "p1", 1)],
        })
        .await
        .expect("ok");
    let ctx = context_of(&app, Identity::CustomerId("c1".into())).await;
    let p = ctx.recent_browsing[0].product.clone().expect("a product");
    assert_eq!(p.price, usd(9900));
    assert_eq!(p.name, "Rain Shell");
    assert!(p.available);
}

async fn customers_merge_and_refuse_stolen_identities(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let mut ingest = app.ingest.clone();
    let maya = customer(
        "c1",
        "Maya Chen",
        "Maya@Example.com",
        "+1 (555) 010-2001",
        "L-1",
    );
    let r = ingest
        .upsert_customers(pb::UpsertCustomersRequest {
            customers: vec![maya.clone()],
        })
        .await
        .expect("ok")
        .into_inner();
    assert_eq!(outcomes(&r.results), [O::Created]);
    let r = ingest
        .upsert_customers(pb::UpsertCustomersRequest {
            customers: vec![maya],
        })
        .await
        .expect("ok")
        .into_inner();
    assert_eq!(outcomes(&r.results), [O::Duplicate]);

    // A partial profile keeps what it does not mention.
    let partial = pb::Customer {
        customer_id: "c1".into(),
        display_name: "Maya C.".into(),
        ..Default::default()
    };
    let r = ingest
        .upsert_customers(pb::UpsertCustomersRequest {
            customers: vec![partial],
        })
        .await
        .expect("ok")
        .into_inner();
    assert_eq!(outcomes(&r.results), [O::Updated]);
    let p = context_of(&app, Identity::Email("maya@example.com".into()))
        .await
        .profile
        .expect("a profile");
    assert_eq!(
        (p.display_name.as_str(), p.email.as_str(), p.phone.as_str()),
        ("Maya C.", "maya@example.com", "+15550102001")
    );

    // Someone else's email is refused, bad fields are named, the good one lands.
    let thief = customer("c2", "Sam", "maya@example.com", "", "");
    let broken = customer("c3", "", "not-an-email", "12", "");
    let fine = customer("c4", "Lena", "lena@example.com", "", "");
    let r = ingest
        .upsert_customers(pb::UpsertCustomersRequest {
            customers: vec![thief, broken, fine],
        })
        .await
        .expect("ok")
        .into_inner();
    assert_eq!(outcomes(&r.results), [O::Rejected, O::Rejected, O::Created]);
    assert_eq!(r.results[0].violations[0].field, "email");
    let fields: Vec<&str> = r.results[1]
        .violations
        .iter()
        .map(|v| v.field.as_str())
        .collect();
    assert_eq!(fields, ["email", "phone"]);
    let status = context(&app, by(Identity::CustomerId("c2".into())))
        .await
        .expect_err("c2 was not stored");
    assert_eq!(status.code(), Code::NotFound);
    assert_eq!(
        context_of(&app, Identity::Email("maya@example.com".into()))
            .await
            .customer_id,
        "c1"
    );
}

async fn events_batch_keeps_valid_items_and_deduplicates(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    seed_catalog(&app).await;
    let mut ingest = app.ingest.clone();
    let mut search = event(
        "m3",
        "c1",
        "",
        pb::BrowsingEventType::ProductsSearched,
        "",
        3,
    );
    search.search_query = "rain jacket".into();
    let no_actor = view("m4", "", "shell-m", 1);
    let mut future = view("m5", "c1", "shell-m", 1);
    future.occurred_at = Some(ago(-60));
    let no_product = event(
        "m6",
        "c1",
        "",
        pb::BrowsingEventType::ProductAddedToCart,
        "",
        1,
    );
    let mut unknown_type = view("m7", "c1", "shell-m", 1);
    unknown_type.r#type = 99;
    let events = vec![
        view("m1", "c1", "shell-m", 5),
        view("m2", "c1", "shell-l", 4),
        search,
        no_actor,
        future,
        no_product,
        unknown_type,
    ];
    let r = ingest
        .record_events(pb::RecordEventsRequest {
            events: events.clone(),
        })
        .await
        .expect("ok")
        .into_inner();
    assert_eq!(
        outcomes(&r.results),
        [
            O::Created,
            O::Created,
            O::Created,
            O::Rejected,
            O::Rejected,
            O::Rejected,
            O::Rejected
        ]
    );
    let field = |i: usize| r.results[i].violations[0].field.clone();
    assert_eq!(
        [field(3), field(4), field(5), field(6)],
        ["customer_id", "occurred_at", "product_id", "type"]
    );
    assert_eq!(r.results[3].id, "m4");

    let again = ingest
        .record_events(pb::RecordEventsRequest { events })
        .await
        .expect("ok")
        .into_inner();
    assert_eq!(
        again.summary,
        Some(pb::BatchSummary {
            created: 0,
            updated: 0,
            duplicate: 3,
            rejected: 4,
            suppressed: 0
        })
    );
    let ctx = context_of(&app, Identity::CustomerId("c1".into())).await;
    let ids: Vec<String> = ctx
        .recent_browsing
        .iter()
        .map(|b| b.product.clone().expect("p").product_id)
        .collect();
    assert_eq!(ids, ["shell-l", "shell-m"], "stored once, newest first");
    assert_eq!(ctx.recent_searches[0].query, "rain jacket");
    assert_eq!(ctx.browsing_events_scanned, 3);
}

async fn stream_events_commits_and_reports_rejects(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    seed_catalog(&app).await;
    let mut events: Vec<pb::BrowsingEvent> = (0..1203)
        .map(|i| view(&format!("s{i}"), "c1", "socks", 2000 - i))
        .collect();
    events[7].message_id.clear();
    events[1100].product_id.clear();
    let r = app
        .ingest
        .clone()
        .stream_events(tokio_stream::iter(events.clone()))
        .await
        .expect("ok")
        .into_inner();
    assert_eq!(
        r.summary,
        Some(pb::BatchSummary {
            created: 1201,
            updated: 0,
            duplicate: 0,
            rejected: 2,
            suppressed: 0
        })
    );
    let rejected: Vec<(u32, String)> = r
        .rejected
        .iter()
        .map(|x| (x.index, x.violations[0].field.clone()))
        .collect();
    assert_eq!(
        rejected,
        [
            (7, "message_id".to_string()),
            (1100, "product_id".to_string())
        ]
    );
    let again = app
        .ingest
        .clone()
        .stream_events(tokio_stream::iter(events))
        .await
        .expect("ok")
        .into_inner();
    assert_eq!(again.summary.expect("summary").duplicate, 1201);
    let ctx = context_of(&app, Identity::CustomerId("c1".into())).await;
    assert_eq!(ctx.recent_browsing[0].view_count, 1201);
}

async fn orders_update_totals_and_status_changes(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    seed_catalog(&app).await;
    let mut ingest = app.ingest.clone();
    let o1 = order(
        "o1",
        "c1",
        600,
        vec![line("shell-m", 1, 12900), line("socks", 2, 1900)],
    );
    let o2 = order("o2", "c1", 300, vec![line("mouse", 1, 3900)]);
    let mut bad = order("o3", "c1", 10, vec![line("socks", 0, 1900)]);
    bad.lines.push(pb::OrderLine {
        unit_price: Some(pb::Money {
            currency_code: "EUR".into(),
            amount_minor: 5,
        }),
        ..line("shell-l", 1, 0)
    });
    bad.placed_at = None;
    let r = ingest
        .record_orders(pb::RecordOrdersRequest {
            orders: vec![o1.clone(), o2, bad],
        })
        .await
        .expect("ok")
        .into_inner();
    assert_eq!(outcomes(&r.results), [O::Created, O::Created, O::Rejected]);
    let fields: Vec<&str> = r.results[2]
        .violations
        .iter()
        .map(|v| v.field.as_str())
        .collect();
    assert_eq!(
        fields,
        [
            "placed_at",
            "lines[0].quantity",
            "lines[1].unit_price.currency_code"
        ]
    );

    let ctx = context_of(&app, Identity::CustomerId("c1".into())).await;
    let p = ctx.profile.expect("profile");
    assert_eq!((p.order_count, p.units_purchased), (2, 4));
    assert_eq!(
        p.lifetime_spend,
        vec![pb::Money {
            currency_code: "USD".into(),
            amount_minor: 12900 + 3800 + 3900
        }]
    );
    assert_eq!(
        p.top_categories[0].name, "Accessories",
        "two units of socks beat one shell"
    );
    assert_eq!(ctx.recent_orders[0].order_id, "o2");
    let lines = &ctx.recent_orders[1].lines;
    assert_eq!(
        lines[0].product.clone().expect("p").name,
        "Rain Shell (M)",
        "name taken from the catalog"
    );
    assert_eq!(lines[1].quantity, 2);

    // Resending is a duplicate; a cancellation updates the order and totals.
    let r = ingest
        .record_orders(pb::RecordOrdersRequest {
            orders: vec![o1.clone()],
        })
        .await
        .expect("ok")
        .into_inner();
    assert_eq!(outcomes(&r.results), [O::Duplicate]);
    let mut cancelled = o1;
    cancelled.status = pb::OrderStatus::Cancelled.into();
    let r = ingest
        .record_orders(pb::RecordOrdersRequest {
            orders: vec![cancelled],
        })
        .await
        .expect("ok")
        .into_inner();
    assert_eq!(outcomes(&r.results), [O::Updated]);
    let ctx = context_of(&app, Identity::CustomerId("c1".into())).await;
    let p = ctx.profile.expect("profile");
    assert_eq!((p.order_count, p.units_purchased), (1, 1));
    assert_eq!(p.lifetime_spend[0].amount_minor, 3900);
    assert_eq!(
        p.top_categories
            .iter()
            .map(|a| a.name.as_str())
            .collect::<Vec<_>>(),
        ["Electronics"]
    );
    assert_eq!(ctx.recent_orders[1].status(), pb::OrderStatus::Cancelled);
}

async fn returns_resolve_their_customer_and_count_in_the_rate(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    seed_catalog(&app).await;
    let mut ingest = app.ingest.clone();
    ingest
        .record_orders(pb::RecordOrdersRequest {
            orders: vec![order(
                "o1",
                "c1",
                6000,
                vec![line("shell-m", 1, 12900), line("socks", 3, 1900)],
            )],
        })
        .await
        .expect("ok");
    let with_customer = return_("r1", "o1", "c1", "shell-m", 100);
    let from_order = return_("r2", "o1", "", "socks", 50);
    let orphan = return_("r3", "o-unknown", "", "socks", 50);
    let mut bad = return_("r4", "o1", "c1", "socks", 50);
    bad.reason_code.clear();
    bad.lines.clear();
    let r = ingest
        .record_returns(pb::RecordReturnsRequest {
            returns: vec![with_customer.clone(), from_order, orphan, bad],
        })
        .await
        .expect("ok")
        .into_inner();
    assert_eq!(
        outcomes(&r.results),
        [O::Created, O::Created, O::Rejected, O::Rejected]
    );
    assert_eq!(r.results[2].violations[0].field, "customer_id");
    let fields: Vec<&str> = r.results[3]
        .violations
        .iter()
        .map(|v| v.field.as_str())
        .collect();
    assert_eq!(fields, ["reason_code", "lines"]);

    let ctx = context_of(&app, Identity::CustomerId("c1".into())).await;
    let p = ctx.profile.expect("profile");
    assert_eq!((p.units_purchased, p.units_returned), (4, 2));
    assert!((p.return_rate - 0.5).abs() < 1e-9);
    assert_eq!(ctx.returns.len(), 2);
    assert_eq!(ctx.returns[0].return_id, "r2", "newest first");
    assert_eq!(ctx.returns[1].reason_code, "too_small");
    assert_eq!(
        ctx.returns[1].lines[0].product.clone().expect("p").name,
        "Rain Shell (M)"
    );
    let order_lines = &ctx.recent_orders[0].lines;
    assert_eq!(
        (
            order_lines[0].returned_quantity,
            order_lines[1].returned_quantity
        ),
        (1, 1)
    );

    // A rejected return no longer counts.
    let mut rejected = with_customer;
    rejected.status = pb::ReturnStatus::Rejected.into();
    let r = ingest
        .record_returns(pb::RecordReturnsRequest {
            returns: vec![rejected],
        })
        .await
        .expect("ok")
        .into_inner();
    assert_eq!(outcomes(&r.results), [O::Updated]);
    let p = context_of(&app, Identity::CustomerId("c1".into()))
        .await
        .profile
        .expect("profile");
    assert_eq!(p.units_returned, 1);
}

async fn tickets_show_while_unresolved_and_never_roll_back(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    seed_catalog(&app).await;
    let mut ingest = app.ingest.clone();
    ingest
        .record_orders(pb::RecordOrdersRequest {
            orders: vec![order("o1", "c1", 6000, vec![line("socks", 1, 1900)])],
        })
        .await
        .expect("ok");
    let open = ticket("t1", "c1", pb::TicketStatus::Open, "o1", 30);
    let pending = ticket("t2", "c1", pb::TicketStatus::Pending, "", 20);
    let solved = ticket("t3", "c1", pb::TicketStatus::Solved, "", 10);
    let mut bad = ticket("t4", "", pb::TicketStatus::Open, "", 5);
    bad.subject.clear();
    let r = ingest
        .upsert_tickets(pb::UpsertTicketsRequest {
            tickets: vec![open.clone(), pending, solved, bad],
        })
        .await
        .expect("ok")
        .into_inner();
    assert_eq!(
        outcomes(&r.results),
        [O::Created, O::Created, O::Created, O::Rejected]
    );
    let fields: Vec<&str> = r.results[3]
        .violations
        .iter()
        .map(|v| v.field.as_str())
        .collect();
    assert_eq!(fields, ["customer_id", "subject"]);

    let ctx = context_of(&app, Identity::CustomerId("c1".into())).await;
    let ids: Vec<&str> = ctx
        .open_tickets
        .iter()
        .map(|t| t.ticket_id.as_str())
        .collect();
    assert_eq!(ids, ["t2", "t1"]);
    assert_eq!(
        ctx.open_tickets[1].order_status(),
        pb::OrderStatus::Delivered
    );
    assert!(
        ctx.agent_brief.contains("Question t"),
        "{}",
        ctx.agent_brief
    );

    // Solved now; then a late, older "open" update must not reopen it.
    let mut solved_now = open.clone();
    solved_now.status = pb::TicketStatus::Solved.into();
    solved_now.updated_at = Some(ago(1));
    let r = ingest
        .upsert_tickets(pb::UpsertTicketsRequest {
            tickets: vec![solved_now],
        })
        .await
        .expect("ok")
        .into_inner();
    assert_eq!(outcomes(&r.results), [O::Updated]);
    let r = ingest
        .upsert_tickets(pb::UpsertTicketsRequest {
            tickets: vec![open],
        })
        .await
        .expect("ok")
        .into_inner();
    assert_eq!(outcomes(&r.results), [O::Duplicate]);
    let ctx = context_of(&app, Identity::CustomerId("c1".into())).await;
    assert_eq!(
        ctx.open_tickets
            .iter()
            .map(|t| t.ticket_id.as_str())
            .collect::<Vec<_>>(),
        ["t2"]
    );
}

async fn batch_limits_are_enforced(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let mut ingest = app.ingest.clone();
    let empty = ingest
        .upsert_products(pb::UpsertProductsRequest { products: vec![] })
        .await
        .expect_err("empty");
    assert_eq!(violated_fields(&empty), ["products"]);
    let many: Vec<pb::BrowsingEvent> = (0..1001)
        .map(|i| view(&format!("m{i}"), "c1", "p", 1))
        .collect();
    let too_many = ingest
        .record_events(pb::RecordEventsRequest { events: many })
        .await
        .expect_err("too many");
    assert_eq!(violated_fields(&too_many), ["events"]);
    assert!(
        too_many.message().contains("at most 1000"),
        "{}",
        too_many.message()
    );
    // A message over the 8 MiB limit is refused before it is decoded.
    let mut huge = product("big", "Big", &["Apparel"], 100, 1);
    huge.url = "x".repeat(9 * 1024 * 1024);
    let status = ingest
        .upsert_products(pb::UpsertProductsRequest {
            products: vec![huge],
        })
        .await
        .expect_err("too large");
    assert_eq!(status.code(), Code::OutOfRange, "{status:?}");
    // Nothing of the refused batches was stored.
    let status = context(&app, by(Identity::CustomerId("c1".into())))
        .await
        .expect_err("nothing stored");
    assert_eq!(status.code(), Code::NotFound);
}

async fn an_event_repeated_in_one_batch_counts_once(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    seed_catalog(&app).await;
    let mut ingest = app.ingest.clone();
    // Spread over more rows than one INSERT holds, with repeats inside the
    // batch, across statements and of an event stored before.
    ingest
        .record_events(pb::RecordEventsRequest {
            events: vec![view("old", "c1", "shell-m", 9)],
        })
        .await
        .expect("ok");
    let mut events: Vec<pb::BrowsingEvent> = (0..700)
        .map(|i| {
            view(
                &format!("b{i}"),
                if i % 2 == 0 { "c1" } else { "c2" },
                "shell-l",
                5,
            )
        })
        .collect();
    events.insert(3, view("b0", "c1", "shell-m", 4));
    events.push(view("b650", "c1", "shell-m", 4));
    events.push(view("old", "c1", "shell-m", 9));
    let r = ingest
        .record_events(pb::RecordEventsRequest { events })
        .await
        .expect("ok")
        .into_inner();
    let o = outcomes(&r.results);
    assert_eq!(
        (o[0], o[3]),
        (O::Created, O::Duplicate),
        "the first of two counts"
    );
    assert_eq!(&o[o.len() - 2..], [O::Duplicate, O::Duplicate]);
    let s = r.summary.expect("summary");
    assert_eq!((s.created, s.duplicate), (700, 3));
    let c1 = context_of(&app, Identity::CustomerId("c1".into())).await;
    assert_eq!(
        c1.browsing_events_scanned, 351,
        "350 new and the old one, each once"
    );
}
