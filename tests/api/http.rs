//! The JSON endpoint and `/metrics`, called over plain HTTP as a helpdesk
//! widget and Prometheus would.

use std::collections::HashMap;

use customer_context::{
    domain::Role,
    proto::{self as pb, customer_ref::Identity},
};
use serde_json::{Value, json};

use crate::{
    fixtures::*,
    harness::{Backend, TestApp, spawn_app},
    on_both_backends,
    suggestions::shop,
};

on_both_backends!(
    the_json_endpoint_serves_context_suggestions_and_feedback,
    json_errors_carry_the_code_name_and_field_violations,
    metrics_count_calls_ingest_and_pools,
    the_context_can_be_followed_as_server_sent_events,
    the_sidebar_runs_only_its_own_script_and_json_is_never_sniffed,
    the_json_endpoint_searches_the_catalogue,
    curation_routes_need_curation_rights_to_write,
);

/// A GET or POST with an optional bearer key: (HTTP status, JSON body).
pub async fn call(
    app: &TestApp,
    method: &str,
    path_and_query: &str,
    key: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let url = format!("http://{}{path_and_query}", app.addr);
    let client = reqwest::Client::new();
    let mut request = match method {
        "POST" => client.post(url),
        _ => client.get(url),
    };
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    let response = request.send().await.expect("an answer");
    let status = response.status().as_u16();
    let text = response.text().await.expect("a body");
    let json = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, json)
}

/// Maya of the suggestions shop, with an email and phone on file.
pub async fn maya(app: &TestApp) {
    shop(app).await;
    app.ingest
        .clone()
        .upsert_customers(pb::UpsertCustomersRequest {
            customers: vec![customer(
                "maya",
                "Maya Chen",
                "maya.chen@example.com",
                "+1 555 010 2001",
                "",
            )],
        })
        .await
        .expect("customer");
}

/// Reads of `customer` by RPC name, from the access log.
pub async fn reads(app: &TestApp, customer: &str) -> HashMap<String, usize> {
    let log = app
        .privacy
        .clone()
        .list_access_log(pb::ListAccessLogRequest {
            customer: Some(pb::CustomerRef {
                identity: Some(Identity::CustomerId(customer.into())),
            }),
            page_size: 100,
            page_token: String::new(),
        })
        .await
        .expect("the access log")
        .into_inner();
    let mut by_rpc = HashMap::new();
    for e in log.entries {
        let rpc = e.rpc.rsplit('/').next().unwrap_or_default().to_owned();
        *by_rpc.entry(rpc).or_default() += 1;
    }
    by_rpc
}

fn product_ids(suggestions: &Value) -> Vec<String> {
    suggestions["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|i| {
            i["product"]["productId"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

async fn the_json_endpoint_serves_context_suggestions_and_feedback(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    maya(&app).await;
    let agent = app.key(Role::Agent).await;

    let (status, ctx) = call(
        &app,
        "GET",
        "/v1/context?email=maya.chen%40example.com&read_mask=profile,agent_brief,suggestions,recent_orders",
        Some(&agent),
        None,
    )
    .await;
    assert_eq!(status, 200, "{ctx}");
    assert_eq!(ctx["customerId"], "maya");
    assert_eq!(
        ctx["profile"]["email"], "m•••@example.com",
        "masked for agents"
    );
    assert_eq!(ctx["contactDetailsMasked"], true);
    assert!(
        ctx["agentBrief"].as_str().unwrap().starts_with("Maya Chen"),
        "{ctx}"
    );
    assert_eq!(ctx["recentOrders"][0]["orderId"], "o-maya-1");
    assert!(
        ctx.get("recentBrowsing").is_none(),
        "only the masked sections"
    );
    assert!(!product_ids(&ctx["suggestions"]).is_empty(), "{ctx}");

    let (status, s) = call(
        &app,
        "GET",
        "/v1/suggestions?customerId=maya&limit=3",
        Some(&agent),
        None,
    )
    .await;
    assert_eq!(status, 200, "{s}");
    let items = s["suggestions"]["items"].as_array().expect("items").clone();
    assert!(!items.is_empty() && items.len() <= 3, "{s}");
    for item in &items {
        assert!(
            item["reason"]["text"]
                .as_str()
                .is_some_and(|t| !t.is_empty())
        );
        assert!(
            !product_ids(&s["suggestions"])
                .iter()
                .any(|p| p.starts_with("tr2-"))
        );
    }
    let first = items[0]["product"]["productId"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, r) = call(
        &app,
        "POST",
        "/v1/feedback",
        Some(&agent),
        Some(json!({"feedback": [{
            "suggestionId": items[0]["suggestionId"],
            "kind": "FEEDBACK_KIND_THUMBS_DOWN"
        }]})),
    )
    .await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["summary"]["created"], 1, "{r}");
    let (_, again) = call(
        &app,
        "GET",
        "/v1/suggestions?customer_id=maya&limit=50",
        Some(&agent),
        None,
    )
    .await;
    assert!(
        !product_ids(&again["suggestions"]).contains(&first),
        "a thumbs-down item is never offered again: {again}"
    );

    let stylist = app.key(Role::Stylist).await;
    let (status, curated) = call(
        &app,
        "GET",
        "/v1/curated-cross-sells?customer_id=maya",
        Some(&stylist),
        None,
    )
    .await;
    assert_eq!(status, 200, "{curated}");
    assert_eq!(curated["customerId"], "maya");

    let reads = reads(&app, "maya").await;
    assert_eq!(reads.get("GetCustomerContext"), Some(&1), "{reads:?}");
    assert_eq!(reads.get("SuggestCrossSells"), Some(&2), "{reads:?}");
    assert_eq!(reads.get("GetCuratedCrossSells"), Some(&1), "{reads:?}");
}

fn violations(error: &Value) -> Vec<String> {
    error["error"]["details"][0]["fieldViolations"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|v| v["field"].as_str().unwrap_or_default().to_owned())
        .collect()
}

async fn json_errors_carry_the_code_name_and_field_violations(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    maya(&app).await;
    let agent = app.key(Role::Agent).await;
    let ctx = |q: &str| format!("/v1/context?{q}");

    let (status, e) = call(
        &app,
        "GET",
        &ctx("email=maya.chen%40example.com"),
        None,
        None,
    )
    .await;
    assert_eq!(
        (status, e["error"]["status"].as_str()),
        (401, Some("UNAUTHENTICATED"))
    );
    let (status, e) = call(
        &app,
        "GET",
        &ctx("customer_id=maya"),
        Some("cc_nope.nope"),
        None,
    )
    .await;
    assert_eq!(
        (status, e["error"]["status"].as_str()),
        (401, Some("UNAUTHENTICATED"))
    );
    let crm = app.key(Role::Crm).await;
    let (status, e) = call(&app, "GET", &ctx("customer_id=maya"), Some(&crm), None).await;
    assert_eq!(
        (status, e["error"]["status"].as_str()),
        (403, Some("PERMISSION_DENIED"))
    );

    let (status, e) = call(&app, "GET", &ctx(""), Some(&agent), None).await;
    assert_eq!(
        (status, e["error"]["status"].as_str()),
        (400, Some("INVALID_ARGUMENT"))
    );
    assert_eq!(violations(&e), ["customer"], "{e}");
    let long = "x".repeat(300);
    let (status, e) = call(
        &app,
        "GET",
        &ctx(&format!("customer_id={long}")),
        Some(&agent),
        None,
    )
    .await;
    assert_eq!(status, 400, "{e}");
    assert_eq!(violations(&e), ["customer.customer_id"], "{e}");
    assert!(
        !e.to_string().contains(&long),
        "the input is not echoed whole"
    );
    let (status, e) = call(&app, "GET", &ctx("emial=maya"), Some(&agent), None).await;
    assert_eq!(
        (status, violations(&e)),
        (400, vec!["emial".to_owned()]),
        "{e}"
    );
    let (status, e) = call(
        &app,
        "GET",
        &ctx("email=nobody%40example.com"),
        Some(&agent),
        None,
    )
    .await;
    assert_eq!(
        (status, e["error"]["status"].as_str()),
        (404, Some("NOT_FOUND")),
        "{e}"
    );

    let (status, e) = call(&app, "POST", "/v1/feedback", Some(&agent), Some(json!("{"))).await;
    assert_eq!(
        (status, violations(&e)),
        (400, vec!["body".to_owned()]),
        "{e}"
    );
    let (status, e) = call(
        &app,
        "POST",
        "/v1/feedback",
        Some(&agent),
        Some(json!({"feedback": [{"suggestionId": "forged", "kind": "FEEDBACK_KIND_THUMBS_UP"}]})),
    )
    .await;
    assert_eq!(status, 200, "per-item results, as the RPC: {e}");
    assert_eq!(e["results"][0]["outcome"], "ITEM_OUTCOME_REJECTED", "{e}");
    assert_eq!(
        e["results"][0]["violations"][0]["field"], "suggestion_id",
        "{e}"
    );
}

/// `name{labels}` → value, from Prometheus text.
fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (name, value) = l.rsplit_once(' ').expect("name value");
            (name.to_owned(), value.parse().expect("a number"))
        })
        .collect()
}

async fn scrape(app: &TestApp) -> HashMap<String, f64> {
    let response = reqwest::get(format!("http://{}/metrics", app.addr))
        .await
        .expect("a scrape");
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    samples(&response.text().await.expect("text"))
}

async fn metrics_count_calls_ingest_and_pools(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    maya(&app).await;
    let grpc_context = r#"cc_calls_total{protocol="grpc",method="customer_context.v1.CustomerContextService/GetCustomerContext",code="OK"}"#;
    let not_found = r#"cc_calls_total{protocol="grpc",method="customer_context.v1.CustomerContextService/GetCustomerContext",code="NOT_FOUND"}"#;
    let json_401 = r#"cc_calls_total{protocol="http",method="/v1/context",code="401"}"#;
    let events = r#"cc_ingested_items_total{kind="event",outcome="created"}"#;
    let orders = r#"cc_ingested_items_total{kind="order",outcome="created"}"#;
    let before = scrape(&app).await;
    assert_eq!(before.get(orders), Some(&10.0), "the shop's ten orders");
    assert_eq!(before.get(grpc_context), None);

    context_of(&app, Identity::CustomerId("maya".into())).await;
    let missing = app
        .context
        .clone()
        .get_customer_context(by(Identity::CustomerId("nobody".into())))
        .await;
    assert_eq!(missing.expect_err("unknown").code(), tonic::Code::NotFound);
    call(&app, "GET", "/v1/context?customer_id=maya", None, None).await;
    app.ingest
        .clone()
        .record_events(pb::RecordEventsRequest {
            events: vec![
                view("e1", "maya", "tr2-9", 1),
                view("e2", "maya", "insoles", 1),
            ],
        })
        .await
        .expect("events");

    let after = scrape(&app).await;
    assert_eq!(after.get(grpc_context), Some(&1.0));
    assert_eq!(after.get(not_found), Some(&1.0));
    assert_eq!(after.get(json_401), Some(&1.0));
    assert_eq!(after.get(events), Some(&2.0));
    let count = r#"cc_call_duration_seconds_count{protocol="grpc",method="customer_context.v1.CustomerContextService/GetCustomerContext"}"#;
    let inf = r#"cc_call_duration_seconds_bucket{protocol="grpc",method="customer_context.v1.CustomerContextService/GetCustomerContext",le="+Inf"}"#;
    assert_eq!((after.get(count), after.get(inf)), (Some(&2.0), Some(&2.0)));
    assert!(after[r#"cc_refused_calls_total{reason="overloaded"}"#] == 0.0);
    assert!(after["cc_calls_in_flight"] >= 1.0, "the scrape itself");
    let pool = match backend {
        Backend::Sqlite => "reader",
        Backend::Postgres => "shared",
    };
    assert!(after[&format!(r#"cc_db_pool_connections{{pool="{pool}",state="max"}}"#)] >= 1.0);
    assert_eq!(after["cc_database_up"], 1.0);
    assert!(
        after.contains_key("cc_model_version") && after.contains_key("cc_change_feed_lag_entries")
    );
    assert!(
        after.keys().all(|k| !k.contains("maya")),
        "no personal data in labels"
    );
}

/// Reads Server-Sent Events until a `context` event satisfies `done`.
async fn next_context(
    response: &mut reqwest::Response,
    buffer: &mut String,
    done: impl Fn(&Value) -> bool,
) -> Value {
    loop {
        while let Some(cut) = buffer.find("\n\n") {
            let block: String = buffer.drain(..cut + 2).collect();
            if let Some(data) = block.strip_prefix("event: context\ndata: ") {
                let context: Value = serde_json::from_str(data.trim()).expect("JSON");
                if done(&context) {
                    return context;
                }
            }
        }
        let chunk = tokio::time::timeout(std::time::Duration::from_secs(30), response.chunk())
            .await
            .expect("an event in time")
            .expect("the stream goes on")
            .expect("more events");
        buffer.push_str(std::str::from_utf8(&chunk).expect("UTF-8"));
    }
}

async fn the_context_can_be_followed_as_server_sent_events(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    maya(&app).await;
    let agent = app.key(Role::Agent).await;
    let url = |q: &str| format!("http://{}/v1/context:watch?{q}", app.addr);
    let (status, e) = call(
        &app,
        "GET",
        "/v1/context:watch?email=nobody%40example.com",
        Some(&agent),
        None,
    )
    .await;
    assert_eq!(
        (status, e["error"]["status"].as_str()),
        (404, Some("NOT_FOUND"))
    );
    let mut response = reqwest::Client::new()
        .get(url(
            "email=maya.chen%40example.com&read_mask=recent_browsing",
        ))
        .bearer_auth(&agent)
        .send()
        .await
        .expect("a stream");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut buffer = String::new();
    let first = next_context(&mut response, &mut buffer, |_| true).await;
    assert_eq!(first["customerId"], "maya");
    assert!(first.get("recentBrowsing").is_none());
    app.ingest
        .clone()
        .record_events(pb::RecordEventsRequest {
            events: vec![view("sse-1", "maya", "bottle", 0)],
        })
        .await
        .expect("a view");
    let next = next_context(&mut response, &mut buffer, |c| {
        c.get("recentBrowsing").is_some()
    })
    .await;
    assert_eq!(next["recentBrowsing"][0]["product"]["productId"], "bottle");
    assert!(next.get("recentOrders").is_none(), "the read mask holds");
}

async fn the_sidebar_runs_only_its_own_script_and_json_is_never_sniffed(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let page = reqwest::get(format!("http://{}/sidebar", app.addr))
        .await
        .expect("the page");
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .expect("text")
        .to_owned();
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert!(csp.contains("script-src 'sha256-"), "{csp}");
    assert!(csp.ends_with("frame-ancestors 'self'"), "{csp}");
    assert_eq!(page.headers()["x-content-type-options"], "nosniff");
    let agent = app.key(Role::Agent).await;
    for path in [
        "/v1/context?customer_id=nobody",
        "/v1/context?email=not-an-email",
    ] {
        let answer = reqwest::Client::new()
            .get(format!("http://{}{path}", app.addr))
            .bearer_auth(&agent)
            .send()
            .await
            .expect("an answer");
        assert_eq!(
            answer.headers()["x-content-type-options"],
            "nosniff",
            "{path}"
        );
    }
}

async fn the_json_endpoint_searches_the_catalogue(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    crate::search::shop(&app).await;
    let crm = app.key(Role::Crm).await;
    let (status, body) = call(
        &app,
        "GET",
        "/v1/search?query=fleece%20jack&email=maya%40example.com&filter.inStockOnly=true&filter.category_path=Apparel&limit=5",
        Some(&crm),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["personalised"], json!(true), "{body}");
    let first = &body["results"][0];
    assert_eq!(first["product"]["productId"], json!("fleece-L"), "{body}");
    assert_eq!(
        first["fit"]["status"],
        json!("SIZE_FIT_CUSTOMER_SIZE"),
        "{body}"
    );
    assert!(
        first["suggestionId"]
            .as_str()
            .is_some_and(|s| !s.is_empty())
    );
    // A bad filter names its field; no key is refused.
    let (status, body) = call(&app, "GET", "/v1/search?query=x&limit=99", Some(&crm), None).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains("limit"), "{body}");
    let (status, _) = call(&app, "GET", "/v1/search?query=fleece", None, None).await;
    assert_eq!(status, 401);
}

async fn curation_routes_need_curation_rights_to_write(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    crate::search::shop(&app).await;
    let (agent, stylist) = (app.key(Role::Agent).await, app.key(Role::Stylist).await);
    let draft = json!({"curation": {
        "title": "Trail layers", "stylist": "Ana",
        "anchor": {"customers": {"customerIds": ["maya"]}},
        "items": [{"productId": "fleece-S"}]
    }});
    let (status, _) = call(
        &app,
        "POST",
        "/v1/curations:create",
        Some(&agent),
        Some(draft.clone()),
    )
    .await;
    assert_eq!(status, 403, "agents read curations, never write them");
    let (status, created) = call(
        &app,
        "POST",
        "/v1/curations:create",
        Some(&stylist),
        Some(draft),
    )
    .await;
    assert_eq!(status, 200, "{created}");
    let id = created["curationId"].as_str().expect("an id").to_owned();
    let (status, listed) = call(&app, "GET", "/v1/curations", Some(&agent), None).await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(listed["curations"][0]["curationId"], json!(id));
    let preview = format!("/v1/curations:preview?curation_id={id}&email=maya%40example.com");
    let (status, _) = call(&app, "GET", &preview, Some(&agent), None).await;
    assert_eq!(status, 403);
    let (status, p) = call(&app, "GET", &preview, Some(&stylist), None).await;
    assert_eq!(status, 200, "{p}");
    assert_eq!(
        p["items"][0]["shown"]["product"]["productId"],
        json!("fleece-L")
    );
    let archive = json!({"curationId": id});
    let (status, _) = call(
        &app,
        "POST",
        "/v1/curations:archive",
        Some(&agent),
        Some(archive.clone()),
    )
    .await;
    assert_eq!(status, 403);
    let (status, archived) = call(
        &app,
        "POST",
        "/v1/curations:archive",
        Some(&stylist),
        Some(archive),
    )
    .await;
    assert_eq!(status, 200, "{archived}");
    assert_eq!(archived["state"], json!("CURATION_STATE_ARCHIVED"));
}
