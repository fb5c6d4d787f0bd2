//! `WatchCustomerContext`: a watcher on one replica follows what is
//! ingested through another (a second server on the same database), and a
//! watcher that stops reading neither blocks ingestion nor piles up
//! contexts.

use std::time::Duration;

use customer_context::{
    domain::Role,
    proto::{self as pb, customer_ref::Identity, watch_customer_context_response::Update},
};
use tonic::{Code, Streaming};

use crate::{
    fixtures::*,
    harness::{Backend, Key, ReplicaProcess, TestApp, spawn_app, spawn_configured},
    http::maya,
    on_both_backends,
};

on_both_backends!(
    a_watcher_follows_changes_ingested_through_another_replica,
    a_stalled_watcher_neither_blocks_ingestion_nor_piles_up_contexts,
    watching_needs_the_context_role_and_valid_arguments,
    a_browser_watches_over_grpc_web,
    open_watches_take_stream_places_until_they_end,
    revoking_a_key_ends_its_open_watches_on_every_replica,
);

/// Longest wait for a pushed context (a bound for failing, not a timing
/// assertion: the push normally comes within a second).
const PATIENCE: Duration = Duration::from_secs(30);

fn request(customer: &str) -> pb::WatchCustomerContextRequest {
    pb::WatchCustomerContextRequest {
        context: Some(by(Identity::CustomerId(customer.into()))),
        heartbeat_seconds: 0,
    }
}

/// Reads messages until a context satisfies `done`; returns it with the
/// triggers seen on the way.
async fn until(
    stream: &mut Streaming<pb::WatchCustomerContextResponse>,
    what: &str,
    done: impl Fn(&pb::CustomerContext) -> bool,
) -> (pb::CustomerContext, Vec<pb::WatchTrigger>) {
    let mut triggers = Vec::new();
    loop {
        let next = tokio::time::timeout(PATIENCE, stream.message())
            .await
            .unwrap_or_else(|_| panic!("no context with {what} was pushed"))
            .expect("the stream goes on")
            .expect("a message");
        triggers.extend(next.triggers().collect::<Vec<_>>());
        if let Some(Update::Context(c)) = next.update
            && done(&c)
        {
            return (c, triggers);
        }
    }
}

/// A watch on another replica: a second server process on the same
/// database (its own model, change-feed tail and connections).
async fn watch_from_another_replica(
    app: &TestApp,
) -> (ReplicaProcess, Streaming<pb::WatchCustomerContextResponse>) {
    let (process, _, mut other) = app.replica_process().await;
    let stream = other
        .watch_customer_context(request("maya"))
        .await
        .expect("watching")
        .into_inner();
    (process, stream)
}

async fn a_watcher_follows_changes_ingested_through_another_replica(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    maya(&app).await;
    let (_replica, mut stream) = watch_from_another_replica(&app).await;
    let first = stream
        .message()
        .await
        .expect("ok")
        .expect("the first context");
    assert_eq!(
        first.triggers().collect::<Vec<_>>(),
        [pb::WatchTrigger::Initial]
    );
    let Some(Update::Context(first)) = first.update else {
        panic!("a context first")
    };
    assert_eq!(first.customer_id, "maya");
    assert!(first.recent_browsing.is_empty());

    let mut ingest = app.ingest.clone();
    ingest
        .record_events(pb::RecordEventsRequest {
            events: vec![view("w1", "maya", "insoles", 0)],
        })
        .await
        .expect("a view");
    let (c, triggers) = until(&mut stream, "the view", |c| !c.recent_browsing.is_empty()).await;
    assert_eq!(
        c.recent_browsing[0].product.as_ref().unwrap().product_id,
        "insoles"
    );
    assert!(
        triggers.contains(&pb::WatchTrigger::Browsing),
        "{triggers:?}"
    );

    let cart = event(
        "w2",
        "maya",
        "",
        pb::BrowsingEventType::ProductAddedToCart,
        "gaiter",
        0,
    );
    ingest
        .record_events(pb::RecordEventsRequest { events: vec![cart] })
        .await
        .expect("a cart add");
    until(&mut stream, "the cart", |c| {
        c.recent_browsing
            .iter()
            .any(|b| b.in_cart && b.product.as_ref().unwrap().product_id == "gaiter")
    })
    .await;

    ingest
        .record_returns(pb::RecordReturnsRequest {
            returns: vec![return_("r-w", "o-maya-1", "maya", "tr2-9", 0)],
        })
        .await
        .expect("a return");
    let (c, triggers) = until(&mut stream, "the return", |c| !c.returns.is_empty()).await;
    assert_eq!(c.returns[0].reason_code, "too_small");
    assert!(triggers.contains(&pb::WatchTrigger::Return), "{triggers:?}");

    ingest
        .upsert_tickets(pb::UpsertTicketsRequest {
            tickets: vec![ticket("t-w", "maya", pb::TicketStatus::Open, "o-maya-1", 0)],
        })
        .await
        .expect("a ticket");
    let (c, _) = until(&mut stream, "the ticket", |c| !c.open_tickets.is_empty()).await;
    assert_eq!(c.open_tickets[0].subject, "Question t-w");
    // Every context pushed is a read on record: the first and at least one
    // per change above.
    let log = crate::http::reads(&app, "maya").await;
    assert!(
        log.get("WatchCustomerContext").is_some_and(|n| *n >= 5),
        "{log:?}"
    );

    app.privacy
        .clone()
        .erase_customer(pb::EraseCustomerRequest {
            customer: Some(pb::CustomerRef {
                identity: Some(Identity::CustomerId("maya".into())),
            }),
        })
        .await
        .expect("erased");
    let end = loop {
        let next = tokio::time::timeout(PATIENCE, stream.message())
            .await
            .expect("the stream ends after the erasure");
        match next {
            Ok(Some(_)) => continue,
            other => break other,
        }
    };
    assert_eq!(end.expect_err("ends with a status").code(), Code::NotFound);
}

async fn a_stalled_watcher_neither_blocks_ingestion_nor_piles_up_contexts(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    maya(&app).await;
    let (_replica, mut stream) = watch_from_another_replica(&app).await;
    stream
        .message()
        .await
        .expect("ok")
        .expect("the first context");
    // The watcher stops reading while 60 batches arrive for the customer.
    let mut ingest = app.ingest.clone();
    let batches = 60;
    for i in 0..batches {
        ingest
            .record_events(pb::RecordEventsRequest {
                events: vec![view(&format!("s{i}"), "maya", "bottle", 0)],
            })
            .await
            .expect("ingestion goes on");
    }
    ingest
        .record_events(pb::RecordEventsRequest {
            events: vec![view("s-last", "maya", "insoles", 0)],
        })
        .await
        .expect("ingestion goes on");
    // Reading again, the watcher catches up at once: contexts were
    // coalesced, not queued one per change.
    let mut received = 0;
    loop {
        let next = tokio::time::timeout(PATIENCE, stream.message())
            .await
            .expect("a context")
            .expect("ok")
            .expect("a message");
        received += 1;
        if let Some(Update::Context(c)) = next.update
            && c.recent_browsing
                .iter()
                .any(|b| b.product.as_ref().unwrap().product_id == "insoles")
        {
            break;
        }
    }
    assert!(
        received < batches / 2,
        "{received} messages for {batches} changes: they pile up"
    );
}

async fn watching_needs_the_context_role_and_valid_arguments(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    maya(&app).await;
    let crm = Key::bearer(&app.key(Role::Crm).await);
    let denied = app
        .context_as(crm)
        .watch_customer_context(request("maya"))
        .await;
    assert_eq!(denied.expect_err("crm").code(), Code::PermissionDenied);
    let mut context = app.context.clone();
    let mut bad = request("maya");
    bad.heartbeat_seconds = 301;
    let status = context.watch_customer_context(bad).await.expect_err("bad");
    assert_eq!(violated_fields(&status), ["heartbeat_seconds"]);
    let status = context
        .watch_customer_context(pb::WatchCustomerContextRequest::default())
        .await
        .expect_err("no customer");
    assert_eq!(violated_fields(&status), ["context.customer"]);
    let missing = context.watch_customer_context(request("nobody")).await;
    assert_eq!(missing.expect_err("unknown").code(), Code::NotFound);
    // A short heartbeat arrives while nothing changes.
    let mut quiet = request("maya");
    quiet.heartbeat_seconds = 1;
    let mut stream = context
        .watch_customer_context(quiet)
        .await
        .expect("ok")
        .into_inner();
    stream
        .message()
        .await
        .expect("ok")
        .expect("the first context");
    let beat = tokio::time::timeout(PATIENCE, stream.message())
        .await
        .expect("a heartbeat")
        .expect("ok")
        .expect("a message");
    assert!(
        matches!(beat.update, Some(Update::Heartbeat(_))),
        "{beat:?}"
    );
}

/// Reads gRPC-Web frames from `body` until a message frame whose context
/// satisfies `done` (trailer frames, flag 0x80, are skipped).
async fn web_until(
    response: &mut reqwest::Response,
    buffer: &mut Vec<u8>,
    done: impl Fn(&pb::CustomerContext) -> bool,
) {
    loop {
        while buffer.len() >= 5 {
            let len = u32::from_be_bytes([buffer[1], buffer[2], buffer[3], buffer[4]]) as usize;
            if buffer.len() < 5 + len {
                break;
            }
            let frame: Vec<u8> = buffer.drain(..5 + len).collect();
            if frame[0] & 0x80 != 0 {
                continue;
            }
            let message = <pb::WatchCustomerContextResponse as prost::Message>::decode(&frame[5..])
                .expect("a message");
            if let Some(Update::Context(c)) = message.update
                && done(&c)
            {
                return;
            }
        }
        let chunk = tokio::time::timeout(PATIENCE, response.chunk())
            .await
            .expect("a frame in time")
            .expect("the body goes on")
            .expect("more body");
        buffer.extend_from_slice(&chunk);
    }
}

async fn a_browser_watches_over_grpc_web(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    maya(&app).await;
    let key = app.key(Role::Agent).await;
    let message = prost::Message::encode_to_vec(&request("maya"));
    let mut body = vec![0u8];
    body.extend_from_slice(&(message.len() as u32).to_be_bytes());
    body.extend_from_slice(&message);
    let mut response = reqwest::Client::new()
        .post(format!(
            "http://{}/customer_context.v1.CustomerContextService/WatchCustomerContext",
            app.addr
        ))
        .header("content-type", "application/grpc-web+proto")
        .header("x-grpc-web", "1")
        .bearer_auth(&key)
        .body(body)
        .send()
        .await
        .expect("an answer");
    assert_eq!(response.status(), 200);
    let mut buffer = Vec::new();
    web_until(&mut response, &mut buffer, |c| c.customer_id == "maya").await;
    app.ingest
        .clone()
        .record_events(pb::RecordEventsRequest {
            events: vec![view("web1", "maya", "insoles", 0)],
        })
        .await
        .expect("a view");
    web_until(&mut response, &mut buffer, |c| {
        !c.recent_browsing.is_empty()
    })
    .await;
}

async fn open_watches_take_stream_places_until_they_end(backend: Backend) {
    let gate = customer_context::auth::GateConfig {
        max_streams: 2,
        ..Default::default()
    };
    let Some(app) = spawn_configured(backend, false, gate, None).await else {
        return;
    };
    maya(&app).await;
    let mut context = app.context.clone();
    let mut open = Vec::new();
    for _ in 0..2 {
        let mut s = context
            .watch_customer_context(request("maya"))
            .await
            .expect("a place")
            .into_inner();
        s.message().await.expect("ok").expect("the first context");
        open.push(s);
    }
    let refused = context.watch_customer_context(request("maya")).await;
    assert_eq!(
        refused.expect_err("no place").code(),
        Code::ResourceExhausted
    );
    // Unary calls do not compete with streams for places.
    context_of(&app, Identity::CustomerId("maya".into())).await;
    drop(open.pop());
    // The server sees the client go away, then frees the place.
    let started = std::time::Instant::now();
    loop {
        match context.watch_customer_context(request("maya")).await {
            Ok(_) => break,
            Err(s) if s.code() == Code::ResourceExhausted && started.elapsed() < PATIENCE => {
                tokio::task::yield_now().await;
            }
            Err(s) => panic!("the place was never freed: {s:?}"),
        }
    }
}

async fn revoking_a_key_ends_its_open_watches_on_every_replica(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    maya(&app).await;
    let (agent_id, agent) = app
        .store
        .create_key("agent to revoke", Role::Agent)
        .await
        .expect("a key");
    let (_, other) = app
        .store
        .create_key("agent kept", Role::Agent)
        .await
        .expect("a key");
    // Watches on a second replica (its own process): gRPC and SSE with the
    // key to revoke, gRPC with another key.
    let (replica, _, _) = app.replica_process().await;
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", replica.addr()))
        .expect("a URI")
        .connect()
        .await
        .expect("connected");
    let watch_as = |token: &str| {
        let mut client =
            pb::customer_context_service_client::CustomerContextServiceClient::with_interceptor(
                channel.clone(),
                Key::bearer(token),
            );
        async move {
            let mut stream = client
                .watch_customer_context(request("maya"))
                .await
                .expect("watching")
                .into_inner();
            stream
                .message()
                .await
                .expect("ok")
                .expect("the first context");
            stream
        }
    };
    let mut revoked = watch_as(&agent).await;
    let mut kept = watch_as(&other).await;
    let mut sse = reqwest::Client::new()
        .get(format!(
            "http://{}/v1/context:watch?customer_id=maya",
            replica.addr()
        ))
        .bearer_auth(&agent)
        .send()
        .await
        .expect("a stream");
    assert_eq!(sse.status(), 200);
    let first = sse.chunk().await.expect("an event").expect("bytes");
    assert!(String::from_utf8_lossy(&first).starts_with("event: context"));

    // Revoked through this replica's store (as `keys revoke` does).
    assert!(
        app.store
            .revoke_key(&agent_id.key_id)
            .await
            .expect("revoked")
    );
    let ended = tokio::time::timeout(PATIENCE, revoked.message())
        .await
        .expect("the gRPC watch ends");
    assert_eq!(ended.expect_err("an error").code(), Code::Unauthenticated);
    let mut text = String::new();
    while let Some(chunk) = tokio::time::timeout(PATIENCE, sse.chunk())
        .await
        .expect("the SSE watch ends")
        .expect("bytes")
    {
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(text.contains("event: error"), "{text}");
    assert!(text.contains("UNAUTHENTICATED"), "{text}");
    // Another key's watch goes on: a change still reaches it.
    app.ingest
        .clone()
        .record_events(pb::RecordEventsRequest {
            events: vec![view("rv-1", "maya", "insoles", 0)],
        })
        .await
        .expect("a view");
    until(&mut kept, "the view", |c| !c.recent_browsing.is_empty()).await;
}
