//! Health, reflection, gRPC-Web, the demo data and file import.

use std::io::Write as _;

use customer_context::{
    ingest::{ImportFiles, run_import},
    proto::customer_ref::Identity,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};
use tonic_reflection::pb::v1::{
    ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
    server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
};

use crate::{
    fixtures::*,
    harness::{Backend, spawn_app, spawn_app_with},
    on_both_backends,
};

on_both_backends!(
    health_and_reflection_answer,
    grpc_web_is_accepted,
    import_is_idempotent_and_reports_bad_lines
);

async fn health_and_reflection_answer(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let mut health = HealthClient::new(app.channel.clone());
    for service in [
        "",
        "customer_context.v1.CustomerContextService",
        "customer_context.v1.IngestService",
    ] {
        let r = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .expect("health")
            .into_inner();
        assert_eq!(r.status(), ServingStatus::Serving, "{service:?}");
    }
    let mut reflection = ServerReflectionClient::new(app.channel.clone());
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = reflection
        .server_reflection_info(tokio_stream::iter(vec![request]))
        .await
        .expect("reflection")
        .into_inner();
    let response = responses
        .message()
        .await
        .expect("a message")
        .expect("a response");
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("not a service list")
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for expected in [
        "customer_context.v1.CustomerContextService",
        "customer_context.v1.IngestService",
        "grpc.health.v1.Health",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} missing from {names:?}"
        );
    }
}

async fn grpc_web_is_accepted(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    // A browser-style gRPC-Web call over HTTP/1.1: health check for "".
    // Frame: flag 0, length 0 (an empty HealthCheckRequest).
    let body = [0u8, 0, 0, 0, 0];
    let request = format!(
        "POST /grpc.health.v1.Health/Check HTTP/1.1\r\nHost: {}\r\nContent-Type: application/grpc-web+proto\r\n\
         X-Grpc-Web: 1\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        app.addr,
        body.len()
    );
    let mut stream = tokio::net::TcpStream::connect(app.addr)
        .await
        .expect("connect");
    stream.write_all(request.as_bytes()).await.expect("write");
    stream.write_all(&body).await.expect("write");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.expect("read");
    let text = String::from_utf8_lossy(&response);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        text.to_lowercase()
            .contains("content-type: application/grpc-web+proto"),
        "{text}"
    );
    // The trailers frame carries grpc-status:0, and the message says SERVING (1).
    assert!(text.contains("grpc-status:0"), "{text}");
    assert!(
        response.windows(2).any(|w| w == [0x08, 0x01]),
        "SERVING in the message"
    );
}

async fn import_is_idempotent_and_reports_bad_lines(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let dir = tempfile::tempdir().expect("dir");
    let catalog = dir.path().join("catalog.csv");
    std::fs::write(
        &catalog,
        "product_id,name,brand,category,price,in_stock\n\
         p1,Rain Shell,Northpeak,Apparel > Jackets,129.00,true\n\
         p2,Merino Socks,Kestrel,Accessories > Socks,19.00,true\n\
         p3,,Kestrel,Accessories,1.00,true\n",
    )
    .expect("write");
    let events = dir.path().join("events.jsonl.gz");
    let now = |mins: i64| {
        let t = ago(mins);
        customer_context::domain::Timestamp::from_parts(t.seconds, 0)
            .expect("t")
            .to_rfc3339()
    };
    let lines = [
        r#"{"type":"identify","userId":"u1","anonymousId":"a1","traits":{"name":"Ana Lima","email":"ana@example.com"}}"#.to_string(),
        format!(
            r#"{{"type":"track","event":"Product Viewed","messageId":"e1","anonymousId":"a1","timestamp":"{}","properties":{{"product_id":"p1"}}}}"#,
            now(30)
        ),
        format!(
            r#"{{"type":"track","event":"Order Completed","messageId":"e2","userId":"u1","timestamp":"{}","properties":{{"order_id":"o1","total":148.0,"currency":"USD","products":[{{"product_id":"p1","quantity":1,"price":129.0}},{{"product_id":"p2","quantity":1,"price":19.0}}]}}}}"#,
            now(20)
        ),
        format!(
            r#"{{"type":"track","event":"Return Requested","messageId":"e3","userId":"u1","timestamp":"{}","properties":{{"return_id":"r1","order_id":"o1","reason_code":"too_small","products":[{{"product_id":"p1"}}]}}}}"#,
            now(10)
        ),
        format!(
            r#"{{"type":"track","event":"Ticket Updated","messageId":"e4","userId":"u1","timestamp":"{}","properties":{{"ticket_id":"t1","subject":"Refund?","status":"open","order_id":"o1"}}}}"#,
            now(5)
        ),
        r#"{"type":"track","event":"Checkout Started","messageId":"e5"}"#.to_string(),
        "{broken".to_string(),
    ];
    let mut gz = flate2::write::GzEncoder::new(
        std::fs::File::create(&events).expect("create"),
        flate2::Compression::fast(),
    );
    for l in &lines {
        writeln!(gz, "{l}").expect("write");
    }
    gz.finish().expect("gzip");
    let rejects = dir.path().join("rejects.jsonl");
    let args = ImportFiles {
        catalogs: vec![catalog],
        events: vec![events],
        shopify: Vec::new(),
        rejects: Some(rejects.clone()),
        batch_size: 2,
    };
    run_import(&app.store, &args).await.expect("import");
    let rejected = std::fs::read_to_string(&rejects).expect("rejects");
    let rejected: Vec<serde_json::Value> = rejected
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    let where_: Vec<(String, u64)> = rejected
        .iter()
        .map(|r| {
            (
                r["file"]
                    .as_str()
                    .unwrap_or_default()
                    .rsplit('/')
                    .next()
                    .unwrap_or_default()
                    .to_owned(),
                r["line"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(
        where_,
        [
            ("catalog.csv".to_string(), 4),
            ("events.jsonl.gz".to_string(), 6),
            ("events.jsonl.gz".to_string(), 7)
        ]
    );
    assert!(
        rejected[0]["reason"]
            .as_str()
            .unwrap_or_default()
            .starts_with("name"),
        "{rejected:?}"
    );

    let ctx = context_of(&app, Identity::Email("ana@example.com".into())).await;
    assert_eq!(ctx.customer_id, "u1");
    assert_eq!(
        ctx.profile.as_ref().expect("profile").lifetime_spend[0].amount_minor,
        14800
    );
    assert_eq!(
        ctx.recent_browsing[0].product.clone().expect("p").name,
        "Rain Shell",
        "anonymous browsing carried over"
    );
    assert_eq!(
        (
            ctx.recent_orders.len(),
            ctx.returns.len(),
            ctx.open_tickets.len()
        ),
        (1, 1, 1)
    );

    // Running it again changes nothing.
    run_import(&app.store, &args).await.expect("import again");
    let again = context_of(&app, Identity::Email("ana@example.com".into())).await;
    let p = again.profile.expect("profile");
    assert_eq!(
        (p.order_count, p.units_purchased, p.units_returned),
        (1, 2, 1)
    );
    assert_eq!(again.recent_browsing[0].view_count, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_data_is_meaningful_and_loads_once() {
    let Some(app) = spawn_app_with(Backend::Sqlite, true).await else {
        return;
    };
    let ctx = context_of(
        &app,
        Identity::Email(customer_context::demo::SHOWCASE_EMAIL.into()),
    )
    .await;
    assert_eq!(ctx.customer_id, "demo-c0001");
    assert_eq!(ctx.profile.as_ref().expect("profile").order_count, 6);
    assert!(ctx.returns.iter().any(|r| r.reason_code == "too_small"));
    // Her sizes, and suggestions in them.
    let sizes: Vec<(&str, &str)> = ctx
        .profile
        .as_ref()
        .expect("profile")
        .sizes
        .iter()
        .map(|e| (e.category.as_str(), e.size.as_str()))
        .collect();
    assert_eq!(
        sizes,
        [
            ("Apparel > Jackets", "L"),
            ("Footwear > Running", "9"),
            ("Apparel > Tops", "M"),
            ("Footwear > Boots", "9"),
        ]
    );
    assert!(
        ctx.agent_brief
            .ends_with("Fit: Rain Shell (M) came back too small; they keep L in jackets; Rain Shell (L) in the cart is their size."),
        "{}",
        ctx.agent_brief
    );
    let offered = app
        .context
        .clone()
        .suggest_cross_sells(customer_context::proto::SuggestCrossSellsRequest {
            customer: Some(customer_context::proto::CustomerRef {
                identity: Some(Identity::Email(
                    customer_context::demo::SHOWCASE_EMAIL.into(),
                )),
            }),
            limit: 20,
            ..Default::default()
        })
        .await
        .expect("suggestions")
        .into_inner()
        .suggestions
        .expect("a list");
    let in_her_size: Vec<(String, String)> = offered
        .items
        .iter()
        .filter_map(|i| i.fit.as_ref())
        .filter(|f| f.status() == customer_context::proto::SizeFit::CustomerSize)
        .map(|f| (f.size_domain.clone(), f.size.clone()))
        .collect();
    let wanted = |domain: &str| sizes.iter().find(|(d, _)| *d == domain).map(|(_, s)| *s);
    for (domain, size) in &in_her_size {
        assert_eq!(wanted(domain), Some(size.as_str()), "{domain}");
    }
    for domain in ["Footwear > Running", "Apparel > Jackets", "Apparel > Tops"] {
        assert!(
            in_her_size.iter().any(|(d, _)| d == domain),
            "nothing offered in {domain}: {in_her_size:?}"
        );
    }
    assert_eq!(ctx.open_tickets.len(), 1);
    assert!(ctx.recent_browsing.iter().any(|b| b.abandoned_cart));
    assert!(
        ctx.agent_brief.contains("Rain Shell"),
        "{}",
        ctx.agent_brief
    );
    // Stylists' curations: four, one of them for Maya, who sees its items.
    let mut stylist = app.stylist_as(crate::harness::Key::bearer(
        &app.key(customer_context::domain::Role::Stylist).await,
    ));
    let curations = stylist
        .list_curations(customer_context::proto::ListCurationsRequest::default())
        .await
        .expect("curations")
        .into_inner()
        .curations;
    assert_eq!(curations.len(), 4);
    let curated = offered
        .items
        .iter()
        .filter_map(|i| i.curated.as_ref())
        .map(|c| c.title.as_str())
        .collect::<Vec<_>>();
    assert!(curated.contains(&"After the rain shell"), "{curated:?}");
    // A second load is skipped: nothing doubles.
    customer_context::demo::load(
        &app.store,
        &customer_context::suggest::ModelConfig::default(),
    )
    .await
    .expect("second load");
    let again = context_of(
        &app,
        Identity::Email(customer_context::demo::SHOWCASE_EMAIL.into()),
    )
    .await;
    assert_eq!(again.profile.expect("profile").order_count, 6);
    assert_eq!(again.recent_browsing.len(), ctx.recent_browsing.len());
}

/// SIGINT/SIGTERM stop the server: calls in flight finish, new ones are
/// refused. The signal is stood in for by the shutdown future.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_calls_in_flight() {
    use customer_context::{
        auth::GateConfig,
        domain::Role,
        proto::{self as pb, ingest_service_client::IngestServiceClient},
        startup::{Application, ServeConfig},
        store::{StoreOptions, sqlite_url},
    };
    let dir = tempfile::tempdir().expect("dir");
    let config = ServeConfig {
        listen: "127.0.0.1:0".parse().expect("addr"),
        database_url: sqlite_url(&dir.path().join("db.sqlite")),
        store: StoreOptions::default(),
        gate: GateConfig::default(),
        tls: None,
        suggest: Default::default(),
        model_rebuild_every: None,
        model: customer_context::suggest::ModelConfig::default(),
        customer_memory: customer_context::suggest::memo::CUSTOMER_BYTES,
        connectors: Default::default(),
        frame_origins: Vec::new(),
        retention: Default::default(),
    };
    let app = Application::build(&config).await.expect("built");
    let addr = app.local_addr();
    let store = app.store().clone();
    let key =
        crate::harness::Key::bearer(&store.create_key("t", Role::Admin).await.expect("key").1);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async move {
        let _ = stopped.await;
    }));
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect()
        .await
        .expect("c");
    let mut ingest = IngestServiceClient::with_interceptor(channel, key);

    // A client stream is in flight: its first batch is committed.
    let flush = customer_context::api::STREAM_FLUSH;
    let (tx, rx) = tokio::sync::mpsc::channel::<pb::BrowsingEvent>(4000);
    let mut streaming = ingest.clone();
    let call = tokio::spawn(async move {
        streaming
            .stream_events(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
    });
    for i in 0..flush {
        tx.send(view(&format!("s{i}"), "c1", "p1", 5))
            .await
            .expect("send");
    }
    let key = customer_context::domain::CustomerKey::Id(
        customer_context::domain::CustomerId::parse("c1").expect("id"),
    );
    let mut committed = false;
    for _ in 0..600 {
        if store.resolve(&key).await.expect("resolve").is_some() {
            committed = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(committed, "the first batch was committed");

    // Shut down while the call is open; it may still send, then finish.
    stop.send(()).expect("stop");
    for i in flush..flush + 10 {
        tx.send(view(&format!("s{i}"), "c1", "p1", 5))
            .await
            .expect("send after the signal");
    }
    drop(tx);
    let done = call
        .await
        .expect("joined")
        .expect("the call in flight completes")
        .into_inner();
    assert_eq!(done.summary.expect("summary").created, flush as u32 + 10);
    server
        .await
        .expect("joined")
        .expect("the server stops cleanly");
    // The server is gone: new calls fail.
    let r = ingest
        .record_events(pb::RecordEventsRequest {
            events: vec![view("late", "c1", "p1", 1)],
        })
        .await;
    assert!(r.is_err());
}
