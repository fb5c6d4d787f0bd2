//! The command line: `serve`, `migrate`, `import`, `keys`, `context`.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};

use crate::{
    auth::GateConfig,
    domain::Role,
    proto::customer_ref::Identity,
    startup::{Application, ServeConfig, TlsFiles, shutdown_signal},
    store::{Store, StoreOptions, default_sqlite_path, sqlite_url},
    telemetry::{self, LogFormat},
};

/// The unified customer view for a retailer's support desk, over gRPC.
#[derive(Debug, Parser)]
#[command(name = "customer-context", version, about)]
pub struct Cli {
    /// How log lines are written (to stderr).
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "pretty",
        env = "LOG_FORMAT"
    )]
    pub log_format: LogFormat,
    /// The subcommand to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Where the data lives.
#[derive(Debug, Args, Clone)]
pub struct DatabaseArgs {
    /// Database URL: sqlite://PATH or postgres://USER@HOST/DB. Default: the
    /// embedded SQLite file in $XDG_DATA_HOME/customer-context/ (or
    /// ~/.local/share/customer-context/).
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<String>,
    /// Most database connections in the pool.
    #[arg(long, default_value_t = 8, env = "DATABASE_MAX_CONNECTIONS")]
    pub max_connections: u32,
    /// How long a call waits for a database connection, in ms: a busy pool
    /// answers RESOURCE_EXHAUSTED after it, an unreachable database
    /// UNAVAILABLE.
    #[arg(long, default_value_t = 250, env = "DATABASE_ACQUIRE_TIMEOUT_MS")]
    pub acquire_timeout_ms: u64,
}

impl DatabaseArgs {
    /// The URL to use, defaulting to the embedded SQLite file.
    pub fn url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| sqlite_url(&default_sqlite_path()))
    }

    fn options(&self) -> StoreOptions {
        StoreOptions {
            max_connections: self.max_connections,
            acquire_timeout: std::time::Duration::from_millis(self.acquire_timeout_ms.max(1)),
        }
    }

    async fn open(&self) -> anyhow::Result<Store> {
        let store = Store::connect(&self.url(), &self.options()).await?;
        store.migrate().await?;
        Ok(store)
    }
}

/// Where the bootstrap admin key is kept for the embedded default: beside
/// the database file, readable by its owner only.
pub fn bootstrap_key_path() -> PathBuf {
    default_sqlite_path().with_file_name("admin-key")
}

/// TLS and authentication of `serve`.
#[derive(Debug, Args, Clone)]
pub struct SecurityArgs {
    /// Serve TLS with this certificate chain (PEM); needs --tls-key.
    #[arg(long, env = "TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM).
    #[arg(long, env = "TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Require client certificates signed by this CA (mutual TLS).
    #[arg(long, env = "TLS_CLIENT_CA", requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,
    /// Development only: serve without API keys (refused unless listening
    /// on loopback).
    #[arg(long)]
    pub insecure_no_auth: bool,
    /// Unary calls running at once; more wait in a short queue.
    #[arg(long, default_value_t = 16, env = "MAX_RUNNING_CALLS")]
    pub max_running_calls: usize,
    /// Calls waiting for a place at once; more are refused at once with
    /// RESOURCE_EXHAUSTED.
    #[arg(long, default_value_t = 4096, env = "MAX_QUEUED_CALLS")]
    pub max_queued_calls: usize,
    /// Longest a call waits for a place, in ms (never past the caller's
    /// own deadline; a call whose deadline passed never starts).
    #[arg(long, default_value_t = 250, env = "MAX_QUEUE_WAIT_MS")]
    pub max_queue_wait_ms: u64,
    /// Streaming calls (StreamEvents, ExportCustomerData) open at once.
    #[arg(long, default_value_t = 256, env = "MAX_STREAMS")]
    pub max_streams: usize,
    /// Sustained calls per second per API key (0 = unlimited).
    #[arg(long, default_value_t = 200.0, env = "RATE_LIMIT_PER_KEY")]
    pub rate_limit_per_key: f64,
    /// Calls an API key may burst above its sustained rate.
    #[arg(long, default_value_t = 400.0, env = "RATE_BURST_PER_KEY")]
    pub rate_burst_per_key: f64,
}

/// `keys` subcommands.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key; its secret is printed once and never stored.
    Create {
        /// Role: agent, crm, stylist, ingest, privacy or admin.
        #[arg(long)]
        role: String,
        /// A name saying who uses it ("Zendesk sidebar", "OMS export").
        #[arg(long)]
        name: String,
        /// Which database.
        #[command(flatten)]
        db: DatabaseArgs,
    },
    /// List keys (ids, names, roles; never secrets).
    List {
        /// Which database.
        #[command(flatten)]
        db: DatabaseArgs,
    },
    /// Revoke a key by id; takes effect on the next call, on every replica.
    Revoke {
        /// The key id (the part after `cck_`, before the next `_`).
        key_id: String,
        /// Which database.
        #[command(flatten)]
        db: DatabaseArgs,
    },
}

/// Arguments of `import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    #[command(flatten)]
    files: crate::ingest::ImportFiles,
    #[command(flatten)]
    db: DatabaseArgs,
    #[command(flatten)]
    model: ModelArgs,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the gRPC API (with gRPC-Web, health and reflection).
    Serve {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:50051", env = "LISTEN")]
        listen: SocketAddr,
        /// Load the demo retailer first (skipped when already loaded).
        #[arg(long)]
        demo: bool,
        /// Which database.
        #[command(flatten)]
        db: DatabaseArgs,
        /// Keys, TLS and load limits.
        #[command(flatten)]
        security: SecurityArgs,
        /// Hours between full rebuilds of the suggestion model (co-views,
        /// category transitions, "popular now"); 0 turns them off. With
        /// several replicas, one of them rebuilds per period.
        #[arg(long, default_value_t = 6, env = "MODEL_REBUILD_HOURS")]
        model_rebuild_hours: u32,
        /// Styles returned within this many days are never suggested to
        /// that customer.
        #[arg(long, default_value_t = crate::suggest::SuggestConfig::default().return_window_days, env = "RETURN_WINDOW_DAYS")]
        return_window_days: u32,
        /// Personalise suggestions only for customers who granted the
        /// `personalised_suggestions` consent (opt-in); by default a
        /// customer with no record on file is personalised (opt-out).
        #[arg(long, env = "SUGGESTIONS_OPT_IN")]
        suggestions_opt_in: bool,
        /// How the suggestion model is built.
        #[command(flatten)]
        model: ModelArgs,
    },
    /// Apply database migrations and exit.
    Migrate {
        /// Which database.
        #[command(flatten)]
        db: DatabaseArgs,
    },
    /// Rewrite the tables that hold personal data so no erased value survives
    /// in the database files' free space (SQLite: VACUUM and a truncated
    /// log; PostgreSQL: VACUUM FULL of those tables, each locked while it is
    /// rewritten). Run it after erasures, at a quiet hour.
    Scrub {
        /// Which database.
        #[command(flatten)]
        db: DatabaseArgs,
    },
    /// Load a product catalog and Segment-style event files into the store.
    Import(ImportArgs),
    /// Write a generated retailer into the store, deterministic by seed,
    /// for benchmarks and load tests (then build the suggestion model).
    Generate(GenerateArgs),
    /// Manage API keys.
    Keys {
        /// What to do with keys.
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Print a customer's context from a running server.
    Context(ContextArgs),
    /// Build the suggestion model from the whole history and store it as
    /// the next version (every running replica loads it within seconds).
    RebuildModel {
        /// Which database.
        #[command(flatten)]
        db: DatabaseArgs,
        /// How the suggestion model is built.
        #[command(flatten)]
        model: ModelArgs,
    },
    /// Load a running server with the support desk's calls, each beside the
    /// health Check, and print calls/s and latency percentiles.
    Bench(BenchArgs),
    /// Evaluate suggestions offline on the stored order history: hold out
    /// each customer's last order, train on the rest, compare with a
    /// popularity baseline.
    Evaluate(EvaluateArgs),
    /// Measure size choice on generated shops: every customer has a true
    /// size per size domain and sometimes buys (and returns) the wrong one;
    /// prints the share of sized suggestions in the true size.
    EvaluateFit(EvaluateFitArgs),
}

/// Arguments of `generate`.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Customers with accounts.
    #[arg(long, default_value_t = 10_000)]
    pub customers: usize,
    /// Catalogue products (variants; rounded to whole styles).
    #[arg(long, default_value_t = 10_000)]
    pub products: usize,
    /// Browsing events, about (the total lands within a few percent).
    #[arg(long, default_value_t = 200_000)]
    pub events: usize,
    /// Same seed, same shop.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Customers with a very long history; default one per 200,000
    /// customers (at least one) when the events allow it.
    #[arg(long)]
    pub long_customers: Option<usize>,
    /// Events of each long history.
    #[arg(long, default_value_t = 100_000)]
    pub long_events: usize,
    /// Which database.
    #[command(flatten)]
    pub db: DatabaseArgs,
    /// How the suggestion model is built.
    #[command(flatten)]
    pub model: ModelArgs,
}

/// Arguments of `evaluate-fit`.
#[derive(Debug, Args)]
pub struct EvaluateFitArgs {
    /// Customers per generated shop.
    #[arg(long, default_value_t = 20_000)]
    pub customers: usize,
    /// Seeds: one generated shop each.
    #[arg(long, value_delimiter = ',', default_value = "1,2,3")]
    pub seeds: Vec<u64>,
    /// Share of purchases made in a size one off the true size.
    #[arg(long, default_value_t = 0.25)]
    pub wrong_size_share: f64,
}

/// Arguments of `bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Server address.
    #[arg(
        long,
        default_value = "http://127.0.0.1:50051",
        env = "CUSTOMER_CONTEXT_SERVER"
    )]
    pub server: String,
    /// API key (serve it with `--rate-limit-per-key 0`, or the per-key
    /// limit is what gets measured). Default: the embedded database's
    /// bootstrap admin key.
    #[arg(long, env = "CUSTOMER_CONTEXT_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// HTTP/2 connections.
    #[arg(long, default_value_t = 16)]
    pub connections: usize,
    /// Calls in flight at once, spread over the connections.
    #[arg(long, default_value_t = 256)]
    pub concurrency: usize,
    /// Seconds measured per phase.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Seconds of unmeasured load before each phase.
    #[arg(long, default_value_t = 2.0)]
    pub warmup: f64,
    /// The hot customer (default: the one with the most orders).
    #[arg(long)]
    pub hot: Option<String>,
    /// Customers drawn for the random phases (read from the database).
    #[arg(long, default_value_t = 1000)]
    pub random: usize,
    /// Exit with an error when any answer is not OK (for smoke runs).
    #[arg(long)]
    pub fail_on_errors: bool,
    /// Run the overload test instead: GetCustomerContext for random
    /// customers with 1 call in flight, with `--concurrency` (choose the
    /// saturating one) and with five times it.
    #[arg(long)]
    pub overload: bool,
    /// Run the ingestion test instead: StreamEvents events/s, RecordOrders
    /// lines/s, and live-update latency of WatchCustomerContext while
    /// events arrive at `--ingest-rate` per second.
    #[arg(long)]
    pub ingest: bool,
    /// Background events per second during the watch-latency phase.
    #[arg(long, default_value_t = 10_000.0)]
    pub ingest_rate: f64,
    /// Customers watched during the watch-latency phase.
    #[arg(long, default_value_t = 20)]
    pub watchers: usize,
    /// Run the cold-read test instead: each of the `--random` customers'
    /// first GetCustomerContext, read exactly once, at 1 call in flight and
    /// at `--concurrency` (start the server for the run: a customer read
    /// before is remembered).
    #[arg(long)]
    pub cold: bool,
    /// Also measure GetCustomerContext for customers with 10, 1,000 and
    /// 100,000 browsing events (written first through RecordEvents as
    /// `bench-history-N`; the key needs the ingest right).
    #[arg(long)]
    pub history: bool,
    /// The server's process id (same machine): its peak resident memory
    /// (VmHWM) is printed after the run.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// The server's database, read for customer (and product) ids only.
    #[command(flatten)]
    pub db: DatabaseArgs,
}

/// Arguments of `evaluate`.
#[derive(Debug, Args)]
pub struct EvaluateArgs {
    /// Items suggested per customer.
    #[arg(long, default_value_t = 10)]
    pub k: usize,
    /// Weight of complements (co-purchase neighbours of what was bought).
    #[arg(long, default_value_t = crate::suggest::Weights::default().complement)]
    pub complement: f32,
    /// Weight of popular items in the customer's categories.
    #[arg(long, default_value_t = crate::suggest::Weights::default().affinity)]
    pub affinity: f32,
    /// Weight of popular items overall.
    #[arg(long, default_value_t = crate::suggest::Weights::default().popular)]
    pub popular: f32,
    /// Most suggestions from one category.
    #[arg(long, default_value_t = crate::suggest::Weights::default().per_category)]
    pub per_category: usize,
    /// Extra weight of the last 3 orders' items as complement seeds.
    #[arg(long, default_value_t = crate::suggest::Weights::default().recent_boost)]
    pub recent_boost: f32,
    /// Weight of items bought by customers who bought the same products.
    #[arg(long, default_value_t = crate::suggest::Weights::default().also_bought)]
    pub also_bought: f32,
    /// Boost of category best-sellers by the customer's brand share.
    #[arg(long, default_value_t = crate::suggest::Weights::default().brand)]
    pub brand: f32,
    /// Weight of the new-category source.
    #[arg(long, default_value_t = crate::suggest::Weights::default().new_category)]
    pub new_category: f32,
    /// Score lost by items priced outside the customer's usual band (0-1).
    #[arg(long, default_value_t = crate::suggest::Weights::default().price_fit)]
    pub price_fit: f32,
    /// Splits to run: all, even, odd (each household number's parity).
    #[arg(long, value_delimiter = ',', default_value = "all,even,odd")]
    pub splits: Vec<String>,
    /// How the suggestion model is built.
    #[command(flatten)]
    pub model: ModelArgs,
    /// Which database.
    #[command(flatten)]
    pub db: DatabaseArgs,
}

/// How the suggestion model is built (the same on every replica).
#[derive(Debug, Clone, Args)]
pub struct ModelArgs {
    /// Top-level categories that are not merchandise and are never
    /// suggested (coupons, fees, fuel), comma-separated, matched without
    /// regard to case.
    #[arg(
        long,
        env = "NON_MERCHANDISE_CATEGORIES",
        value_delimiter = ',',
        default_values_t = crate::suggest::snapshot::DEFAULT_NON_MERCHANDISE.iter().map(|s| (*s).to_owned()).collect::<Vec<String>>()
    )]
    pub non_merchandise_categories: Vec<String>,
    /// Half-life in days of "popular now" (an order this much older than
    /// the newest counts half).
    #[arg(long, env = "POPULARITY_HALF_LIFE_DAYS", default_value_t = crate::suggest::ModelConfig::default().popularity_half_life_days)]
    pub popularity_half_life_days: f64,
}

impl Default for ModelArgs {
    fn default() -> Self {
        let c = crate::suggest::ModelConfig::default();
        Self {
            non_merchandise_categories: c.non_merchandise,
            popularity_half_life_days: c.popularity_half_life_days,
        }
    }
}

impl ModelArgs {
    /// The model configuration.
    pub fn config(&self) -> crate::suggest::ModelConfig {
        crate::suggest::ModelConfig {
            non_merchandise: self
                .non_merchandise_categories
                .iter()
                .map(|c| c.trim().to_owned())
                .filter(|c| !c.is_empty())
                .collect(),
            popularity_half_life_days: self.popularity_half_life_days,
        }
    }
}

/// Arguments of `context`.
#[derive(Debug, Args)]
pub struct ContextArgs {
    /// Server address (https://... for TLS).
    #[arg(
        long,
        default_value = "http://127.0.0.1:50051",
        env = "CUSTOMER_CONTEXT_SERVER"
    )]
    pub server: String,
    /// API key. Default: the bootstrap admin key of the embedded database,
    /// when present.
    #[arg(long, env = "CUSTOMER_CONTEXT_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// CA certificate (PEM) to trust for https servers.
    #[arg(long)]
    pub ca_cert: Option<PathBuf>,
    /// Client certificate (PEM) for mutual TLS; needs --client-key.
    #[arg(long, requires = "client_key")]
    pub client_cert: Option<PathBuf>,
    /// Client private key (PEM).
    #[arg(long, requires = "client_cert")]
    pub client_key: Option<PathBuf>,
    /// Look up by customer id.
    #[arg(long, group = "who")]
    pub customer_id: Option<String>,
    /// Look up by email.
    #[arg(long, group = "who")]
    pub email: Option<String>,
    /// Look up by phone.
    #[arg(long, group = "who")]
    pub phone: Option<String>,
    /// Look up by loyalty id.
    #[arg(long, group = "who")]
    pub loyalty_id: Option<String>,
    /// Look up by anonymous browser/device id.
    #[arg(long, group = "who")]
    pub anonymous_id: Option<String>,
    /// How far back to show browsing, orders and returns (days; 0 = the server default).
    #[arg(long, default_value_t = 0)]
    pub lookback_days: u32,
    /// Print the protobuf JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Writes the bootstrap key beside the embedded database, owner-only.
fn save_bootstrap_key(path: &Path, token: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    writeln!(file, "{token}")?;
    Ok(())
}

/// On a store without keys, creates the admin key and shows it once.
async fn bootstrap_admin_key(store: &Store, embedded: bool) -> anyhow::Result<()> {
    if !store.list_keys().await?.is_empty() {
        return Ok(());
    }
    let (key, token) = store.create_key("bootstrap admin", Role::Admin).await?;
    println!(
        "\nCreated the first API key (role admin, id {}). It is shown once:\n\n    {token}\n",
        key.key_id
    );
    if embedded {
        let path = bootstrap_key_path();
        save_bootstrap_key(&path, &token)?;
        println!(
            "It is also saved, readable by you only, in {}",
            path.display()
        );
        println!("(the `context` subcommand uses it when no --api-key is given).");
    }
    println!(
        "Create keys for each caller with `customer-context keys create --role agent --name NAME`.\n"
    );
    Ok(())
}

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    telemetry::init(cli.log_format);
    match cli.command {
        Command::Serve {
            listen,
            demo,
            db,
            security,
            model_rebuild_hours,
            return_window_days,
            suggestions_opt_in,
            model,
        } => {
            let url = db.url();
            let embedded = db.database_url.is_none();
            if embedded {
                tracing::info!(path = %default_sqlite_path().display(), "using the embedded SQLite database");
            }
            let tls = match (security.tls_cert, security.tls_key) {
                (Some(cert), Some(key)) => Some(TlsFiles {
                    cert,
                    key,
                    client_ca: security.tls_client_ca,
                }),
                _ => None,
            };
            let gate = GateConfig {
                auth: !security.insecure_no_auth,
                max_running: security.max_running_calls,
                max_queued: security.max_queued_calls,
                max_queue_wait: std::time::Duration::from_millis(security.max_queue_wait_ms),
                max_streams: security.max_streams,
                rate_per_key: security.rate_limit_per_key,
                burst_per_key: security.rate_burst_per_key,
            };
            if demo {
                let store = db.open().await?;
                crate::demo::load(&store, &model.config())
                    .await
                    .context("loading the demo data")?;
                store.close().await;
            }
            let config = ServeConfig {
                listen,
                database_url: url,
                store: db.options(),
                gate,
                tls,
                suggest: crate::suggest::SuggestConfig {
                    return_window_days,
                    personalise_without_consent: !suggestions_opt_in,
                },
                model_rebuild_every: (model_rebuild_hours > 0)
                    .then(|| std::time::Duration::from_secs(u64::from(model_rebuild_hours) * 3600)),
                model: model.config(),
            };
            let app = Application::build(&config).await?;
            if config.gate.auth {
                bootstrap_admin_key(app.store(), embedded).await?;
            }
            app.run_until_stopped(shutdown_signal()).await
        }
        Command::Migrate { db } => {
            let store = db.open().await?;
            store.close().await;
            tracing::info!("migrations applied");
            Ok(())
        }
        Command::Scrub { db } => {
            let store = db.open().await?;
            let started = std::time::Instant::now();
            let tables = store
                .scrub()
                .await
                .map_err(|e| anyhow::anyhow!("scrubbing the database: {e:?}"))?;
            store.close().await;
            tracing::info!(
                tables = tables.len(),
                secs = started.elapsed().as_secs_f64(),
                "tables holding personal data rewritten"
            );
            Ok(())
        }
        Command::Import(args) => {
            let store = Store::connect(&args.db.url(), &args.db.options()).await?;
            store.migrate().await?;
            let mut result = crate::ingest::run_import(&store, &args.files).await;
            if result.is_ok() {
                result = refresh_statistics(&store).await;
            }
            if result.is_ok() && !args.files.events.is_empty() {
                result = rebuild_model(&store, &args.model.config()).await;
            }
            store.close().await;
            result
        }
        Command::Generate(args) => {
            let store = args.db.open().await?;
            let mut plan =
                crate::generate::Plan::new(args.seed, args.customers, args.products, args.events);
            plan.long_events = args.long_events;
            if let Some(n) = args.long_customers {
                plan.long_customers = n.min(args.customers);
            }
            let mut result = generate(&store, &plan).await;
            if result.is_ok() {
                result = refresh_statistics(&store).await;
            }
            if result.is_ok() {
                result = rebuild_model(&store, &args.model.config()).await;
            }
            store.close().await;
            result
        }
        Command::RebuildModel { db, model } => {
            let store = db.open().await?;
            let result = rebuild_model(&store, &model.config()).await;
            store.close().await;
            result
        }
        Command::Keys { command } => {
            let db = match &command {
                KeysCommand::Create { db, .. }
                | KeysCommand::List { db }
                | KeysCommand::Revoke { db, .. } => db,
            };
            let store = db.open().await?;
            let result = keys(&store, command).await;
            store.close().await;
            result
        }
        Command::Context(args) => context(args).await,
        Command::Evaluate(args) => evaluate(args).await,
        Command::EvaluateFit(args) => {
            evaluate_fit(&args);
            Ok(())
        }
        Command::Bench(args) => bench(args).await,
    }
}

async fn generate(store: &Store, plan: &crate::generate::Plan) -> anyhow::Result<()> {
    let total = plan.customers.max(1);
    let w = crate::generate::write(store, plan, crate::domain::Timestamp::now(), |w, secs| {
        if w.customers % 50_000 < 500 || w.customers == total {
            eprintln!(
                "{} of {total} customers, {} events, {} orders in {secs:.0} s",
                w.customers, w.events, w.orders
            );
        }
    })
    .await
    .map_err(|e| anyhow::anyhow!("writing the generated shop: {e:?}"))?;
    println!(
        "generated (seed {}): {} products, {} customers, {} events, {} orders, {} returns, {} tickets; {} rejected",
        plan.seed, w.products, w.customers, w.events, w.orders, w.returns, w.tickets, w.rejected
    );
    anyhow::ensure!(
        w.rejected == 0,
        "the store rejected {} generated items",
        w.rejected
    );
    Ok(())
}

async fn refresh_statistics(store: &Store) -> anyhow::Result<()> {
    store
        .refresh_statistics()
        .await
        .map_err(|e| anyhow::anyhow!("refreshing the planner's statistics: {e:?}"))
}

async fn rebuild_model(store: &Store, config: &crate::suggest::ModelConfig) -> anyhow::Result<()> {
    let m = crate::suggest::live::build_and_save(store, config)
        .await
        .map_err(|e| anyhow::anyhow!("building the suggestion model: {e:?}"))?;
    println!(
        "suggestion model version {} built from {} orders: {} items, {} bought-together partners, \
         {:.1} MiB stored; read {:.1}s, build {:.1}s, store {:.1}s",
        m.version,
        m.orders,
        m.items,
        m.partners,
        m.bytes as f64 / (1024.0 * 1024.0),
        m.read_secs,
        m.build_secs,
        m.store_secs
    );
    Ok(())
}

async fn keys(store: &Store, command: KeysCommand) -> anyhow::Result<()> {
    match command {
        KeysCommand::Create { role, name, db: _ } => {
            let role = Role::parse(&role).map_err(anyhow::Error::msg)?;
            let name = crate::domain::bounded_text(&name, crate::domain::MAX_NAME_LEN, true)
                .map_err(|e| anyhow::anyhow!("--name {e}"))?;
            let (key, token) = store.create_key(&name, role).await?;
            eprintln!(
                "created key {} ({}, role {}); the secret is shown once:",
                key.key_id, key.name, key.role
            );
            println!("{token}");
        }
        KeysCommand::List { db: _ } => {
            println!(
                "{:<14} {:<9} {:<8} {:<26} name",
                "key id", "role", "state", "created"
            );
            for k in store.list_keys().await? {
                let state = if k.revoked { "revoked" } else { "active" };
                println!(
                    "{:<14} {:<9} {:<8} {:<26} {}",
                    k.key_id,
                    k.role.as_str(),
                    state,
                    k.created_at.to_rfc3339(),
                    k.name
                );
            }
        }
        KeysCommand::Revoke { key_id, db: _ } => {
            if store.revoke_key(key_id.trim()).await? {
                println!("revoked {key_id}");
            } else {
                anyhow::bail!("no active key with id {key_id}");
            }
        }
    }
    Ok(())
}

async fn context(args: ContextArgs) -> anyhow::Result<()> {
    let ContextArgs {
        server,
        api_key,
        ca_cert,
        client_cert,
        client_key,
        customer_id,
        email,
        phone,
        loyalty_id,
        anonymous_id,
        lookback_days,
        json,
    } = args;
    let identity = match (customer_id, email, phone, loyalty_id, anonymous_id) {
        (Some(v), ..) => Identity::CustomerId(v),
        (_, Some(v), ..) => Identity::Email(v),
        (_, _, Some(v), ..) => Identity::Phone(v),
        (_, _, _, Some(v), _) => Identity::LoyaltyId(v),
        (_, _, _, _, Some(v)) => Identity::AnonymousId(v),
        _ => anyhow::bail!(
            "say who: --customer-id, --email, --phone, --loyalty-id or --anonymous-id"
        ),
    };
    let api_key = match api_key {
        Some(k) => Some(k),
        None => std::fs::read_to_string(bootstrap_key_path())
            .ok()
            .map(|k| k.trim().to_owned()),
    };
    let connection = crate::client::Connection {
        server: server.clone(),
        api_key,
        ca_cert: ca_cert
            .map(std::fs::read)
            .transpose()
            .context("reading --ca-cert")?,
        client_identity: match (client_cert, client_key) {
            (Some(c), Some(k)) => Some((
                std::fs::read(c).context("reading --client-cert")?,
                std::fs::read(k).context("reading --client-key")?,
            )),
            _ => None,
        },
    };
    let request = crate::client::request(identity, lookback_days);
    let context = tokio::time::timeout(
        Duration::from_secs(30),
        crate::client::fetch(&connection, request),
    )
    .await
    .map_err(|_| anyhow::anyhow!("no answer from {server} within 30 s"))??;
    if json {
        println!("{}", crate::client::to_json(&context)?);
    } else {
        print!("{}", crate::client::to_text(&context));
    }
    Ok(())
}

async fn bench(args: BenchArgs) -> anyhow::Result<()> {
    let store = args.db.open().await?;
    let (hot, random) = store
        .bench_customers(args.random)
        .await
        .map_err(|e| anyhow::anyhow!("reading customer ids: {e:?}"))?;
    let products = if args.ingest || args.history {
        store
            .bench_products(1000)
            .await
            .map_err(|e| anyhow::anyhow!("reading product ids: {e:?}"))?
    } else {
        Vec::new()
    };
    store.close().await;
    let hot = args
        .hot
        .or(hot)
        .ok_or_else(|| anyhow::anyhow!("the database has no customers to ask about"))?;
    let api_key = args.api_key.or_else(|| {
        std::fs::read_to_string(bootstrap_key_path())
            .ok()
            .map(|k| k.trim().to_owned())
    });
    let mut config = crate::bench::BenchConfig {
        server: args.server,
        api_key,
        connections: args.connections,
        concurrency: args.concurrency,
        duration: std::time::Duration::from_secs_f64(args.duration.max(0.1)),
        warmup: std::time::Duration::from_secs_f64(args.warmup.max(0.0)),
        hot,
        random: if random.is_empty() { vec![] } else { random },
        by_history: Vec::new(),
    };
    if args.history {
        config.by_history = crate::bench::prepare_histories(&config, &products).await?;
    }
    println!(
        "{} connections, {} calls in flight, {:.0} s per phase after {:.0} s warm-up; {} random customers",
        config.connections,
        config.concurrency,
        config.duration.as_secs_f64(),
        config.warmup.as_secs_f64(),
        config.random.len()
    );
    if args.ingest {
        let report =
            crate::bench::ingest(&config, &products, args.watchers, args.ingest_rate).await?;
        print!("{}", crate::bench::ingest_table(&report));
        if let Some(pid) = args.server_pid {
            println!("{}", crate::bench::peak_memory(pid)?);
        }
        if args.fail_on_errors && (report.missed > 0 || report.watch_ms.3 == 0) {
            anyhow::bail!("{} live updates never arrived", report.missed);
        }
        return Ok(());
    }
    if args.cold {
        let report = crate::bench::cold(&config).await?;
        print!("{}", crate::bench::cold_table(&report));
        if let Some(pid) = args.server_pid {
            println!("{}", crate::bench::peak_memory(pid)?);
        }
        let failed = [&report.single, &report.saturated]
            .iter()
            .flat_map(|r| r.codes.iter())
            .filter(|(code, _)| code.as_str() != "Ok")
            .map(|(_, n)| n)
            .sum::<u64>();
        if args.fail_on_errors && failed > 0 {
            anyhow::bail!("{failed} first reads were not answered OK");
        }
        return Ok(());
    }
    if args.overload {
        let report = crate::bench::overload(&config).await?;
        print!("{}", crate::bench::overload_table(&report));
        if let Some(pid) = args.server_pid {
            println!("{}", crate::bench::peak_memory(pid)?);
        }
        return Ok(());
    }
    let reports = crate::bench::run(&config).await?;
    print!("{}", crate::bench::table(&reports));
    if let Some(pid) = args.server_pid {
        println!("{}", crate::bench::peak_memory(pid)?);
    }
    let failed: u64 = reports
        .iter()
        .flat_map(|r| r.codes.iter())
        .filter(|(code, _)| code.as_str() != "Ok")
        .map(|(_, n)| n)
        .sum();
    if args.fail_on_errors && failed > 0 {
        anyhow::bail!("{failed} calls were not answered OK");
    }
    Ok(())
}

fn evaluate_fit(args: &EvaluateFitArgs) {
    use crate::suggest::evaluate_fit::{FitEvalConfig, evaluate_fit};
    println!(
        "{} customers per shop, {:.0}% of purchases in a wrong size; sized suggestions (10 per customer)",
        args.customers,
        args.wrong_size_share * 100.0
    );
    println!("seed  kept in domain  offered in a size  in the true size  share    size unknown");
    for &seed in &args.seeds {
        let started = std::time::Instant::now();
        let r = evaluate_fit(&FitEvalConfig {
            customers: args.customers,
            seed,
            wrong_size_share: args.wrong_size_share,
        });
        for (k, b) in r.by_kept.iter().enumerate() {
            let kept = ["0", "1", "2+"][k];
            let share = b.in_true_size as f64 / b.offered.max(1) as f64 * 100.0;
            println!(
                "{seed:<5} {kept:<15} {:<18} {:<17} {share:>5.1} %  {}",
                b.offered, b.in_true_size, b.unknown
            );
        }
        println!(
            "{seed:<5} (not sized: {}; {:.1}s)",
            r.not_sized,
            started.elapsed().as_secs_f64()
        );
    }
}

async fn evaluate(args: EvaluateArgs) -> anyhow::Result<()> {
    use crate::suggest::evaluate::{Split, evaluate};
    let splits = args
        .splits
        .iter()
        .map(|s| match s.trim() {
            "all" => Ok(Split::All),
            "even" => Ok(Split::Even),
            "odd" => Ok(Split::Odd),
            other => Err(anyhow::anyhow!(
                "unknown split {other:?}: use all, even or odd"
            )),
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let store = args.db.open().await?;
    let started = std::time::Instant::now();
    let inputs = std::sync::Arc::new(
        store
            .model_inputs(crate::domain::Timestamp::MIN)
            .await
            .map_err(|e| anyhow::anyhow!("reading the history: {e:?}"))?,
    );
    store.close().await;
    println!("history read in {:.1}s", started.elapsed().as_secs_f64());
    let weights = crate::suggest::Weights {
        complement: args.complement,
        also_bought: args.also_bought,
        affinity: args.affinity,
        popular: args.popular,
        per_category: args.per_category,
        recent_boost: args.recent_boost,
        new_category: args.new_category,
        brand: args.brand,
        price_fit: args.price_fit,
        ..crate::suggest::Weights::default()
    };
    let k = args.k;
    println!(
        "{:<16} {:>9} {:>12} {:>10} {:>10} {:>8} {:>11} {:>11}",
        "split",
        "evaluated",
        "method",
        format!("HitRate@{k}"),
        format!("NDCG@{k}"),
        "coverage",
        "violations",
        "vs popular"
    );
    let mut violations = 0;
    for split in splits {
        let (inputs, config, weights) = (inputs.clone(), args.model.config(), weights.clone());
        let r = tokio::task::spawn_blocking(move || evaluate(&inputs, &config, &weights, k, split))
            .await?;
        let base = r.popularity.hit_rate.max(1e-9);
        for (name, s) in [
            ("ranker", &r.ranker),
            ("popularity", &r.popularity),
            ("popular now", &r.popular_now),
        ] {
            println!(
                "{:<16} {:>9} {name:>12} {:>10.4} {:>10.4} {:>8.4} {:>11} {:>10.2}x",
                split.name(),
                r.customers,
                s.hit_rate,
                s.ndcg,
                s.coverage,
                s.violations,
                s.hit_rate / base
            );
            violations += s.violations;
        }
        println!(
            "{:<16} ({} with 2+ orders, {} training orders, {} suggestable items; build {:.1}s, score {:.1}s)",
            "", r.with_two_orders, r.train_orders, r.suggestable, r.train_secs, r.score_secs
        );
    }
    if violations > 0 {
        anyhow::bail!("suggestions broke a hard filter");
    }
    Ok(())
}
