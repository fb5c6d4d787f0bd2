//! Personal data never reaches the logs: runs ingestion, lookups (gRPC,
//! JSON, MCP) and bad requests with every log line captured at TRACE level
//! (our crate and the libraries; the MCP SDK at the cap the service always
//! applies), then searches the capture for the test customer's email, phone
//! and name.

#[path = "api/fixtures.rs"]
#[allow(dead_code)]
mod fixtures;
#[path = "api/harness.rs"]
#[allow(dead_code)]
mod harness;

use std::sync::{Arc, Mutex};

use customer_context::proto::{self as pb, customer_ref::Identity};
use fixtures::*;
use harness::{Backend, spawn_app};

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_email_or_phone_in_logs() {
    let capture = Capture::default();
    let writer = capture.clone();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::new("trace").add_directive(
                customer_context::telemetry::MCP_SDK_CAP
                    .parse()
                    .expect("ok"),
            ),
        )
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .init();

    let Some(app) = spawn_app(Backend::Sqlite).await else {
        return;
    };
    seed_catalog(&app).await;
    let mut ingest = app.ingest.clone();
    let mut maya = customer(
        "c-private",
        "Maya Privatename",
        "maya.private@example.com",
        "+1 555 012 3456",
        "L-PRIV",
    );
    maya.anonymous_ids = vec!["anon-private".into()];
    ingest
        .upsert_customers(pb::UpsertCustomersRequest {
            customers: vec![maya.clone()],
        })
        .await
        .expect("ok");
    // A conflicting customer (someone else's email) and malformed ones.
    let thief = customer("c-other", "", "maya.private@example.com", "", "");
    let broken = customer(
        "c-broken",
        "",
        "maya.private@@example.com",
        "+1 555 012 3456 ext",
        "",
    );
    ingest
        .upsert_customers(pb::UpsertCustomersRequest {
            customers: vec![thief, broken],
        })
        .await
        .expect("ok");
    ingest
        .record_events(pb::RecordEventsRequest {
            events: vec![view("m1", "c-private", "socks", 5)],
        })
        .await
        .expect("ok");
    for identity in [
        Identity::Email("maya.private@example.com".into()),
        Identity::Phone("+1 555 012 3456".into()),
        Identity::Email("Maya.Private@Example.com ".into()),
        Identity::Email("maya.private@@example.com".into()),
        Identity::Phone("555-PRIVATE-3456".into()),
        Identity::Email("unknown.private@example.com".into()),
    ] {
        let _ = context(&app, by(identity)).await;
    }
    // The same lookups through the JSON endpoint and MCP (and malformed ones).
    let key = app.key(customer_context::domain::Role::Agent).await;
    let http = reqwest::Client::new();
    let base = format!("http://{}", app.addr);
    for query in [
        "email=maya.private%40example.com",
        "phone=%2B1%20555%20012%203456",
        "email=maya.private%40%40example.com",
        "emial=maya.private%40example.com",
    ] {
        let _ = http
            .get(format!("{base}/v1/context?{query}"))
            .bearer_auth(&key)
            .send()
            .await
            .expect("an answer");
    }
    for body in [
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_customer_context","arguments":{"email":"maya.private@example.com"}}}"#,
        r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"get_customer_context","arguments":{"emial":"maya.private@example.com"}}}"#,
        r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"maya.private@example.com"}}"#,
        r#"{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"x","arguments":"maya.private@example.com"#,
    ] {
        let answer = http
            .post(format!("{base}/mcp"))
            .bearer_auth(&key)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2025-06-18")
            .body(body)
            .send()
            .await
            .expect("an answer");
        let _ = answer.text().await;
    }
    let link = pb::LinkIdentityRequest {
        customer_id: "c-other".into(),
        kind: pb::IdentityKind::Email.into(),
        value: "maya.private@example.com".into(),
    };
    let _ = ingest.link_identity(link).await;
    let _ = app
        .privacy
        .clone()
        .erase_customer(pb::EraseCustomerRequest {
            customer: Some(pb::CustomerRef {
                identity: Some(Identity::Email("maya.private@example.com".into())),
            }),
        })
        .await
        .expect("erased");
    ingest
        .upsert_customers(pb::UpsertCustomersRequest {
            customers: vec![maya],
        })
        .await
        .expect("suppressed");

    let logs = String::from_utf8_lossy(&capture.0.lock().expect("lock")).to_string();
    assert!(
        logs.lines().count() > 20,
        "the capture works: {} lines",
        logs.lines().count()
    );
    for secret in [
        "maya.private",
        "Maya.Private",
        "5550123456",
        "555 012 3456",
        "012 3456",
        "Privatename",
        "PRIVATE-3456",
    ] {
        let hits: Vec<&str> = logs
            .lines()
            .filter(|l| l.contains(secret))
            .take(3)
            .collect();
        assert!(hits.is_empty(), "{secret:?} appears in the logs: {hits:#?}");
    }
}
