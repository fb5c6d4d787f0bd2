//! Slow senders: a request body that trickles in holds none of the gate's
//! running places, over plain HTTP and gRPC-Web alike, so other callers'
//! unary calls still run.

use customer_context::{
    domain::Role,
    proto::{self as pb, customer_ref::Identity},
};
use tokio::io::AsyncWriteExt;

use crate::{
    fixtures::*,
    harness::{Backend, TestApp, spawn_app},
    on_both_backends,
};

on_both_backends!(slow_request_bodies_hold_no_running_place);

/// Calls being answered now, from `/metrics`.
pub async fn in_flight(app: &TestApp) -> f64 {
    let (_, text) = crate::http::call(app, "GET", "/metrics", None, None).await;
    text.as_str()
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("cc_calls_in_flight "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Opens a request that declares a body of 1,000 bytes and sends one.
async fn trickle(
    app: &TestApp,
    path: &str,
    content_type: &str,
    key: &str,
) -> tokio::net::TcpStream {
    let mut stream = tokio::net::TcpStream::connect(app.addr)
        .await
        .expect("connects");
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {key}\r\ncontent-type: {content_type}\r\ncontent-length: 1000\r\n\r\n{{"
    );
    stream.write_all(head.as_bytes()).await.expect("written");
    stream
}

async fn slow_request_bodies_hold_no_running_place(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.ingest
        .clone()
        .upsert_customers(pb::UpsertCustomersRequest {
            customers: vec![customer("maya", "Maya", "maya@example.com", "", "")],
        })
        .await
        .expect("stored");
    let key = app.key(Role::Crm).await;
    // More slow bodies than there are running places (16 by default).
    let mut slow = Vec::new();
    for _ in 0..12 {
        slow.push(trickle(&app, "/v1/feedback", "application/json", &key).await);
        let grpc_web = "/customer_context.v1.CustomerContextService/RecordSuggestionFeedback";
        slow.push(trickle(&app, grpc_web, "application/grpc-web+proto", &key).await);
    }
    // Every one of them has reached the server (the scrape is one more).
    while in_flight(&app).await < 25.0 {
        tokio::task::yield_now().await;
    }
    for _ in 0..5 {
        let ctx = context(&app, by(Identity::CustomerId("maya".into()))).await;
        assert_eq!(ctx.expect("answered").customer_id, "maya");
    }
    drop(slow);
}
