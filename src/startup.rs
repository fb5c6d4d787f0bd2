//! Wiring: bind the listener, open the store, serve until shut down.

use std::{future::Future, net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use anyhow::Context as _;
use tokio::net::TcpListener;
use tonic::service::Routes;
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig, server::TcpIncoming};
use tonic_health::ServingStatus;

use crate::{
    api::{ContextApi, IngestApi, MAX_MESSAGE_BYTES, PrivacyApi, StylistApi},
    audit::AccessLog,
    auth::{GateConfig, GateLayer},
    context::ContextService,
    curate::CurateService,
    metrics::{Metrics, MetricsLayer},
    proto::{
        self, customer_context_service_server::CustomerContextServiceServer,
        ingest_service_server::IngestServiceServer, privacy_service_server::PrivacyServiceServer,
        stylist_service_server::StylistServiceServer,
    },
    store::{Store, StoreOptions},
    suggest::{LiveModel, ModelConfig, SuggestConfig, SuggestService, live},
};

/// What `serve` needs.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Address to listen on; port 0 picks a free port.
    pub listen: SocketAddr,
    /// `sqlite://...` or `postgres://...`.
    pub database_url: String,
    /// Pool settings.
    pub store: StoreOptions,
    /// Authentication, load shedding and rate limits.
    pub gate: GateConfig,
    /// TLS, when serving over TLS.
    pub tls: Option<TlsFiles>,
    /// Suggestion settings.
    pub suggest: SuggestConfig,
    /// How often the suggestion model is rebuilt from the whole history
    /// (one replica per period does it); `None` never.
    pub model_rebuild_every: Option<Duration>,
    /// How the suggestion model is built and updated.
    pub model: ModelConfig,
    /// What this replica may keep of the customers it read, in bytes (as
    /// the memo weighs them): beyond it, it forgets them all and refills.
    pub customer_memory: usize,
    /// The webhook receivers' secrets and settings.
    pub connectors: crate::connect::ConnectorConfig,
    /// Origins (helpdesks) allowed to frame the sidebar and switch its
    /// customer; none: only the service's own.
    pub frame_origins: Vec<String>,
    /// How long each kind of record is kept (docs/operations.md).
    pub retention: crate::retention::Retention,
}

/// PEM files for TLS.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The server's certificate chain.
    pub cert: PathBuf,
    /// The server's private key.
    pub key: PathBuf,
    /// When set, clients must present a certificate signed by this CA
    /// (mutual TLS).
    pub client_ca: Option<PathBuf>,
}

impl TlsFiles {
    fn load(&self) -> anyhow::Result<ServerTlsConfig> {
        let read =
            |p: &PathBuf| std::fs::read(p).with_context(|| format!("reading {}", p.display()));
        let mut config = ServerTlsConfig::new()
            .identity(Identity::from_pem(read(&self.cert)?, read(&self.key)?));
        if let Some(ca) = &self.client_ca {
            config = config.client_ca_root(Certificate::from_pem(read(ca)?));
        }
        Ok(config)
    }
}

/// A bound, ready-to-run server.
pub struct Application {
    listener: TcpListener,
    store: Store,
    gate: GateConfig,
    tls: Option<ServerTlsConfig>,
    suggest: SuggestConfig,
    model_rebuild_every: Option<Duration>,
    live: Arc<LiveModel>,
    connectors: crate::connect::ConnectorConfig,
    frame_origins: Vec<String>,
    retention: crate::retention::Retention,
}

impl Application {
    /// Binds the listener, opens the database and applies migrations.
    /// Nothing is served yet.
    pub async fn build(config: &ServeConfig) -> anyhow::Result<Self> {
        if let Some(bad) = config
            .frame_origins
            .iter()
            .find(|o| !crate::http::valid_origin(o))
        {
            anyhow::bail!(
                "--sidebar-frame-origins: {bad:?} is not an origin such as https://app.chatwoot.com or https://*.zendesk.com"
            );
        }
        if !config.gate.auth && !config.listen.ip().is_loopback() {
            anyhow::bail!(
                "authentication may only be disabled when listening on loopback (127.0.0.1 or ::1), not {}",
                config.listen
            );
        }
        let tls = config.tls.as_ref().map(TlsFiles::load).transpose()?;
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("binding {}", config.listen))?;
        let store = Store::connect(&config.database_url, &config.store).await?;
        store.migrate().await?;
        // After an upgrade that changed the model's format, the stored one
        // cannot be read: build one now, so suggestions are there from the
        // first call (once; replicas starting after see it current).
        if store
            .stored_model_format()
            .await
            .map_err(|e| anyhow::anyhow!("reading the model's format: {e:?}"))?
            .is_some_and(|f| f < crate::suggest::snapshot::FORMAT)
        {
            let built = live::build_and_save(&store, &config.model)
                .await
                .map_err(|e| anyhow::anyhow!("rebuilding the suggestion model: {e:?}"))?;
            tracing::info!(
                version = built.version,
                "suggestion model rebuilt in this version's format"
            );
        }
        // The newest stored model and the feed after it, before serving.
        let live = Arc::new(
            LiveModel::new(config.model.clone()).with_customer_memory(config.customer_memory),
        );
        live.catch_up(&store)
            .await
            .map_err(|e| anyhow::anyhow!("loading the suggestion model: {e:?}"))?;
        Ok(Self {
            listener,
            store,
            gate: config.gate.clone(),
            tls,
            suggest: config.suggest.clone(),
            model_rebuild_every: config.model_rebuild_every,
            live,
            connectors: config.connectors.clone(),
            frame_origins: config.frame_origins.clone(),
            retention: config.retention,
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// The store the server uses.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Serves until `shutdown` completes, then stops accepting calls,
    /// finishes the ones in flight and closes the database.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let Self {
            listener,
            store,
            gate,
            tls,
            suggest: suggest_config,
            model_rebuild_every,
            live,
            connectors,
            frame_origins,
            retention,
        } = self;
        let rebuilder = model_rebuild_every.map(|every| {
            tokio::spawn(rebuild_model_every(
                store.clone(),
                live.config().clone(),
                every,
            ))
        });
        let tailer = tokio::spawn(live::tail(live.clone(), store.clone(), reader_id()));
        let indexer = tokio::spawn(load_text_index(live.clone(), store.clone()));
        let addr = listener.local_addr()?;
        if !gate.auth {
            tracing::warn!(
                "AUTHENTICATION IS DISABLED (--insecure-no-auth): every caller has every right; development only"
            );
        }
        let audit = AccessLog::spawn(store.clone());

        let (reporter, health) = tonic_health::server::health_reporter();
        reporter
            .set_serving::<IngestServiceServer<IngestApi>>()
            .await;
        reporter
            .set_serving::<CustomerContextServiceServer<ContextApi>>()
            .await;
        reporter
            .set_serving::<PrivacyServiceServer<PrivacyApi>>()
            .await;
        reporter
            .set_serving::<StylistServiceServer<StylistApi>>()
            .await;
        let watchdog = tokio::spawn(watch_database(store.clone(), reporter));

        let reflection_v1 = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()
            .context("building the reflection service")?;
        let reflection_v1alpha = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1alpha()
            .context("building the reflection service")?;

        let metrics = Arc::new(Metrics::new());
        let ingest = IngestServiceServer::new(IngestApi::new(store.clone(), metrics.clone()))
            .max_decoding_message_size(MAX_MESSAGE_BYTES);
        let suggest = SuggestService::new(store.clone(), suggest_config, live.clone());
        let warmer = tokio::spawn(warm_products(suggest.clone()));
        let desk = crate::desk::Desk::new(
            ContextService::new(store.clone(), suggest.clone()),
            suggest.clone(),
            crate::search::SearchService::new(store.clone(), suggest.clone()),
            CurateService::new(store.clone(), suggest),
            crate::privacy::PrivacyService::new(store.clone()),
            audit,
        );
        let stylist_api = StylistApi::new(desk.clone());
        let context_api = ContextApi::new(desk.clone());
        let privacy_api = PrivacyApi::new(desk.clone());
        let faces = crate::api::Faces {
            desk,
            metrics: metrics.clone(),
            store: store.clone(),
            live,
            auth: gate.auth,
        };
        let connectors = crate::connect::Connectors::new(store.clone(), connectors);
        let maintainer = tokio::spawn(maintain_deliveries(connectors.clone(), metrics.clone()));
        let pruner = tokio::spawn(prune_every(store.clone(), retention, metrics.clone()));
        let receivers = crate::http::Receivers::new(connectors, metrics.clone());
        let sidebar = crate::http::Sidebar::new(&frame_origins);
        let http =
            crate::http::router(faces.clone(), receivers, sidebar).merge(crate::mcp::router(faces));
        let stylist =
            StylistServiceServer::new(stylist_api).max_decoding_message_size(MAX_MESSAGE_BYTES);
        let context = CustomerContextServiceServer::new(context_api)
            .max_decoding_message_size(MAX_MESSAGE_BYTES);
        let privacy =
            PrivacyServiceServer::new(privacy_api).max_decoding_message_size(MAX_MESSAGE_BYTES);
        let mut routes = Routes::builder();
        routes
            .add_service(health)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(ingest)
            .add_service(context)
            .add_service(privacy)
            .add_service(stylist);
        let routes = Routes::from(routes.routes().into_axum_router().merge(http));

        // Without TCP_NODELAY, small responses wait on delayed ACKs (~40 ms).
        let incoming = TcpIncoming::from(listener)
            .with_nodelay(Some(true))
            .with_keepalive(Some(Duration::from_secs(60)));
        let mut builder = Server::builder();
        let tls_on = tls.is_some();
        if let Some(tls) = tls {
            builder = builder.tls_config(tls).context("configuring TLS")?;
        }
        let startup_ms = crate::telemetry::process_started().elapsed().as_millis() as u64;
        tracing::info!(%addr, backend = ?store.backend(), tls = tls_on, auth = gate.auth, startup_ms, "serving gRPC (with gRPC-Web, health and reflection), JSON, MCP at /mcp, the sidebar at /sidebar and metrics at /metrics");
        let result = builder
            .accept_http1(true)
            .layer(MetricsLayer::new(metrics.clone(), crate::wire::route_of))
            .layer(cors())
            .layer(crate::http::GrpcWebOnlyLayer)
            .layer(GateLayer::new(store.clone(), gate, metrics))
            .add_routes(routes)
            .serve_with_incoming_shutdown(incoming, shutdown)
            .await;
        watchdog.abort();
        tailer.abort();
        indexer.abort();
        warmer.abort();
        maintainer.abort();
        pruner.abort();
        if let Some(r) = rebuilder {
            r.abort();
        }
        store.close().await;
        tracing::info!("stopped");
        result.context("serving gRPC")
    }
}

/// CORS for gRPC-Web, JSON and MCP calls from browser-based plugins served
/// from another origin (the helpdesk's). Any origin may call, without
/// cookies or other credentials: authorization travels in a header. Only
/// the request headers these protocols use may be sent.
fn cors() -> tower_http::cors::CorsLayer {
    use http::{HeaderName, Method};
    use tower_http::cors::{Any, CorsLayer};
    const ALLOWED: [&str; 11] = [
        "authorization",
        "x-api-key",
        "content-type",
        "accept",
        "grpc-timeout",
        "x-grpc-web",
        "x-user-agent",
        "mcp-session-id",
        "mcp-protocol-version",
        "last-event-id",
        "cache-control",
    ];
    CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::GET, Method::POST, Method::DELETE, Method::OPTIONS])
        .allow_headers(ALLOWED.map(HeaderName::from_static))
        .expose_headers([
            HeaderName::from_static("grpc-status"),
            HeaderName::from_static("grpc-message"),
            HeaderName::from_static("grpc-status-details-bin"),
        ])
        .max_age(Duration::from_secs(24 * 3600))
}

/// A name for this replica in the change feed's reader list.
fn reader_id() -> String {
    let mut bytes = [0u8; 8];
    let _ = getrandom::fill(&mut bytes);
    let suffix: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("replica-{}-{suffix}", std::process::id())
}

/// Loads the catalogue's word index in the background (searches wait for
/// it), trying again after a failure (the database may be away a while).
async fn load_text_index(live: Arc<LiveModel>, store: Store) {
    loop {
        match live.load_text_index(&store).await {
            Ok(()) => return,
            Err(e) => {
                tracing::error!(error = ?e, "could not load the catalogue word index; trying again");
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        }
    }
}

/// Reads the most bought products' catalogue rows into the replica's
/// memory once, in the background: a replica just started serves its
/// first suggestions as one that has run for a while (a failure only
/// leaves the rows to be read when first asked for). A replica started
/// before any model was built does it when the first one arrives.
async fn warm_products(suggest: SuggestService) {
    while suggest.live().version() == 0 {
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let started = std::time::Instant::now();
    match suggest
        .warm_products(crate::suggest::limits::WARM_PRODUCTS)
        .await
    {
        Ok(rows) => tracing::info!(
            rows,
            secs = started.elapsed().as_secs_f64(),
            "catalogue rows of the most bought products read into memory"
        ),
        Err(e) => {
            tracing::warn!(error = ?e, "could not read the most bought products' catalogue rows ahead")
        }
    }
}

/// Builds the suggestion model from the whole history every `every`
/// (co-views, "also bought" and category transitions come only from
/// builds; "popular now" is recounted) and stores it; every replica loads
/// it through [`live::tail`]. Replicas share one schedule through the
/// database: each checks every few minutes, and the first to claim a due
/// build does it. The change feed keeps co-purchase counts and stock
/// current in between.
async fn rebuild_model_every(store: Store, config: ModelConfig, every: Duration) {
    let every_ms = i64::try_from(every.as_millis()).unwrap_or(i64::MAX);
    let check = every.min(Duration::from_secs(300));
    loop {
        match store
            .claim_rebuild(every_ms, crate::suggest::snapshot::FORMAT)
            .await
        {
            Ok(true) => {
                let started = std::time::Instant::now();
                match live::build_and_save(&store, &config).await {
                    Ok(s) => tracing::info!(
                        version = s.version,
                        orders = s.orders,
                        items = s.items,
                        partners = s.partners,
                        bytes = s.bytes,
                        secs = started.elapsed().as_secs_f64(),
                        "suggestion model built"
                    ),
                    Err(e) => tracing::error!(error = ?e, "rebuilding the suggestion model failed"),
                }
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(error = ?e, "could not check whether the model is due"),
        }
        tokio::time::sleep(check).await;
    }
}

/// Every minute: applies webhook deliveries a crash left unapplied, and
/// deletes deliveries past their retention (a bounded batch at a time).
async fn maintain_deliveries(connectors: crate::connect::Connectors, metrics: Arc<Metrics>) {
    loop {
        tokio::time::sleep(Duration::from_secs(60)).await;
        match connectors.maintain().await {
            Ok((0, 0)) => {}
            Ok((reapplied, deleted)) => {
                metrics.pruned("webhook_deliveries", deleted);
                tracing::info!(reapplied, deleted, "webhook deliveries maintained")
            }
            Err(e) => tracing::warn!(error = ?e, "maintaining webhook deliveries failed"),
        }
    }
}

/// How often a retention pass runs (its first a minute after start).
const PRUNE_EVERY: Duration = Duration::from_secs(600);

/// Deletes what is past its retention (see [`crate::retention`]), every
/// [`PRUNE_EVERY`]. Every replica runs it; on PostgreSQL their batches
/// take different rows.
async fn prune_every(store: Store, policy: crate::retention::Retention, metrics: Arc<Metrics>) {
    tokio::time::sleep(Duration::from_secs(60)).await;
    loop {
        let started = std::time::Instant::now();
        let each = |kind: crate::store::Aged, n| metrics.pruned(kind.as_str(), n);
        match crate::retention::prune(&store, &policy, crate::domain::Timestamp::now(), each).await
        {
            Ok(done) => {
                for p in done.iter().filter(|p| p.deleted > 0) {
                    tracing::info!(
                        kind = p.kind.as_str(),
                        deleted = p.deleted,
                        secs = started.elapsed().as_secs_f64(),
                        "retention pass"
                    );
                }
            }
            Err(e) => tracing::warn!(error = ?e, "a retention pass failed; the next one retries"),
        }
        tokio::time::sleep(PRUNE_EVERY).await;
    }
}

/// How often the database is pinged for the health service.
const HEALTH_EVERY: Duration = Duration::from_millis(200);
/// How long a ping may take before it counts as failed.
const HEALTH_WITHIN: Duration = Duration::from_millis(300);
/// Failed pings in a row that make the database unreachable (one slow
/// ping on a loaded machine is not an outage).
const HEALTH_FAILURES: u32 = 2;

/// Reports NOT_SERVING on the health service while the database does not
/// answer, so load balancers and Kubernetes probes route around us (and the
/// gate answers UNAVAILABLE at once instead of waiting for a connection):
/// after [`HEALTH_FAILURES`] failed pings, so within a second of an outage
/// (sooner when connections are refused or closed), and at the first ping
/// that succeeds after it.
async fn watch_database(store: Store, reporter: tonic_health::server::HealthReporter) {
    let mut healthy = true;
    let mut failures = 0;
    let mut ticks = tokio::time::interval(HEALTH_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        failures = if store.ping(HEALTH_WITHIN).await {
            0
        } else {
            failures + 1
        };
        let ok = failures < HEALTH_FAILURES;
        if ok != healthy {
            healthy = ok;
            store.set_reachable(ok);
            let status = if ok {
                ServingStatus::Serving
            } else {
                ServingStatus::NotServing
            };
            tracing::warn!(healthy = ok, "database health changed");
            for service in [
                "",
                "customer_context.v1.CustomerContextService",
                "customer_context.v1.IngestService",
                "customer_context.v1.PrivacyService",
                "customer_context.v1.StylistService",
            ] {
                reporter.set_service_status(service, status).await;
            }
        }
    }
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown signal received; finishing calls in flight");
}
