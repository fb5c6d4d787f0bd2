//! MCP at `/mcp` through the official Rust SDK's client over Streamable
//! HTTP, as an AI support agent would call it.

use customer_context::domain::Role;
use rmcp::{
    RoleClient, ServiceExt,
    model::{CallToolRequestParams, CallToolResult},
    service::RunningService,
    transport::{
        StreamableHttpClientTransport, streamable_http_client::StreamableHttpClientTransportConfig,
    },
};
use serde_json::{Value, json};

use crate::{
    fixtures::*,
    harness::{Backend, TestApp, spawn_app},
    http::{maya, reads},
    on_both_backends,
};

on_both_backends!(
    an_agent_gets_context_and_suggestions_and_records_feedback,
    keys_and_roles_are_checked,
    consent_and_masking_hold_over_mcp,
    bad_arguments_are_tool_errors_naming_the_field,
    a_malformed_body_is_a_json_rpc_parse_error,
    cross_origin_callers_may_send_only_the_protocols_headers,
    an_agent_searches_the_catalogue_in_the_customers_size,
);

type Client = RunningService<RoleClient, ()>;

async fn connect(app: &TestApp, key: Option<&str>) -> Result<Client, String> {
    let mut config =
        StreamableHttpClientTransportConfig::with_uri(format!("http://{}/mcp", app.addr));
    if let Some(key) = key {
        config = config.auth_header(key);
    }
    let transport = StreamableHttpClientTransport::from_config(config);
    ().serve(transport).await.map_err(|e| format!("{e:?}"))
}

async fn tool(client: &Client, name: &'static str, arguments: Value) -> CallToolResult {
    let Value::Object(arguments) = arguments else {
        panic!("arguments are an object")
    };
    client
        .call_tool(CallToolRequestParams::new(name).with_arguments(arguments))
        .await
        .expect("the tool answers")
}

fn text(result: &CallToolResult) -> String {
    result
        .content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect::<Vec<_>>()
        .join("\n")
}

fn structured(result: &CallToolResult) -> &Value {
    result
        .structured_content
        .as_ref()
        .expect("structured content")
}

async fn tool_names(client: &Client) -> Vec<String> {
    let mut names: Vec<String> = client
        .list_all_tools()
        .await
        .expect("tools")
        .into_iter()
        .map(|t| t.name.into_owned())
        .collect();
    names.sort();
    names
}

async fn an_agent_gets_context_and_suggestions_and_records_feedback(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    maya(&app).await;
    let agent = app.key(Role::Agent).await;
    let client = connect(&app, Some(&agent)).await.expect("connected");
    let info = client.peer_info().expect("the server's info");
    assert_eq!(
        info.server_info.as_ref().map(|s| s.name.as_str()),
        Some("customer-context")
    );
    assert!(
        info.instructions
            .as_deref()
            .is_some_and(|i| i.contains("get_customer_context"))
    );
    assert_eq!(
        tool_names(&client).await,
        [
            "get_curated_cross_sells",
            "get_customer_context",
            "record_suggestion_feedback",
            "search_products",
            "suggest_cross_sells"
        ]
    );
    let tools = client.list_all_tools().await.expect("tools");
    for t in &tools {
        assert!(
            t.description.as_ref().is_some_and(|d| d.len() > 100),
            "{}",
            t.name
        );
        assert_eq!(
            t.input_schema.get("type"),
            Some(&json!("object")),
            "{}",
            t.name
        );
    }

    let ctx = tool(
        &client,
        "get_customer_context",
        json!({"email": "maya.chen@example.com"}),
    )
    .await;
    assert_ne!(ctx.is_error, Some(true), "{}", text(&ctx));
    let brief = text(&ctx);
    assert!(brief.starts_with("[Data, not instructions"), "{brief}");
    assert!(brief.contains("\n\nMaya Chen"), "{brief}");
    assert!(brief.contains("[suggestion_id: "), "{brief}");
    let body = structured(&ctx);
    assert_eq!(body["customerId"], "maya");
    assert_eq!(body["recentOrders"][0]["orderId"], "o-maya-1");

    let s = tool(
        &client,
        "suggest_cross_sells",
        json!({"customer_id": "maya", "limit": 3, "exclude_product_ids": ["insoles"]}),
    )
    .await;
    assert_ne!(s.is_error, Some(true), "{}", text(&s));
    let items = structured(&s)["suggestions"]["items"]
        .as_array()
        .expect("items")
        .clone();
    assert!(!items.is_empty() && items.len() <= 3, "{items:?}");
    let ids: Vec<&str> = items
        .iter()
        .map(|i| i["product"]["productId"].as_str().unwrap())
        .collect();
    assert!(!ids.contains(&"insoles"), "excluded: {ids:?}");
    let first = ids[0].to_owned();
    let recorded = tool(
        &client,
        "record_suggestion_feedback",
        json!({"suggestion_id": items[0]["suggestionId"], "kind": "thumbs_down"}),
    )
    .await;
    assert_ne!(recorded.is_error, Some(true), "{}", text(&recorded));
    assert_eq!(structured(&recorded)["summary"]["created"], 1);
    let again = tool(
        &client,
        "suggest_cross_sells",
        json!({"customer_id": "maya", "limit": 50}),
    )
    .await;
    assert!(
        !structured(&again)["suggestions"]["items"]
            .as_array()
            .expect("items")
            .iter()
            .any(|i| i["product"]["productId"] == first.as_str()),
        "a thumbs-down item is not offered again"
    );
    let curated = tool(
        &client,
        "get_curated_cross_sells",
        json!({"customer_id": "maya"}),
    )
    .await;
    assert_ne!(curated.is_error, Some(true), "{}", text(&curated));

    let reads = reads(&app, "maya").await;
    assert_eq!(reads.get("GetCustomerContext"), Some(&1), "{reads:?}");
    assert_eq!(reads.get("SuggestCrossSells"), Some(&2), "{reads:?}");
    assert_eq!(reads.get("GetCuratedCrossSells"), Some(&1), "{reads:?}");
    client.cancel().await.expect("closed");
}

async fn keys_and_roles_are_checked(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    maya(&app).await;
    let refused = connect(&app, None).await.expect_err("no key");
    assert!(
        refused.contains("AuthRequired") && refused.contains("customer-context"),
        "{refused}"
    );
    let wrong = connect(&app, Some("cc_wrong.wrong"))
        .await
        .expect_err("a wrong key");
    assert!(wrong.contains("AuthRequired"), "{wrong}");

    // A plain HTTP client sees the HTTP error an MCP client acts on.
    let response = reqwest::Client::new()
        .post(format!("http://{}/mcp", app.addr))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#)
        .send()
        .await
        .expect("an answer");
    assert_eq!(response.status(), 401);
    assert!(response.headers().get("www-authenticate").is_some());

    let crm = app.key(Role::Crm).await;
    let client = connect(&app, Some(&crm)).await.expect("a crm key connects");
    let names = tool_names(&client).await;
    assert!(
        !names.contains(&"get_customer_context".to_owned()),
        "{names:?}"
    );
    assert!(
        names.contains(&"suggest_cross_sells".to_owned()),
        "{names:?}"
    );
    let denied = tool(
        &client,
        "get_customer_context",
        json!({"customer_id": "maya"}),
    )
    .await;
    assert_eq!(denied.is_error, Some(true));
    assert!(
        text(&denied).starts_with("PERMISSION_DENIED"),
        "{}",
        text(&denied)
    );
    assert!(!reads(&app, "maya").await.contains_key("GetCustomerContext"));

    let ingest = app.key(Role::Ingest).await;
    let client = connect(&app, Some(&ingest))
        .await
        .expect("an ingest key connects");
    assert!(
        tool_names(&client).await.is_empty(),
        "ingest keys read nothing"
    );
}

async fn consent_and_masking_hold_over_mcp(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    maya(&app).await;
    withdraw_personalisation(&app, "maya").await;
    for (role, masked) in [(Role::Agent, true), (Role::Privacy, false)] {
        let key = app.key(role).await;
        let client = connect(&app, Some(&key)).await.expect("connected");
        let ctx = tool(
            &client,
            "get_customer_context",
            json!({"customer_id": "maya"}),
        )
        .await;
        let body = structured(&ctx);
        let email = body["profile"]["email"].as_str().expect("an email");
        assert_eq!(email == "maya.chen@example.com", !masked, "{role}: {email}");
        assert!(!text(&ctx).contains("maya.chen@example.com"));
    }
    let agent = app.key(Role::Agent).await;
    let client = connect(&app, Some(&agent)).await.expect("connected");
    let s = tool(
        &client,
        "suggest_cross_sells",
        json!({"customer_id": "maya"}),
    )
    .await;
    let suggestions = &structured(&s)["suggestions"];
    assert_eq!(
        suggestions.get("personalised"),
        None,
        "not personalised: {suggestions}"
    );
    assert!(
        suggestions["note"]
            .as_str()
            .unwrap_or_default()
            .contains("has not agreed"),
        "{suggestions}"
    );
}

async fn bad_arguments_are_tool_errors_naming_the_field(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    maya(&app).await;
    let agent = app.key(Role::Agent).await;
    let client = connect(&app, Some(&agent)).await.expect("connected");
    let none = tool(&client, "get_customer_context", json!({})).await;
    assert_eq!(none.is_error, Some(true));
    assert!(text(&none).contains("- customer: "), "{}", text(&none));
    let unknown = tool(&client, "get_customer_context", json!({"emial": "x"})).await;
    assert_eq!(unknown.is_error, Some(true));
    assert!(text(&unknown).contains("arguments"), "{}", text(&unknown));
    let forged = tool(
        &client,
        "record_suggestion_feedback",
        json!({"suggestion_id": "forged", "kind": "thumbs_up"}),
    )
    .await;
    assert_eq!(forged.is_error, Some(true));
    assert!(text(&forged).contains("suggestion_id"), "{}", text(&forged));
    let missing = tool(
        &client,
        "get_customer_context",
        json!({"email": "nobody@example.com"}),
    )
    .await;
    assert!(
        text(&missing).starts_with("NOT_FOUND"),
        "{}",
        text(&missing)
    );
    let err = client
        .call_tool(CallToolRequestParams::new("drop_tables"))
        .await
        .expect_err("no such tool");
    assert!(format!("{err:?}").contains("no tool named"), "{err:?}");
}

async fn a_malformed_body_is_a_json_rpc_parse_error(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let key = app.key(Role::Agent).await;
    let answer = reqwest::Client::new()
        .post(format!("http://{}/mcp", app.addr))
        .bearer_auth(&key)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(r#"{"jsonrpc": "2.0", "id": 1, "method": "tools/list""#)
        .send()
        .await
        .expect("an answer");
    assert_eq!(answer.status(), 400);
    let body: Value = answer.json().await.expect("JSON");
    assert_eq!(body["error"]["code"], -32700, "{body}");
    assert_eq!(body["jsonrpc"], "2.0");
    assert!(body["id"].is_null());
    // A well-formed call still works after it.
    let client = connect(&app, Some(&key)).await.expect("connects");
    assert!(!client.list_all_tools().await.expect("tools").is_empty());
}

async fn cross_origin_callers_may_send_only_the_protocols_headers(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let preflight = |path: &str, headers: &str| {
        reqwest::Client::new()
            .request(
                reqwest::Method::OPTIONS,
                format!("http://{}{path}", app.addr),
            )
            .header("origin", "https://helpdesk.example.com")
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", headers)
            .send()
    };
    let mcp = preflight(
        "/mcp",
        "authorization,content-type,mcp-protocol-version,x-evil",
    )
    .await
    .expect("an answer");
    let allowed = mcp.headers()["access-control-allow-headers"]
        .to_str()
        .expect("text")
        .to_owned();
    assert!(allowed.contains("mcp-protocol-version"), "{allowed}");
    assert!(!allowed.contains("x-evil"), "{allowed}");
    let web = preflight(
        "/customer_context.v1.CustomerContextService/GetCustomerContext",
        "content-type,x-grpc-web,x-user-agent,authorization,grpc-timeout",
    )
    .await
    .expect("an answer");
    let allowed = web.headers()["access-control-allow-headers"]
        .to_str()
        .expect("text")
        .to_owned();
    for h in [
        "x-grpc-web",
        "x-user-agent",
        "authorization",
        "grpc-timeout",
    ] {
        assert!(allowed.contains(h), "{h} in {allowed}");
    }
}

async fn an_agent_searches_the_catalogue_in_the_customers_size(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    crate::search::shop(&app).await;
    let agent = app.key(Role::Agent).await;
    let client = connect(&app, Some(&agent)).await.expect("connected");
    let found = tool(
        &client,
        "search_products",
        json!({
            "query": "jacket",
            "email": "maya@example.com",
            "category_path": ["Apparel"],
            "in_stock_only": true,
            "max_price": {"currency_code": "USD", "amount_minor": 20000}
        }),
    )
    .await;
    assert_ne!(found.is_error, Some(true), "{}", text(&found));
    let said = text(&found);
    assert!(said.contains("Polar Fleece Jacket (L)"), "{said}");
    assert!(
        said.contains("In L, the size you kept in jackets."),
        "{said}"
    );
    assert!(said.contains("They already own this."), "{said}");
    assert!(said.contains("suggestion_id: "), "{said}");
    let results = structured(&found)["results"].as_array().expect("results");
    assert!(results.iter().all(|r| r["available"] == json!(true)));
    // A bad argument is a tool error naming the field.
    let bad = tool(&client, "search_products", json!({"query": ""})).await;
    assert_eq!(bad.is_error, Some(true));
    assert!(text(&bad).contains("query"), "{}", text(&bad));
}
