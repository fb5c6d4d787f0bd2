//! A database outage: health turns NOT_SERVING and calls fail fast with
//! UNAVAILABLE; when the database returns, health turns SERVING and calls
//! succeed, without restarting the service. The database is cut off by a
//! TCP proxy the test controls (PostgreSQL itself keeps running for the
//! other tests).

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use customer_context::proto::customer_ref::Identity;
use tokio::net::{TcpListener, TcpStream};
use tonic::Code;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use crate::{
    fixtures::*,
    harness::{Backend, TestApp, postgres_admin_url, spawn_reaching},
};

/// Forwards connections to PostgreSQL until cut.
struct Proxy {
    addr: std::net::SocketAddr,
    open: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl Proxy {
    async fn start(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
        let addr = listener.local_addr().expect("an address");
        let open = Arc::new(AtomicBool::new(true));
        let connections: Arc<Mutex<Vec<tokio::task::AbortHandle>>> = Arc::default();
        let (is_open, held) = (open.clone(), connections.clone());
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !is_open.load(Ordering::SeqCst) {
                    continue; // dropped: the connection is closed at once
                }
                let upstream = upstream.clone();
                let task = tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                held.lock().expect("lock").push(task.abort_handle());
            }
        });
        Self {
            addr,
            open,
            connections,
        }
    }

    /// Refuses new connections and breaks the open ones.
    fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
        for c in self.connections.lock().expect("lock").drain(..) {
            c.abort();
        }
    }

    fn restore(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_follows_the_database_and_calls_fail_fast_while_it_is_away() {
    // `scheme://user@host:port/db`: the host and port become the proxy's.
    let host_of = |url: &str| {
        let (_, rest) = url.split_once('@').expect("a user in the URL");
        rest.split_once('/')
            .expect("a database in the URL")
            .0
            .to_owned()
    };
    let proxy = Proxy::start(host_of(&postgres_admin_url())).await;
    let through = proxy.addr.to_string();
    let Some(app) = spawn_reaching(Backend::Postgres, |url| {
        url.replacen(&host_of(url), &through, 1)
    })
    .await
    else {
        return;
    };
    seed_catalog(&app).await;
    app.ingest
        .clone()
        .record_events(customer_context::proto::RecordEventsRequest {
            events: vec![view("m1", "c1", "socks", 5)],
        })
        .await
        .expect("recorded");
    assert_eq!(health(&app).await, ServingStatus::Serving);

    proxy.cut();
    assert!(
        health_becomes(&app, ServingStatus::NotServing).await,
        "NOT_SERVING while the database is unreachable"
    );
    let refused = app
        .context
        .clone()
        .get_customer_context(by(Identity::CustomerId("c1".into())))
        .await
        .expect_err("no database");
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    assert!(!refused.message().contains("proxy") && !refused.message().contains("127.0.0.1"));

    proxy.restore();
    assert!(
        health_becomes(&app, ServingStatus::Serving).await,
        "SERVING again once the database answers"
    );
    let ctx = context_of(&app, Identity::CustomerId("c1".into())).await;
    assert_eq!(ctx.recent_browsing.len(), 1);
}

async fn health(app: &TestApp) -> ServingStatus {
    let r = HealthClient::new(app.channel.clone())
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("health answers")
        .into_inner();
    r.status()
}

/// Polls health until it reports `status` (a generous bound: this asserts
/// the change happens, not how fast).
async fn health_becomes(app: &TestApp, status: ServingStatus) -> bool {
    for _ in 0..600 {
        if health(app).await == status {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}
