//! GetCustomerContext: every identity kind, linking, read masks, errors,
//! and bounded cost for a very long history.

use customer_context::{
    domain::{
        Actor, BrowsingEvent, CustomerId, EventKind, EventTarget, MessageId, ProductId, Timestamp,
    },
    proto::{self as pb, ItemOutcome as O, customer_ref::Identity},
};
use tonic::Code;

use crate::{
    fixtures::*,
    harness::{Backend, spawn_app},
    on_both_backends,
};

on_both_backends!(
    lookup_by_every_identity_kind,
    linking_an_anonymous_id_carries_its_browsing_over,
    cart_items_bought_later_are_not_abandoned,
    read_mask_selects_sections,
    unknown_identity_is_not_found,
    bad_requests_name_their_fields,
    long_and_short_histories_are_both_served_correctly,
);

async fn lookup_by_every_identity_kind(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    seed_catalog(&app).await;
    let mut ingest = app.ingest.clone();
    let mut maya = customer(
        "c1",
        "Maya Chen",
        "maya@example.com",
        "+1 555 010 2001",
        "L-77",
    );
    maya.anonymous_ids = vec!["anon-laptop".into()];
    ingest
        .upsert_customers(pb::UpsertCustomersRequest {
            customers: vec![maya],
        })
        .await
        .expect("ok");
    ingest
        .record_events(pb::RecordEventsRequest {
            events: vec![view("m1", "c1", "socks", 3)],
        })
        .await
        .expect("ok");
    for identity in [
        Identity::CustomerId("c1".into()),
        Identity::Email("  MAYA@example.COM ".into()),
        Identity::Phone("+15550102001".into()),
        Identity::Phone("+1 (555) 010-2001".into()),
        Identity::LoyaltyId("L-77".into()),
        Identity::AnonymousId("anon-laptop".into()),
    ] {
        let ctx = context_of(&app, identity.clone()).await;
        assert_eq!(ctx.customer_id, "c1", "{identity:?}");
        assert_eq!(
            ctx.profile.as_ref().expect("profile").display_name,
            "Maya Chen"
        );
        assert_eq!(ctx.recent_browsing.len(), 1);
        assert!(ctx.as_of.is_some());
        assert!(
            ctx.agent_brief.starts_with("Maya Chen"),
            "{}",
            ctx.agent_brief
        );
    }
}

async fn linking_an_anonymous_id_carries_its_browsing_over(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    seed_catalog(&app).await;
    let mut ingest = app.ingest.clone();
    let anon = |id: &str, product: &str, mins: i64| {
        event(
            id,
            "",
            "anon-1",
            pb::BrowsingEventType::ProductViewed,
            product,
            mins,
        )
    };
    let mut cart = event(
        "a3",
        "",
        "anon-1",
        pb::BrowsingEventType::ProductAddedToCart,
        "shell-l",
        5,
    );
    cart.channel = "app".into();
    ingest
        .record_events(pb::RecordEventsRequest {
            events: vec![anon("a1", "shell-m", 20), anon("a2", "shell-l", 10), cart],
        })
        .await
        .expect("ok");

    // Before linking: an anonymous visitor with browsing and no profile.
    let ctx = context_of(&app, Identity::AnonymousId("anon-1".into())).await;
    assert_eq!(
        (ctx.customer_id.as_str(), ctx.anonymous_id.as_str()),
        ("", "anon-1")
    );
    assert!(ctx.profile.is_none());
    assert_eq!(ctx.recent_browsing.len(), 2);
    assert!(ctx.recent_browsing[0].abandoned_cart);
    assert!(
        ctx.agent_brief.starts_with("Anonymous visitor"),
        "{}",
        ctx.agent_brief
    );

    ingest
        .upsert_customers(pb::UpsertCustomersRequest {
            customers: vec![customer("c1", "Maya", "maya@example.com", "", "")],
        })
        .await
        .expect("ok");
    assert!(
        context_of(&app, Identity::CustomerId("c1".into()))
            .await
            .recent_browsing
            .is_empty()
    );
    let link = pb::LinkIdentityRequest {
        customer_id: "c1".into(),
        kind: pb::IdentityKind::AnonymousId.into(),
        value: "anon-1".into(),
    };
    let r = ingest
        .link_identity(link.clone())
        .await
        .expect("ok")
        .into_inner();
    assert_eq!((r.outcome(), r.records_attached), (O::Created, 3));
    let r = ingest.link_identity(link).await.expect("ok").into_inner();
    assert_eq!((r.outcome(), r.records_attached), (O::Duplicate, 0));

    let ctx = context_of(&app, Identity::Email("maya@example.com".into())).await;
    let ids: Vec<String> = ctx
        .recent_browsing
        .iter()
        .map(|b| b.product.clone().expect("p").product_id)
        .collect();
    assert_eq!(ids, ["shell-l", "shell-m"]);
    assert_eq!(ctx.recent_browsing[0].last_channel, "app");
    assert!(ctx.recent_browsing[0].in_cart);
    // The anonymous id now leads to the customer.
    assert_eq!(
        context_of(&app, Identity::AnonymousId("anon-1".into()))
            .await
            .customer_id,
        "c1"
    );

    // Later anonymous events land in the customer's history.
    ingest
        .record_events(pb::RecordEventsRequest {
            events: vec![anon("a4", "socks", 1)],
        })
        .await
        .expect("ok");
    let ctx = context_of(&app, Identity::CustomerId("c1".into())).await;
    assert_eq!(
        ctx.recent_browsing[0]
            .product
            .clone()
            .expect("p")
            .product_id,
        "socks"
    );

    // The same anonymous id cannot be moved to someone else.
    let steal = pb::LinkIdentityRequest {
        customer_id: "c2".into(),
        kind: pb::IdentityKind::AnonymousId.into(),
        value: "anon-1".into(),
    };
    let status = ingest.link_identity(steal).await.expect_err("refused");
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(
        context(&app, by(Identity::CustomerId("c2".into())))
            .await
            .expect_err("not created")
            .code(),
        Code::NotFound
    );

    // Bad link requests name their fields.
    let bad = pb::LinkIdentityRequest {
        customer_id: String::new(),
        kind: pb::IdentityKind::Email.into(),
        value: "nope".into(),
    };
    assert_eq!(
        violated_fields(&ingest.link_identity(bad).await.expect_err("bad")),
        ["customer_id", "value"]
    );
    let bad = pb::LinkIdentityRequest {
        customer_id: "c1".into(),
        kind: 0,
        value: "x".into(),
    };
    assert_eq!(
        violated_fields(&ingest.link_identity(bad).await.expect_err("bad")),
        ["kind"]
    );
}

async fn cart_items_bought_later_are_not_abandoned(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    seed_catalog(&app).await;
    let mut ingest = app.ingest.clone();
    let add = |id: &str, product: &str, mins: i64| {
        event(
            id,
            "c1",
            "",
            pb::BrowsingEventType::ProductAddedToCart,
            product,
            mins,
        )
    };
    let remove = event(
        "e3",
        "c1",
        "",
        pb::BrowsingEventType::ProductRemovedFromCart,
        "mouse",
        40,
    );
    ingest
        .record_events(pb::RecordEventsRequest {
            events: vec![
                add("e1", "shell-m", 60),
                add("e2", "socks", 50),
                add("e4", "mouse", 45),
                remove,
            ],
        })
        .await
        .expect("ok");
    ingest
        .record_orders(pb::RecordOrdersRequest {
            orders: vec![order("o1", "c1", 30, vec![line("socks", 1, 1900)])],
        })
        .await
        .expect("ok");
    let ctx = context_of(&app, Identity::CustomerId("c1".into())).await;
    let state: Vec<(String, bool)> = ctx
        .recent_browsing
        .iter()
        .map(|b| (b.product.clone().expect("p").product_id, b.abandoned_cart))
        .collect();
    assert_eq!(
        state,
        [
            ("mouse".into(), false),
            ("socks".into(), false),
            ("shell-m".into(), true)
        ]
    );
    assert!(
        ctx.agent_brief.contains("Rain Shell (M) is in the cart"),
        "{}",
        ctx.agent_brief
    );
}

async fn read_mask_selects_sections(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    seed_catalog(&app).await;
    let mut ingest = app.ingest.clone();
    ingest
        .record_events(pb::RecordEventsRequest {
            events: vec![view("m1", "c1", "socks", 3)],
        })
        .await
        .expect("ok");
    ingest
        .record_orders(pb::RecordOrdersRequest {
            orders: vec![order("o1", "c1", 600, vec![line("socks", 1, 1900)])],
        })
        .await
        .expect("ok");
    ingest
        .record_returns(pb::RecordReturnsRequest {
            returns: vec![return_("r1", "o1", "c1", "socks", 100)],
        })
        .await
        .expect("ok");
    ingest
        .upsert_tickets(pb::UpsertTicketsRequest {
            tickets: vec![ticket("t1", "c1", pb::TicketStatus::Open, "o1", 10)],
        })
        .await
        .expect("ok");

    let mut request = by(Identity::CustomerId("c1".into()));
    request.read_mask = Some(prost_types::FieldMask {
        paths: vec!["recent_orders".into(), "open_tickets".into()],
    });
    let ctx = context(&app, request.clone()).await.expect("ok");
    assert!(ctx.profile.is_none() && ctx.recent_browsing.is_empty() && ctx.returns.is_empty());
    assert!(ctx.agent_brief.is_empty());
    assert_eq!((ctx.recent_orders.len(), ctx.open_tickets.len()), (1, 1));
    assert_eq!(ctx.customer_id, "c1");

    // The brief alone still reads what it needs, and returns only itself.
    request.read_mask = Some(prost_types::FieldMask {
        paths: vec!["agent_brief".into()],
    });
    let ctx = context(&app, request.clone()).await.expect("ok");
    assert!(
        ctx.profile.is_none()
            && ctx.returns.is_empty()
            && ctx.open_tickets.is_empty()
            && ctx.recent_orders.is_empty()
    );
    assert!(ctx.agent_brief.contains("too small"), "{}", ctx.agent_brief);

    // Everything when the mask is empty.
    request.read_mask = None;
    let ctx = context(&app, request.clone()).await.expect("ok");
    assert!(ctx.profile.is_some());
    assert_eq!(
        (
            ctx.recent_browsing.len(),
            ctx.recent_orders.len(),
            ctx.returns.len(),
            ctx.open_tickets.len()
        ),
        (1, 1, 1, 1)
    );

    request.read_mask = Some(prost_types::FieldMask {
        paths: vec!["profile".into(), "orders".into()],
    });
    let status = context(&app, request).await.expect_err("unknown path");
    assert_eq!(violated_fields(&status), ["read_mask.paths[1]"]);
}

async fn unknown_identity_is_not_found(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    for identity in [
        Identity::CustomerId("nobody".into()),
        Identity::Email("nobody@example.com".into()),
        Identity::Phone("+15550000000".into()),
        Identity::LoyaltyId("L-0".into()),
        Identity::AnonymousId("anon-never-seen".into()),
    ] {
        let status = context(&app, by(identity.clone()))
            .await
            .expect_err("unknown");
        assert_eq!(status.code(), Code::NotFound, "{identity:?}");
    }
}

async fn bad_requests_name_their_fields(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let missing = pb::GetCustomerContextRequest::default();
    assert_eq!(
        violated_fields(&context(&app, missing).await.expect_err("bad")),
        ["customer"]
    );
    let bad_email = by(Identity::Email("maya-at-example".into()));
    assert_eq!(
        violated_fields(&context(&app, bad_email).await.expect_err("bad")),
        ["customer.email"]
    );
    let too_long = by(Identity::CustomerId("x".repeat(200)));
    let status = context(&app, too_long).await.expect_err("bad");
    assert_eq!(violated_fields(&status), ["customer.customer_id"]);
    assert!(
        status.message().contains("at most 128"),
        "{}",
        status.message()
    );
    let mut limits = by(Identity::CustomerId("c1".into()));
    limits.lookback_days = 5000;
    limits.browsing_limit = 51;
    limits.tickets_limit = 1000;
    assert_eq!(
        violated_fields(&context(&app, limits).await.expect_err("bad")),
        ["lookback_days", "browsing_limit", "tickets_limit"]
    );
}

async fn long_and_short_histories_are_both_served_correctly(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    seed_catalog(&app).await;
    // Written through the store (the same call the API makes) to keep the
    // test quick; 100,000 events over five products, the newest on "mouse".
    let products = ["shell-m", "shell-l", "socks", "runner-9", "mouse"];
    let now = Timestamp::now().millis();
    let heavy = CustomerId::parse("heavy").expect("id");
    let actor = Actor::new(Some(heavy), None).expect("actor");
    let total: i64 = 100_000;
    let mut batch = Vec::with_capacity(1000);
    for i in 0..total {
        // Event i happened (total - i) seconds ago: the last one is newest.
        let at = Timestamp::from_millis(now - (total - i) * 1000).expect("instant");
        let product = ProductId::parse(products[(i % 5) as usize]).expect("id");
        batch.push(
            BrowsingEvent::new(
                MessageId::parse(&format!("h{i}")).expect("id"),
                actor.clone(),
                EventKind::ProductViewed,
                EventTarget::Product(product),
                "web".into(),
                at,
                Timestamp::now(),
            )
            .expect("event"),
        );
        if batch.len() == 1000 {
            app.store.record_events(&batch).await.expect("stored");
            batch.clear();
        }
    }
    let light: Vec<pb::BrowsingEvent> = (0..10)
        .map(|i| view(&format!("l{i}"), "light", products[i % 5], 100 - i as i64))
        .collect();
    app.ingest
        .clone()
        .record_events(pb::RecordEventsRequest { events: light })
        .await
        .expect("ok");

    let heavy = context_of(&app, Identity::CustomerId("heavy".into())).await;
    assert_eq!(
        heavy.browsing_events_scanned, 2000,
        "a bounded scan of the newest events"
    );
    let order: Vec<String> = heavy
        .recent_browsing
        .iter()
        .map(|b| b.product.clone().expect("p").product_id)
        .collect();
    assert_eq!(order, ["mouse", "runner-9", "socks", "shell-l", "shell-m"]);
    assert!(heavy.recent_browsing.iter().all(|b| b.view_count == 400));
    let newest = heavy.recent_browsing[0].last_seen_at.expect("time").seconds * 1000;
    assert!(
        (now - 1000 - newest).abs() < 1000,
        "the newest event is the one from a second ago"
    );

    let light = context_of(&app, Identity::CustomerId("light".into())).await;
    assert_eq!(light.browsing_events_scanned, 10);
    let order: Vec<String> = light
        .recent_browsing
        .iter()
        .map(|b| b.product.clone().expect("p").product_id)
        .collect();
    assert_eq!(order, ["mouse", "runner-9", "socks", "shell-l", "shell-m"]);
    assert!(light.recent_browsing.iter().all(|b| b.view_count == 2));
}
