//! Starts the real server on 127.0.0.1:0 against a fresh database of either
//! backend, and hands out generated clients.

use std::sync::atomic::{AtomicU32, Ordering};

use customer_context::{
    auth::GateConfig,
    domain::Role,
    proto::{
        customer_context_service_client::CustomerContextServiceClient,
        ingest_service_client::IngestServiceClient, privacy_service_client::PrivacyServiceClient,
        stylist_service_client::StylistServiceClient,
    },
    startup::{Application, ServeConfig, TlsFiles},
    store::{Store, StoreOptions, sqlite_url},
    suggest::SuggestConfig,
};
use sqlx::{Connection, Executor};
use tonic::{
    codegen::InterceptedService,
    metadata::{Ascii, MetadataValue},
    service::Interceptor,
    transport::Channel,
};

/// Adds `authorization: Bearer <key>` to every call (or nothing).
#[derive(Clone)]
pub struct Key(Option<MetadataValue<Ascii>>);

impl Key {
    pub fn bearer(token: &str) -> Self {
        Key(Some(
            format!("Bearer {token}").parse().expect("ascii metadata"),
        ))
    }

    pub fn none() -> Self {
        Key(None)
    }
}

impl Interceptor for Key {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(v) = &self.0 {
            request.metadata_mut().insert("authorization", v.clone());
        }
        Ok(request)
    }
}

pub type Ingest = IngestServiceClient<InterceptedService<Channel, Key>>;
pub type Context = CustomerContextServiceClient<InterceptedService<Channel, Key>>;
pub type Privacy = PrivacyServiceClient<InterceptedService<Channel, Key>>;
pub type Stylist = StylistServiceClient<InterceptedService<Channel, Key>>;

/// Which database a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A server running as its own process; killed on drop.
pub struct ReplicaProcess(std::process::Child, pub String);

impl ReplicaProcess {
    /// The address it serves on.
    pub fn addr(&self) -> &str {
        &self.1
    }
}

impl Drop for ReplicaProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A running server with its clients (authenticated with an admin key).
pub struct TestApp {
    pub addr: std::net::SocketAddr,
    pub channel: Channel,
    pub ingest: Ingest,
    pub context: Context,
    pub privacy: Privacy,
    pub store: Store,
    pub database_url: String,
    _db: DbGuard,
}

impl TestApp {
    /// Builds and stores a suggestion model, as `rebuild-model` does.
    pub async fn rebuild_model(
        &self,
    ) -> Result<customer_context::suggest::live::BuildSummary, customer_context::domain::Error>
    {
        customer_context::suggest::live::build_and_save(
            &self.store,
            &customer_context::suggest::ModelConfig::default(),
        )
        .await
    }

    /// A second replica's view of the model: a fresh live model over the
    /// same database, caught up with the newest snapshot and the feed.
    pub async fn replica_model(&self) -> customer_context::suggest::LiveModel {
        let live = customer_context::suggest::LiveModel::new(
            customer_context::suggest::ModelConfig::default(),
        );
        live.catch_up(&self.store).await.expect("caught up");
        live
    }

    /// Another serving replica on the same database (its own process
    /// state: model, caches, connections), with admin clients.
    pub async fn replica(&self) -> (Ingest, Context) {
        let config = ServeConfig {
            listen: "127.0.0.1:0".parse().expect("an address"),
            database_url: self.database_url.clone(),
            store: StoreOptions::default(),
            gate: GateConfig::default(),
            tls: None,
            suggest: SuggestConfig::default(),
            model_rebuild_every: None,
            model: customer_context::suggest::ModelConfig::default(),
            customer_memory: customer_context::suggest::memo::CUSTOMER_BYTES,
            connectors: Default::default(),
            frame_origins: Vec::new(),
            retention: Default::default(),
        };
        let app = Application::build(&config).await.expect("a replica builds");
        let addr = app.local_addr();
        tokio::spawn(app.run_until_stopped(std::future::pending()));
        let channel = Channel::from_shared(format!("http://{addr}"))
            .expect("a URI")
            .connect()
            .await
            .expect("connecting");
        let admin = Key::bearer(
            &self
                .store
                .create_key("replica admin", Role::Admin)
                .await
                .expect("a key")
                .1,
        );
        (
            IngestServiceClient::with_interceptor(channel.clone(), admin.clone()),
            CustomerContextServiceClient::with_interceptor(channel, admin),
        )
    }

    /// Another replica as its own operating-system process: the
    /// `customer-context serve` binary on the same database, on a port of
    /// its own (read from its first log line), with admin clients. The
    /// process is killed when the returned guard drops.
    pub async fn replica_process(&self) -> (ReplicaProcess, Ingest, Context) {
        self.replica_process_with(&[]).await
    }

    /// [`Self::replica_process`] with more `serve` arguments.
    pub async fn replica_process_with(&self, extra: &[&str]) -> (ReplicaProcess, Ingest, Context) {
        use std::io::BufRead as _;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_customer-context"))
            .args(["--log-format", "json", "serve", "--listen", "127.0.0.1:0"])
            .args([
                "--model-rebuild-hours",
                "0",
                "--database-url",
                &self.database_url,
            ])
            .args(extra)
            .env_remove("RUST_LOG")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("the server binary starts");
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let addr = serde_json::from_str::<serde_json::Value>(&line)
                    .ok()
                    .and_then(|v| v.get("addr")?.as_str().map(str::to_owned));
                // Lines before the one naming the address (a model loaded)
                // must not drop the sender.
                if let Some(addr) = addr
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(addr);
                }
            }
        });
        let mut process = ReplicaProcess(child, String::new());
        let addr = tokio::task::spawn_blocking(move || {
            rx.recv_timeout(std::time::Duration::from_secs(60))
        })
        .await
        .expect("joined")
        .expect("the replica process logs the address it serves on");
        process.1 = addr.clone();
        let channel = Channel::from_shared(format!("http://{addr}"))
            .expect("a URI")
            .connect()
            .await
            .expect("connecting to the replica process");
        let admin = Key::bearer(
            &self
                .store
                .create_key("replica process admin", Role::Admin)
                .await
                .expect("a key")
                .1,
        );
        (
            process,
            IngestServiceClient::with_interceptor(channel.clone(), admin.clone()),
            CustomerContextServiceClient::with_interceptor(channel, admin),
        )
    }

    /// A new key with `role`.
    pub async fn key(&self, role: Role) -> String {
        self.store
            .create_key(&format!("test {role}"), role)
            .await
            .expect("a key")
            .1
    }

    pub fn ingest_as(&self, key: Key) -> Ingest {
        IngestServiceClient::with_interceptor(self.channel.clone(), key)
    }

    pub fn context_as(&self, key: Key) -> Context {
        CustomerContextServiceClient::with_interceptor(self.channel.clone(), key)
    }

    pub fn privacy_as(&self, key: Key) -> Privacy {
        PrivacyServiceClient::with_interceptor(self.channel.clone(), key)
    }

    pub fn stylist_as(&self, key: Key) -> Stylist {
        StylistServiceClient::with_interceptor(self.channel.clone(), key)
    }

    /// A stylist's client (a new `stylist` key).
    pub async fn stylist(&self) -> Stylist {
        self.stylist_as(Key::bearer(&self.key(Role::Stylist).await))
    }
}

pub enum DbGuard {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres { admin_url: String, name: String },
}

impl Drop for DbGuard {
    fn drop(&mut self) {
        if let DbGuard::Postgres { admin_url, name } = self {
            let (admin_url, name) = (admin_url.clone(), name.clone());
            // Drop runs inside the test's runtime: use a thread with its own.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .ok()?;
                rt.block_on(async {
                    let mut conn = sqlx::PgConnection::connect(&admin_url).await.ok()?;
                    conn.execute(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )))
                    .await
                    .ok()
                })
            })
            .join();
        }
    }
}

/// The PostgreSQL server tests use (a database is created per test).
pub fn postgres_admin_url() -> String {
    std::env::var("CC_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

fn postgres_required() -> bool {
    std::env::var("CC_REQUIRE_POSTGRES").is_ok_and(|v| v == "1" || v == "true")
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A fresh, migrated database. `None` (after a loud message) when the
/// backend is PostgreSQL and no server answers, unless CC_REQUIRE_POSTGRES
/// is set, in which case the test fails.
pub async fn fresh_database(backend: Backend) -> Option<(String, DbGuard)> {
    match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().expect("a temp dir");
            let url = sqlite_url(&dir.path().join("test.db"));
            Some((url, DbGuard::Sqlite(dir)))
        }
        Backend::Postgres => {
            let admin_url = postgres_admin_url();
            let mut admin = match sqlx::PgConnection::connect(&admin_url).await {
                Ok(c) => c,
                Err(e) => {
                    if postgres_required() {
                        panic!(
                            "PostgreSQL is required (CC_REQUIRE_POSTGRES) but {admin_url} is unreachable: {e}"
                        );
                    }
                    eprintln!(
                        "\n*** SKIPPED: PostgreSQL test (no server at {admin_url}: {e}). \
                         Start PostgreSQL or set CC_TEST_POSTGRES_URL; CI sets CC_REQUIRE_POSTGRES=1. ***\n"
                    );
                    return None;
                }
            };
            let n = COUNTER.fetch_add(1, Ordering::SeqCst);
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
            let name = format!("cc_test_{}_{}_{}", std::process::id(), n, nanos);
            admin
                .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .await
                .expect("creating a test database");
            let url = match admin_url.rsplit_once('/') {
                Some((base, _)) => format!("{base}/{name}"),
                None => panic!("CC_TEST_POSTGRES_URL must end with /DATABASE"),
            };
            Some((url, DbGuard::Postgres { admin_url, name }))
        }
    }
}

/// The demo retailer loaded into the (migrated) database at `url`.
pub async fn demo_store(url: &str) -> Store {
    let store = Store::connect(url, &StoreOptions::default())
        .await
        .expect("the database opens");
    store.migrate().await.expect("migrations apply");
    customer_context::demo::load(&store, &Default::default())
        .await
        .expect("the demo loads");
    store
}

/// Starts a server on a fresh database; `None` when the backend is skipped.
pub async fn spawn_app(backend: Backend) -> Option<TestApp> {
    spawn_app_with(backend, false).await
}

/// Like [`spawn_app`], optionally loading the demo retailer first.
pub async fn spawn_app_with(backend: Backend, demo: bool) -> Option<TestApp> {
    spawn_configured(backend, demo, GateConfig::default(), None).await
}

/// A server with the given gate and TLS settings. With TLS the returned
/// channel is not connected (the test connects its own).
pub async fn spawn_configured(
    backend: Backend,
    demo: bool,
    gate: GateConfig,
    tls: Option<TlsFiles>,
) -> Option<TestApp> {
    spawn_full(backend, demo, gate, tls, SuggestConfig::default()).await
}

/// A server with the given suggestion settings.
pub async fn spawn_with_suggest(backend: Backend, suggest: SuggestConfig) -> Option<TestApp> {
    spawn_full(backend, false, GateConfig::default(), None, suggest).await
}

/// A server whose database URL is `reach(url)` (for example through a
/// proxy the test controls); the app's `database_url` stays the real one.
pub async fn spawn_reaching(
    backend: Backend,
    reach: impl FnOnce(&str) -> String,
) -> Option<TestApp> {
    spawn_inner(backend, Setup::default(), reach).await
}

/// A server whose webhook receivers have these secrets.
pub async fn spawn_with_connectors(
    backend: Backend,
    connectors: customer_context::connect::ConnectorConfig,
) -> Option<TestApp> {
    let setup = Setup {
        connectors,
        ..Setup::default()
    };
    spawn_inner(backend, setup, str::to_owned).await
}

/// A server that lets `origins` frame the sidebar.
pub async fn spawn_framed(backend: Backend, origins: Vec<String>) -> Option<TestApp> {
    let setup = Setup {
        frame_origins: origins,
        ..Setup::default()
    };
    spawn_inner(backend, setup, str::to_owned).await
}

async fn spawn_full(
    backend: Backend,
    demo: bool,
    gate: GateConfig,
    tls: Option<TlsFiles>,
    suggest: SuggestConfig,
) -> Option<TestApp> {
    let setup = Setup {
        demo,
        gate,
        tls,
        suggest,
        ..Setup::default()
    };
    spawn_inner(backend, setup, str::to_owned).await
}

/// What a test server is started with.
#[derive(Default)]
struct Setup {
    demo: bool,
    gate: GateConfig,
    tls: Option<TlsFiles>,
    suggest: SuggestConfig,
    connectors: customer_context::connect::ConnectorConfig,
    frame_origins: Vec<String>,
}

async fn spawn_inner(
    backend: Backend,
    setup: Setup,
    reach: impl FnOnce(&str) -> String,
) -> Option<TestApp> {
    let Setup {
        demo,
        gate,
        tls,
        suggest,
        connectors,
        frame_origins,
    } = setup;
    let (database_url, guard) = fresh_database(backend).await?;
    let with_tls = tls.is_some();
    if demo {
        demo_store(&database_url).await.close().await;
    }
    let config = ServeConfig {
        listen: "127.0.0.1:0".parse().expect("an address"),
        database_url: reach(&database_url),
        store: StoreOptions::default(),
        gate,
        tls,
        suggest,
        model_rebuild_every: None,
        model: customer_context::suggest::ModelConfig::default(),
        customer_memory: customer_context::suggest::memo::CUSTOMER_BYTES,
        connectors,
        frame_origins,
        retention: Default::default(),
    };
    let app = Application::build(&config)
        .await
        .expect("the application builds");
    let addr = app.local_addr();
    let store = app.store().clone();
    tokio::spawn(app.run_until_stopped(std::future::pending()));
    let endpoint = Channel::from_shared(format!("http://{addr}")).expect("a URI");
    let channel = if with_tls {
        endpoint.connect_lazy()
    } else {
        endpoint.connect().await.expect("connecting")
    };
    let admin = Key::bearer(
        &store
            .create_key("test admin", Role::Admin)
            .await
            .expect("a key")
            .1,
    );
    Some(TestApp {
        addr,
        ingest: IngestServiceClient::with_interceptor(channel.clone(), admin.clone()),
        context: CustomerContextServiceClient::with_interceptor(channel.clone(), admin.clone()),
        privacy: PrivacyServiceClient::with_interceptor(channel.clone(), admin),
        channel,
        store,
        database_url,
        _db: guard,
    })
}

/// Generates one `#[tokio::test]` per backend for each named async test
/// function taking a [`Backend`].
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::harness::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::harness::Backend::Postgres).await
                }
            )*
        }
    };
}
