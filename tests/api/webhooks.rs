//! The webhook receivers, driven by payloads shaped as each platform's
//! documentation shows them, signed here as each sender signs: the data
//! reaches the context; bad signatures, replays, duplicates, late versions
//! and malformed bodies are handled as a production sender needs.

use base64::Engine as _;
use customer_context::{
    connect::{ConnectorConfig, SourceValue, hmac_sha1, hmac_sha256, to_hex},
    domain::Timestamp,
    proto::{self as pb, customer_ref::Identity},
};
use serde_json::{Value, json};

use crate::{
    fixtures::*,
    harness::{Backend, TestApp, spawn_with_connectors},
    on_both_backends,
};

on_both_backends!(
    shopify_orders_refunds_customers_and_stock_reach_the_context,
    bad_missing_and_stale_signatures_store_nothing,
    duplicates_late_versions_and_updates_before_creates_keep_the_newest_once,
    guest_orders_join_the_customer_who_later_signs_up,
    customers_redact_erases_the_customer_and_their_deliveries,
    malformed_and_oversized_bodies_are_refused,
    segment_events_single_and_batched_reach_the_context,
    helpdesk_tickets_reach_the_context_and_wait_for_unknown_requesters,
    a_sender_retrying_across_a_crash_stores_every_acknowledged_delivery_once,
    a_shopify_history_file_is_imported_as_the_webhooks_map_it,
    shopify_stock_levels_hide_a_sold_out_suggestion,
    bodies_arriving_at_once_are_bounded_in_bytes,
);

const SHOPIFY: &str = "shpss_test_secret_1";
const SEGMENT: &str = "segment-shared-secret";
const SEGMENT_TOKEN: &str = "segment-static-token";
const ZENDESK: &str = "zendesk-signing-secret";
const CHATWOOT: &str = "chatwoot-hmac-token";
const GORGIAS_TOKEN: &str = "gorgias-static-token";

fn config() -> ConnectorConfig {
    let v = |s: &str| s.parse::<SourceValue>().expect("a source value");
    ConnectorConfig::default()
        .with(
            &[
                v(&format!("shopify={SHOPIFY}")),
                v(&format!("segment={SEGMENT}")),
                v(&format!("zendesk={ZENDESK}")),
                v(&format!("chatwoot={CHATWOOT}")),
            ],
            &[
                v(&format!("segment={SEGMENT_TOKEN}")),
                v(&format!("gorgias={GORGIAS_TOKEN}")),
            ],
        )
        .expect("a configuration")
}

async fn app(backend: Backend) -> Option<TestApp> {
    spawn_with_connectors(backend, config()).await
}

/// RFC 3339 time `minutes` ago.
fn iso(minutes: i64) -> String {
    Timestamp::now().plus_millis(-minutes * 60_000).to_rfc3339()
}

/// Posts `body` to `/webhooks/{source}` with `headers`: (status, JSON).
async fn post(app: &TestApp, source: &str, headers: &[(&str, String)], body: &str) -> (u16, Value) {
    let mut request = reqwest::Client::new()
        .post(format!("http://{}/webhooks/{source}", app.addr))
        .header("content-type", "application/json")
        .body(body.to_owned());
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let response = request.send().await.expect("an answer");
    let status = response.status().as_u16();
    let text = response.text().await.expect("a body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// Posts a Shopify delivery of `topic`, signed with `secret`.
async fn shopify_as(
    app: &TestApp,
    secret: &str,
    topic: &str,
    webhook_id: &str,
    body: &Value,
) -> (u16, Value) {
    let body = body.to_string();
    let sig = base64::engine::general_purpose::STANDARD
        .encode(hmac_sha256(secret.as_bytes(), &[body.as_bytes()]));
    let headers = [
        ("x-shopify-topic", topic.to_owned()),
        ("x-shopify-hmac-sha256", sig),
        ("x-shopify-webhook-id", webhook_id.to_owned()),
        ("x-shopify-triggered-at", iso(0)),
    ];
    post(app, "shopify", &headers, &body).await
}

async fn shopify(app: &TestApp, topic: &str, webhook_id: &str, body: &Value) -> Value {
    let (status, answer) = shopify_as(app, SHOPIFY, topic, webhook_id, body).await;
    assert_eq!(status, 200, "{topic}: {answer}");
    answer
}

/// Shopify's sample product (docs: the `products/create` payload), with
/// sizes and inventory items.
fn trail_runner() -> Value {
    json!({
        "id": 788032119674292922u64, "title": "Trail Runner", "vendor": "Acme", "product_type": "Shoes",
        "status": "active", "handle": "trail-runner", "updated_at": iso(600),
        "options": [{"id": 1, "name": "Size", "position": 1, "values": ["9", "10"]}],
        "image": {"src": "https://cdn.example.com/trail.jpg"},
        "variants": [
            {"id": 642667041472713922u64, "product_id": 788032119674292922u64, "title": "9", "price": "120.00",
             "option1": "9", "inventory_management": "shopify", "inventory_policy": "deny",
             "inventory_quantity": 5, "inventory_item_id": 271878346596884015u64},
            {"id": 757650484644203962u64, "product_id": 788032119674292922u64, "title": "10", "price": "120.00",
             "option1": "10", "inventory_management": "shopify", "inventory_policy": "deny",
             "inventory_quantity": 3, "inventory_item_id": 271878346596884016u64}
        ]
    })
}

/// Shopify's sample order (docs: the `orders/create` payload), placed by
/// customer 115310627314723954 with three lines.
fn order(id: u64, updated_minutes_ago: i64, fulfillment: Option<&str>) -> Value {
    json!({
        "id": id, "email": "john@example.com", "created_at": iso(300), "updated_at": iso(updated_minutes_ago),
        "processed_at": iso(300), "cancelled_at": null, "currency": "USD", "financial_status": "paid",
        "fulfillment_status": fulfillment, "total_price": "403.00", "source_name": "web",
        "customer": {"id": 115310627314723954u64, "email": "john@example.com", "first_name": "John",
                     "last_name": "Smith", "phone": null, "created_at": iso(900), "updated_at": iso(900)},
        "line_items": [
            {"id": 866550311766439020u64, "variant_id": 642667041472713922u64, "product_id": 788032119674292922u64,
             "title": "Trail Runner", "quantity": 1, "price": "120.00", "vendor": "Acme"},
            {"id": 141249953214522974u64, "variant_id": 808950810, "product_id": 632910392,
             "title": "IPod Nano - 8GB", "quantity": 1, "price": "199.00", "vendor": null},
            {"id": 141249953214522975u64, "variant_id": null, "product_id": null,
             "title": "A deleted product", "quantity": 2, "price": "42.00"}
        ]
    })
}

fn john() -> Identity {
    Identity::CustomerId("115310627314723954".into())
}

async fn shopify_orders_refunds_customers_and_stock_reach_the_context(backend: Backend) {
    let Some(app) = app(backend).await else {
        return;
    };
    shopify(&app, "products/create", "w-product", &trail_runner()).await;
    let placed = shopify(
        &app,
        "orders/create",
        "w-order",
        &order(820982911946154508, 300, None),
    )
    .await;
    assert_eq!(placed["status"], "applied", "{placed}");
    // Shopify's sample refund: one unit of the first line, with a note.
    let refund = json!({
        "id": 509562969, "order_id": 820982911946154508u64, "created_at": iso(60),
        "note": "Runs small - need a size up", "restock": true,
        "refund_line_items": [{"id": 104689539, "quantity": 1, "line_item_id": 866550311766439020u64,
            "line_item": {"id": 866550311766439020u64, "variant_id": 642667041472713922u64, "product_id": 788032119674292922u64}}],
        "transactions": [{"id": 179259969, "amount": "120.00", "kind": "refund", "status": "success", "currency": "USD"}]
    });
    shopify(&app, "refunds/create", "w-refund", &refund).await;
    // Inventory level: size 9 sold out at its one location.
    let level = json!({"inventory_item_id": 271878346596884015u64, "location_id": 24826418,
                       "available": 0, "updated_at": iso(5)});
    let answer = shopify(&app, "inventory_levels/update", "w-level", &level).await;
    assert_eq!(answer["status"], "applied", "{answer}");

    let ctx = context_of(&app, Identity::Email("john@example.com".into())).await;
    assert_eq!(ctx.customer_id, "115310627314723954");
    assert_eq!(ctx.profile.as_ref().unwrap().display_name, "John Smith");
    let o = &ctx.recent_orders[0];
    assert_eq!(o.order_id, "820982911946154508");
    assert_eq!(o.lines.len(), 3);
    assert_eq!(o.total.as_ref().unwrap().amount_minor, 40300);
    let runner = o
        .lines
        .iter()
        .find(|l| l.product.as_ref().unwrap().product_id == "642667041472713922")
        .expect("the trail runner line");
    assert_eq!(runner.returned_quantity, 1);
    let snapshot = runner.product.as_ref().unwrap();
    assert_eq!(snapshot.size, "9");
    assert!(!snapshot.available, "size 9 is sold out now");
    assert_eq!(snapshot.stock_quantity, Some(0));
    assert!(
        o.lines
            .iter()
            .any(|l| l.product.as_ref().unwrap().product_id == "shopify-line-141249953214522975"),
        "a deleted product's line is kept"
    );
    let r = &ctx.returns[0];
    assert_eq!(r.reason_code, "too_small");
    assert_eq!(r.reason_text, "Runs small - need a size up");

    // The sold-out size is never suggested; the one in stock may be.
    let suggested = app
        .context
        .clone()
        .suggest_cross_sells(pb::SuggestCrossSellsRequest {
            customer: Some(pb::CustomerRef {
                identity: Some(john()),
            }),
            anchor_product_ids: vec!["808950810".into()],
            limit: 20,
            ..Default::default()
        })
        .await
        .expect("suggestions")
        .into_inner();
    assert!(
        suggested
            .suggestions
            .unwrap_or_default()
            .items
            .iter()
            .all(|s| s.product.as_ref().unwrap().product_id != "642667041472713922")
    );

    // The status page shows the deliveries; metrics count them.
    let admin = app.key(customer_context::domain::Role::Ingest).await;
    let (status, body) = crate::http::call(&app, "GET", "/v1/webhooks", Some(&admin), None).await;
    assert_eq!(status, 200, "{body}");
    let shopify = body["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["source"] == "shopify")
        .unwrap();
    assert_eq!(shopify["configured"], true);
    assert_eq!(shopify["deliveries"]["applied"], 4, "{shopify}");
    let (_, metrics) = crate::http::call(&app, "GET", "/metrics", None, None).await;
    let metrics = metrics.as_str().unwrap_or_default().to_owned();
    assert!(
        metrics.contains(
            r#"cc_webhook_deliveries_total{source="shopify",topic="orders/create",outcome="applied"} 1"#
        ),
        "{metrics}"
    );
}

async fn bad_missing_and_stale_signatures_store_nothing(backend: Backend) {
    let Some(app) = app(backend).await else {
        return;
    };
    let body = order(1, 10, None);
    let (status, _) = shopify_as(&app, "not-the-secret", "orders/create", "w1", &body).await;
    assert_eq!(status, 401);
    let (status, _) = post(
        &app,
        "shopify",
        &[("x-shopify-topic", "orders/create".into())],
        &body.to_string(),
    )
    .await;
    assert_eq!(status, 401);
    // The compliance topics must answer 401 to a bad signature too.
    let redact = json!({"shop_id": 1, "customer": {"id": 115310627314723954u64}});
    let (status, _) = shopify_as(&app, "wrong", "customers/redact", "w2", &redact).await;
    assert_eq!(status, 401);
    // Zendesk signs its timestamp: an old one is a replay.
    let ticket = json!({"type": "zen:event-type:ticket.created", "id": "z1",
                        "detail": {"id": "35", "requester_id": "1", "status": "OPEN"}});
    let (status, _) = zendesk(&app, &ticket, &iso(10)).await;
    assert_eq!(status, 401);
    // A receiver without a secret is not there.
    let (status, _) = post(&app, "freshdesk", &[], "{}").await;
    assert_eq!(status, 404);
    let lookup = context(&app, by(john())).await;
    assert_eq!(lookup.unwrap_err().code(), tonic::Code::NotFound);
    let status = app.store.delivery_status().await.unwrap();
    assert!(status.is_empty(), "nothing stored: {status:?}");
}

async fn duplicates_late_versions_and_updates_before_creates_keep_the_newest_once(
    backend: Backend,
) {
    let Some(app) = app(backend).await else {
        return;
    };
    // The update (fulfilled, newer) arrives before the create.
    let newer = order(2001, 20, Some("fulfilled"));
    let first = shopify(&app, "orders/updated", "w-upd", &newer).await;
    assert_eq!(first["status"], "applied");
    let late = shopify(&app, "orders/create", "w-create", &order(2001, 300, None)).await;
    assert_eq!(late["status"], "superseded", "{late}");
    // The same delivery again (a retry), and again at once (a duplicate).
    let (a, b) = tokio::join!(
        shopify_as(&app, SHOPIFY, "orders/updated", "w-upd", &newer),
        shopify_as(&app, SHOPIFY, "orders/updated", "w-upd", &newer),
    );
    assert_eq!((a.0, b.0), (200, 200));
    assert_eq!(a.1["status"], "duplicate");
    assert_eq!(b.1["status"], "duplicate");
    let ctx = context_of(&app, john()).await;
    assert_eq!(ctx.recent_orders.len(), 1);
    assert_eq!(
        ctx.recent_orders[0].status(),
        pb::OrderStatus::Shipped,
        "the newer version is kept"
    );
    let status = app.store.delivery_status().await.unwrap();
    assert_eq!(status[0].counts.iter().sum::<i64>(), 2, "stored once each");
}

async fn guest_orders_join_the_customer_who_later_signs_up(backend: Backend) {
    let Some(app) = app(backend).await else {
        return;
    };
    let mut guest = order(3001, 30, None);
    guest["customer"] = Value::Null;
    guest["email"] = "Guest.Buyer@Example.com".into();
    shopify(&app, "orders/create", "w-guest", &guest).await;
    let customer = json!({"id": 706405506930370084u64, "email": "guest.buyer@example.com",
                          "first_name": "Bob", "last_name": "Biller", "created_at": iso(10), "updated_at": iso(10)});
    shopify(&app, "customers/create", "w-cust", &customer).await;
    let ctx = context_of(&app, Identity::Email("guest.buyer@example.com".into())).await;
    assert_eq!(ctx.customer_id, "706405506930370084");
    assert_eq!(ctx.recent_orders.len(), 1, "the guest order is theirs now");
    assert_eq!(ctx.recent_orders[0].order_id, "3001");
    // A guest order placed after they signed up is theirs at once.
    let mut later = order(3002, 5, None);
    later["customer"] = Value::Null;
    later["email"] = "guest.buyer@example.com".into();
    shopify(&app, "orders/create", "w-guest2", &later).await;
    let ctx = context_of(&app, Identity::Email("guest.buyer@example.com".into())).await;
    assert_eq!(ctx.recent_orders.len(), 2);
}

async fn customers_redact_erases_the_customer_and_their_deliveries(backend: Backend) {
    let Some(app) = app(backend).await else {
        return;
    };
    shopify(&app, "orders/create", "w-o", &order(4001, 30, None)).await;
    let before = app.store.delivery_status().await.unwrap();
    assert_eq!(before[0].counts[1], 1, "one applied delivery");
    let redact = json!({"shop_id": 954889, "shop_domain": "shop.myshopify.com",
                        "customer": {"id": 115310627314723954u64, "email": "john@example.com", "phone": "555-625-1199"},
                        "orders_to_redact": [4001]});
    let answer = shopify(&app, "customers/redact", "w-redact", &redact).await;
    assert_eq!(answer["status"], "applied", "{answer}");
    let lookup = context(&app, by(john())).await;
    assert_eq!(lookup.unwrap_err().code(), tonic::Code::NotFound);
    let after = app.store.delivery_status().await.unwrap();
    assert!(after.is_empty(), "no raw delivery left: {after:?}");
    // A guest who never had an account: their guest order goes with them.
    let mut guest = order(4002, 20, None);
    guest["customer"] = Value::Null;
    guest["email"] = "only.guest@example.com".into();
    shopify(&app, "orders/create", "w-g", &guest).await;
    assert_eq!(orders_with_id(&app, "4002").await, 1);
    let redact = json!({"shop_id": 954889, "customer": {"id": 9090, "email": "only.guest@example.com"},
                        "orders_to_redact": [4002]});
    shopify(&app, "customers/redact", "w-redact-guest", &redact).await;
    assert_eq!(
        orders_with_id(&app, "4002").await,
        0,
        "the guest order is erased"
    );
    assert!(app.store.delivery_status().await.unwrap().is_empty());
    // A retried order delivery for them is suppressed, not stored again.
    let again = shopify(&app, "orders/updated", "w-o2", &order(4001, 10, None)).await;
    assert_eq!(again["status"], "applied");
    assert_eq!(
        context(&app, by(john())).await.unwrap_err().code(),
        tonic::Code::NotFound
    );
}

async fn malformed_and_oversized_bodies_are_refused(backend: Backend) {
    let Some(app) = app(backend).await else {
        return;
    };
    let body = "{not json";
    let sig = base64::engine::general_purpose::STANDARD
        .encode(hmac_sha256(SHOPIFY.as_bytes(), &[body.as_bytes()]));
    let headers = [
        ("x-shopify-topic", "orders/create".to_owned()),
        ("x-shopify-hmac-sha256", sig),
    ];
    let (status, _) = post(&app, "shopify", &headers, body).await;
    assert_eq!(status, 400);
    // Too large by its declared length (answered before any body byte),
    // and by its bytes (chunked: 8 MiB and one byte, then nothing more).
    let declared = format!(
        "POST /webhooks/shopify HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        9 << 20
    );
    assert!(
        raw(&app, declared.as_bytes())
            .await
            .starts_with("HTTP/1.1 413")
    );
    let mut chunked =
        b"POST /webhooks/shopify HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n"
            .to_vec();
    let size = (8 << 20) + 1;
    chunked.extend(format!("{size:x}\r\n").as_bytes());
    chunked.extend(std::iter::repeat_n(b' ', size));
    chunked.extend(b"\r\n");
    assert!(raw(&app, &chunked).await.starts_with("HTTP/1.1 413"));
    // Valid and signed, but not an order: kept with its error.
    let (status, answer) =
        shopify_as(&app, SHOPIFY, "orders/create", "w-bad", &json!({"id": 5})).await;
    assert_eq!(status, 200);
    assert_eq!(answer["status"], "failed");
    assert!(
        answer["detail"].as_str().unwrap().contains("line_items"),
        "{answer}"
    );
    let failed = app
        .store
        .deliveries_in(None, customer_context::store::DeliveryState::Failed, 10)
        .await
        .unwrap();
    assert_eq!(failed.len(), 1, "kept for a replay");
}

/// Orders stored under `id` (read from the database itself).
async fn orders_with_id(app: &TestApp, id: &str) -> i64 {
    use sqlx::{Connection as _, Row as _};
    let mut conn = sqlx::AnyConnection::connect(&app.database_url)
        .await
        .expect("connects");
    let query = format!("SELECT COUNT(*) FROM orders WHERE order_id = '{id}'");
    let row = sqlx::query(sqlx::AssertSqlSafe(query))
        .fetch_one(&mut conn)
        .await
        .expect("counted");
    row.try_get::<i64, _>(0).expect("a count")
}

/// Writes `request` on a fresh connection and reads the answer's head.
async fn raw(app: &TestApp, request: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(app.addr)
        .await
        .expect("connects");
    stream.write_all(request).await.expect("written");
    let mut head = vec![0u8; 256];
    let n = stream.read(&mut head).await.expect("an answer");
    String::from_utf8_lossy(&head[..n]).into_owned()
}

/// Posts a Segment body with its signature (single events) or the static
/// token (batches).
async fn segment(app: &TestApp, body: &Value) -> (u16, Value) {
    let text = body.to_string();
    let headers = if body.is_array() {
        vec![("x-webhook-token", SEGMENT_TOKEN.to_owned())]
    } else {
        vec![(
            "x-signature",
            to_hex(&hmac_sha1(SEGMENT.as_bytes(), text.as_bytes())),
        )]
    };
    post(app, "segment", &headers, &text).await
}

async fn segment_events_single_and_batched_reach_the_context(backend: Backend) {
    let Some(app) = app(backend).await else {
        return;
    };
    // Segment's spec "Order Completed", signed.
    let completed = json!({"type": "track", "event": "Order Completed", "messageId": "m-order",
        "userId": "maya", "timestamp": iso(50), "properties": {"order_id": "50314b8e9bcf000000000000",
        "total": 27.50, "currency": "USD", "products": [{"product_id": "507f1f77bcf86cd799439011",
        "sku": "45790-32", "name": "Monopoly: 3rd Edition", "price": 19, "quantity": 1, "category": "Games"}]}});
    let (status, answer) = segment(&app, &completed).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["status"], "applied");
    // A batch of "Product Viewed" (with the token: a batch's signature
    // covers its first event only).
    let viewed: Vec<Value> = (0..3)
        .map(|i| json!({"type": "track", "event": "Product Viewed", "messageId": format!("m-view-{i}"),
            "userId": "maya", "timestamp": iso(40 - i), "properties": {"product_id": "507f1f77bcf86cd799439011"}}))
        .collect();
    let (status, answer) = segment(&app, &Value::Array(viewed.clone())).await;
    assert_eq!(
        (status, answer["status"].as_str()),
        (200, Some("applied")),
        "{answer}"
    );
    let (_, again) = segment(&app, &Value::Array(viewed)).await;
    assert_eq!(again["status"], "duplicate");
    // RudderStack's receiver is Segment's; a wrong token is refused.
    let batch = json!([completed]).to_string();
    let wrong = [("x-webhook-token", "wrong-token".to_owned())];
    let (status, _) = post(&app, "rudderstack", &wrong, &batch).await;
    assert_eq!(status, 401);
    let ctx = context_of(&app, Identity::CustomerId("maya".into())).await;
    assert_eq!(ctx.recent_orders.len(), 1);
    assert_eq!(ctx.recent_browsing.len(), 1);
    assert_eq!(ctx.recent_browsing[0].view_count, 3);
}

async fn zendesk(app: &TestApp, body: &Value, at: &str) -> (u16, Value) {
    let text = body.to_string();
    let sig = base64::engine::general_purpose::STANDARD.encode(hmac_sha256(
        ZENDESK.as_bytes(),
        &[at.as_bytes(), text.as_bytes()],
    ));
    let headers = [
        ("x-zendesk-webhook-signature", sig),
        ("x-zendesk-webhook-signature-timestamp", at.to_owned()),
    ];
    post(app, "zendesk", &headers, &text).await
}

async fn chatwoot(app: &TestApp, body: &Value) -> (u16, Value) {
    let text = body.to_string();
    let ts = (Timestamp::now().millis() / 1000).to_string();
    let sig = to_hex(&hmac_sha256(
        CHATWOOT.as_bytes(),
        &[ts.as_bytes(), b".", text.as_bytes()],
    ));
    let headers = [
        ("x-chatwoot-signature", format!("sha256={sig}")),
        ("x-chatwoot-timestamp", ts),
        ("x-chatwoot-delivery", "d-1".to_owned()),
    ];
    post(app, "chatwoot", &headers, &text).await
}

async fn helpdesk_tickets_reach_the_context_and_wait_for_unknown_requesters(backend: Backend) {
    let Some(app) = app(backend).await else {
        return;
    };
    app.ingest
        .clone()
        .upsert_customers(pb::UpsertCustomersRequest {
            customers: vec![customer("maya", "Maya", "maya@example.com", "", "")],
        })
        .await
        .expect("stored");
    // Zendesk: the ticket event names its requester by Zendesk id; it waits
    // until the user event says who that is.
    let ticket = json!({"account_id": 1, "id": "evt-1", "time": iso(3), "type": "zen:event-type:ticket.created",
        "subject": "zen:ticket:35", "zendesk_event_version": "2022-11-06",
        "detail": {"id": "35", "subject": "Where is my parcel?", "status": "OPEN", "priority": "HIGH",
                   "requester_id": "9001", "created_at": iso(3), "updated_at": iso(3), "via": {"channel": "email"}}});
    let (status, answer) = zendesk(&app, &ticket, &iso(0)).await;
    assert_eq!(
        (status, answer["status"].as_str()),
        (200, Some("waiting")),
        "{answer}"
    );
    let user = json!({"id": "evt-2", "time": iso(2), "type": "zen:event-type:user.created",
        "detail": {"id": "9001", "email": "maya@example.com", "role": "end-user"}});
    let (status, answer) = zendesk(&app, &user, &iso(0)).await;
    assert_eq!(
        (status, answer["status"].as_str()),
        (200, Some("applied")),
        "{answer}"
    );
    // Chatwoot: the contact's identifier is the customer id.
    let conversation = json!({"event": "conversation_created", "id": 77, "status": "open", "channel": "Channel::WebWidget",
        "created_at": Timestamp::now().millis() / 1000 - 60, "account": {"id": 1},
        "meta": {"sender": {"id": 3, "name": "Maya", "identifier": "maya"}}});
    let (status, answer) = chatwoot(&app, &conversation).await;
    assert_eq!(
        (status, answer["status"].as_str()),
        (200, Some("applied")),
        "{answer}"
    );
    // Gorgias with the documented template, for an email nobody has yet:
    // it waits, and a replay after the customer is imported applies it.
    let templated = json!({"ticket": {"id": 501, "subject": "Exchange for a size up", "status": "open",
        "channel": "email", "created_at": iso(1), "updated_at": iso(1)}, "customer": {"email": "new@example.com"}});
    let headers = [("x-webhook-token", GORGIAS_TOKEN.to_owned())];
    let (status, answer) = post(&app, "gorgias", &headers, &templated.to_string()).await;
    assert_eq!(
        (status, answer["status"].as_str()),
        (200, Some("waiting")),
        "{answer}"
    );
    app.ingest
        .clone()
        .upsert_customers(pb::UpsertCustomersRequest {
            customers: vec![customer("newbie", "New", "new@example.com", "", "")],
        })
        .await
        .expect("stored");
    let key = app.key(customer_context::domain::Role::Ingest).await;
    let (status, body) = crate::http::call(
        &app,
        "POST",
        "/v1/webhooks:replay?source=gorgias",
        Some(&key),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["replayed"][0]["status"], "applied", "{body}");

    let ctx = context_of(&app, Identity::CustomerId("maya".into())).await;
    let mut tickets: Vec<&str> = ctx
        .open_tickets
        .iter()
        .map(|t| t.ticket_id.as_str())
        .collect();
    tickets.sort();
    assert_eq!(tickets, ["chatwoot-1-77", "zendesk-35"]);
    let zendesk_ticket = ctx
        .open_tickets
        .iter()
        .find(|t| t.ticket_id == "zendesk-35")
        .unwrap();
    assert_eq!(zendesk_ticket.subject, "Where is my parcel?");
    let ctx = context_of(&app, Identity::CustomerId("newbie".into())).await;
    assert_eq!(ctx.open_tickets[0].subject, "Exchange for a size up");
}

/// Posts a signed Shopify order to `addr` until it is acknowledged (as
/// Shopify retries anything but a 2xx), switching to whatever `addr`
/// holds now after each failure.
async fn deliver_until_acknowledged(
    addr: &std::sync::RwLock<String>,
    client: &reqwest::Client,
    n: u64,
) -> u32 {
    let body = order(5000 + n, 30, None).to_string();
    let sig = base64::engine::general_purpose::STANDARD
        .encode(hmac_sha256(SHOPIFY.as_bytes(), &[body.as_bytes()]));
    let mut tries = 0;
    loop {
        tries += 1;
        let url = format!("http://{}/webhooks/shopify", addr.read().unwrap());
        let sent = client
            .post(url)
            .header("content-type", "application/json")
            .header("x-shopify-topic", "orders/create")
            .header("x-shopify-hmac-sha256", &sig)
            .header("x-shopify-webhook-id", format!("crash-{n}"))
            .body(body.clone())
            .send()
            .await;
        if matches!(&sent, Ok(r) if r.status().is_success()) {
            return tries;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

async fn a_sender_retrying_across_a_crash_stores_every_acknowledged_delivery_once(
    backend: Backend,
) {
    use std::sync::{
        Arc, RwLock,
        atomic::{AtomicU64, Ordering},
    };
    let Some(app) = app(backend).await else {
        return;
    };
    let secret = format!("shopify={SHOPIFY}");
    let args = ["--webhook-secret", secret.as_str()];
    let (first, _, _) = app.replica_process_with(&args).await;
    let addr = Arc::new(RwLock::new(first.addr().to_owned()));
    const DELIVERIES: u64 = 60;
    let next = Arc::new(AtomicU64::new(0));
    let acked = Arc::new(AtomicU64::new(0));
    let acked_one = Arc::new(tokio::sync::Notify::new());
    let mut senders = Vec::new();
    for _ in 0..6 {
        let (addr, next, acked, acked_one) =
            (addr.clone(), next.clone(), acked.clone(), acked_one.clone());
        senders.push(tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(5))
                .build()
                .unwrap();
            loop {
                let n = next.fetch_add(1, Ordering::SeqCst);
                if n >= DELIVERIES {
                    return;
                }
                deliver_until_acknowledged(&addr, &client, n).await;
                acked.fetch_add(1, Ordering::SeqCst);
                acked_one.notify_one();
            }
        }));
    }
    // Killed (SIGKILL) once a third is acknowledged, with others in flight.
    while acked.load(Ordering::SeqCst) < DELIVERIES / 3 {
        acked_one.notified().await;
    }
    drop(first);
    let (second, _, _) = app.replica_process_with(&args).await;
    *addr.write().unwrap() = second.addr().to_owned();
    for s in senders {
        s.await.expect("a sender");
    }
    let status = app.store.delivery_status().await.unwrap();
    let shopify = status.iter().find(|s| s.source == "shopify").unwrap();
    assert_eq!(
        shopify.counts,
        [0, DELIVERIES as i64, 0, 0, 0],
        "every delivery stored once, applied"
    );
    let ctx = context_of(&app, john()).await;
    assert_eq!(ctx.profile.unwrap().order_count, DELIVERIES);
}

async fn a_shopify_history_file_is_imported_as_the_webhooks_map_it(backend: Backend) {
    let Some(app) = app(backend).await else {
        return;
    };
    let dir = tempfile::tempdir().expect("a directory");
    let path = dir.path().join("shop.jsonl");
    let refund = json!({"id": 77, "order_id": 6001, "created_at": iso(20), "note": "too big",
        "refund_line_items": [{"quantity": 1, "line_item": {"variant_id": 642667041472713922u64}}]});
    let lines = [
        trail_runner().to_string(),
        json!({"id": 115310627314723954u64, "email": "john@example.com", "first_name": "John",
               "last_name": "Smith", "orders_count": 1, "updated_at": iso(100)})
        .to_string(),
        order(6001, 30, Some("fulfilled")).to_string(),
        refund.to_string(),
        "{\"neither\": 1}".to_owned(),
    ];
    std::fs::write(&path, lines.join("\n")).expect("written");
    let connectors = customer_context::connect::Connectors::new(app.store.clone(), config());
    let summary = connectors.import_shopify(&path).await.expect("imported");
    assert_eq!(summary.lines, 5);
    assert_eq!(summary.rejected, 1, "the line that is no resource");
    let ctx = context_of(&app, Identity::Email("john@example.com".into())).await;
    assert_eq!(ctx.recent_orders[0].order_id, "6001");
    assert_eq!(ctx.recent_orders[0].status(), pb::OrderStatus::Shipped);
    assert_eq!(ctx.returns[0].reason_code, "too_large");
    let runner = ctx.recent_orders[0]
        .lines
        .iter()
        .find(|l| l.product.as_ref().unwrap().product_id == "642667041472713922")
        .unwrap();
    assert_eq!(runner.product.as_ref().unwrap().size, "9");
}

/// The style ids `customer` is suggested with `anchor`.
async fn suggested_styles(app: &TestApp, customer: &str, anchor: &str) -> Vec<String> {
    app.context
        .clone()
        .suggest_cross_sells(pb::SuggestCrossSellsRequest {
            customer: Some(pb::CustomerRef {
                identity: Some(Identity::CustomerId(customer.into())),
            }),
            anchor_product_ids: vec![anchor.into()],
            limit: 20,
            ..Default::default()
        })
        .await
        .expect("suggestions")
        .into_inner()
        .suggestions
        .unwrap_or_default()
        .items
        .iter()
        .map(|i| i.product.as_ref().unwrap().group_id.clone())
        .collect()
}

async fn shopify_stock_levels_hide_a_sold_out_suggestion(backend: Backend) {
    let Some(app) = app(backend).await else {
        return;
    };
    shopify(&app, "products/create", "w-p1", &trail_runner()).await;
    let bottle = json!({"id": 111, "title": "Water Bottle", "vendor": "Acme", "product_type": "Gear",
        "status": "active", "updated_at": iso(600),
        "variants": [{"id": 1110, "title": "Default Title", "price": "15.00", "inventory_management": "shopify",
                      "inventory_quantity": 40, "inventory_item_id": 11100}]});
    shopify(&app, "products/create", "w-p2", &bottle).await;
    // Two customers bought the bottle with the trail runner.
    for (n, (customer, variant)) in [(1u64, 642667041472713922u64), (2, 757650484644203962)]
        .into_iter()
        .enumerate()
    {
        let body = json!({"id": 7000 + n, "created_at": iso(100), "updated_at": iso(100), "currency": "USD",
            "total_price": "135.00", "customer": {"id": customer, "email": format!("c{customer}@example.com")},
            "line_items": [{"id": 1, "variant_id": 1110, "quantity": 1, "price": "15.00", "title": "Water Bottle"},
                           {"id": 2, "variant_id": variant, "quantity": 1, "price": "120.00", "title": "Trail Runner"}]});
        shopify(&app, "orders/create", &format!("w-o{n}"), &body).await;
    }
    app.rebuild_model().await.expect("a model");
    let customer = json!({"id": 3, "email": "maya@example.com", "first_name": "Maya",
                          "created_at": iso(50), "updated_at": iso(50)});
    shopify(&app, "customers/create", "w-c3", &customer).await;
    let runner = "788032119674292922".to_owned();
    assert!(
        suggested_styles(&app, "3", "1110").await.contains(&runner),
        "bought together with the bottle, in stock"
    );
    // Both sizes sell out at their location.
    for item in [271878346596884015u64, 271878346596884016] {
        let level = json!({"inventory_item_id": item, "location_id": 1, "available": 0, "updated_at": iso(1)});
        shopify(
            &app,
            "inventory_levels/update",
            &format!("w-l{item}"),
            &level,
        )
        .await;
    }
    assert!(
        !suggested_styles(&app, "3", "1110").await.contains(&runner),
        "sold out in every size"
    );
}

async fn bodies_arriving_at_once_are_bounded_in_bytes(backend: Backend) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Some(app) = app(backend).await else {
        return;
    };
    // Thirty-two unsigned uploads declaring 8 MiB each and sending nothing
    // more take the whole 256 MiB budget.
    let mut held = Vec::new();
    for _ in 0..32 {
        let mut stream = tokio::net::TcpStream::connect(app.addr)
            .await
            .expect("connects");
        let head = format!(
            "POST /webhooks/shopify HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{{",
            8 << 20
        );
        stream.write_all(head.as_bytes()).await.expect("written");
        held.push(stream);
    }
    // Each is being read once the metrics say so (the scrape is one more).
    while crate::slow::in_flight(&app).await < 33.0 {
        tokio::task::yield_now().await;
    }
    // A signed delivery now finds no budget left (probed again while an
    // upload may still be between the metrics and the receiver; a bound
    // for failing, not a timing assertion).
    let started = std::time::Instant::now();
    let mut n = 0;
    loop {
        n += 1;
        let id = format!("w-probe-{n}");
        let (status, body) = shopify_as(
            &app,
            SHOPIFY,
            "orders/create",
            &id,
            &order(8000 + n, 5, None),
        )
        .await;
        if status == 503 {
            break;
        }
        assert_eq!(status, 200, "{body}");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(8),
            "never refused"
        );
        tokio::task::yield_now().await;
    }
    // Once they are gone, the budget is back and the retry is stored.
    for mut s in held {
        let _ = s.shutdown().await;
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest).await;
    }
    let (status, body) = shopify_as(
        &app,
        SHOPIFY,
        "orders/create",
        "w-late",
        &order(8001, 5, None),
    )
    .await;
    assert_eq!(status, 200, "{body}");
}
