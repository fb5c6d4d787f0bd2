//! The command line, one file per subcommand: `serve` ([`serve`]),
//! `keys`, `import` / `generate` / `migrate` / `scrub` ([`data`]),
//! `prune` / `backup` / `restore` / `replay-erasures` ([`ops`]), the
//! `context` client, `bench`, and the offline evaluators. This file holds
//! what they share: the database and model arguments and the dispatch.

mod bench;
mod context;
mod data;
mod evaluate;
mod keys;
mod ops;
mod serve;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::{
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

/// Least time a one-shot command waits for a database connection.
const ONE_SHOT_ACQUIRE: std::time::Duration = std::time::Duration::from_secs(10);

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
    /// UNAVAILABLE. One-shot commands (import, generate, rebuild-model, …)
    /// wait at least 10 s: they have no caller to answer quickly.
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

    /// The store for a one-shot command, migrated: it waits for its own
    /// connections (a long model build holds one while it writes) rather
    /// than giving up as a serving call does.
    async fn open(&self) -> anyhow::Result<Store> {
        let mut options = self.options();
        options.acquire_timeout = options.acquire_timeout.max(ONE_SHOT_ACQUIRE);
        let store = Store::connect(&self.url(), &options).await?;
        store.migrate().await?;
        Ok(store)
    }
}

/// Where the bootstrap admin key is kept for the embedded default: beside
/// the database file, readable by its owner only.
pub fn bootstrap_key_path() -> PathBuf {
    default_sqlite_path().with_file_name("admin-key")
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the gRPC API (with gRPC-Web, health and reflection).
    Serve(serve::ServeArgs),
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
    /// Delete now what is past its retention (the service does it every
    /// ten minutes with the same settings), and print what went.
    Prune {
        /// Which database.
        #[command(flatten)]
        db: DatabaseArgs,
        /// How long each kind is kept.
        #[command(flatten)]
        retention: ops::RetentionArgs,
    },
    /// Write a consistent copy of the embedded SQLite database to a new
    /// file, while the service serves (PostgreSQL: use pg_dump).
    Backup {
        /// Which database.
        #[command(flatten)]
        db: DatabaseArgs,
        /// The file to write (must not exist).
        #[arg(long)]
        to: PathBuf,
    },
    /// Replace the embedded SQLite database with a backup, the service
    /// stopped: the copy is checked and migrated, and the erasures made
    /// since it was taken are replayed onto it.
    Restore {
        /// Which database to replace.
        #[command(flatten)]
        db: DatabaseArgs,
        /// The backup file.
        #[arg(long)]
        from: PathBuf,
    },
    /// Erase again, in this database, every customer erased in another
    /// (newer) database of the same deployment: after restoring a
    /// PostgreSQL dump.
    ReplayErasures {
        /// The database to erase in.
        #[command(flatten)]
        db: DatabaseArgs,
        /// The database whose erasures are replayed (its URL).
        #[arg(long)]
        from: String,
    },
    /// Load a product catalog and Segment-style event files into the store.
    Import(data::ImportArgs),
    /// Write a generated retailer into the store, deterministic by seed,
    /// for benchmarks and load tests (then build the suggestion model).
    Generate(data::GenerateArgs),
    /// Manage API keys.
    Keys {
        /// What to do with keys.
        #[command(subcommand)]
        command: keys::KeysCommand,
    },
    /// Print a customer's context from a running server.
    Context(context::ContextArgs),
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
    Bench(bench::BenchArgs),
    /// Evaluate suggestions offline on the stored order history: hold out
    /// each customer's last order, train on the rest, compare with a
    /// popularity baseline.
    Evaluate(evaluate::EvaluateArgs),
    /// Measure size choice on generated shops: every customer has a true
    /// size per size domain and sometimes buys (and returns) the wrong one;
    /// prints the share of sized suggestions in the true size.
    EvaluateFit(evaluate::EvaluateFitArgs),
    /// Relevance of SearchProducts on judged queries (eval/search/*.jsonl),
    /// through the served search: precision@5 and MRR per query, per kind
    /// and overall, and the word index's load time.
    EvaluateSearch(evaluate::EvaluateSearchArgs),
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

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    telemetry::init(cli.log_format);
    match cli.command {
        Command::Serve(args) => serve::run(args).await,
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
        Command::Prune { db, retention } => ops::prune(&db, &retention).await,
        Command::Backup { db, to } => ops::backup(&db, &to).await,
        Command::Restore { db, from } => ops::restore(&db, &from).await,
        Command::ReplayErasures { db, from } => ops::replay_erasures(&db, &from).await,
        Command::Import(args) => data::import(args).await,
        Command::Generate(args) => data::generate(args).await,
        Command::RebuildModel { db, model } => {
            let store = db.open().await?;
            let result = rebuild_model(&store, &model.config()).await;
            store.close().await;
            result
        }
        Command::Keys { command } => keys::run(command).await,
        Command::Context(args) => context::run(args).await,
        Command::Evaluate(args) => evaluate::evaluate(args).await,
        Command::EvaluateSearch(args) => evaluate::evaluate_search(args).await,
        Command::EvaluateFit(args) => {
            evaluate::evaluate_fit(&args);
            Ok(())
        }
        Command::Bench(args) => bench::run(args).await,
    }
}

/// Refreshes the planner's statistics after a bulk load (PostgreSQL).
async fn refresh_statistics(store: &Store) -> anyhow::Result<()> {
    store
        .refresh_statistics()
        .await
        .map_err(|e| anyhow::anyhow!("refreshing the planner's statistics: {e:?}"))
}

/// Builds and stores the suggestion model, and says what it holds.
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
    print!("{}", validation_report(&m.ranking));
    Ok(())
}

/// The build's ranker validation, as `rebuild-model` prints it.
fn validation_report(r: &crate::suggest::validate::Ranking) -> String {
    use crate::suggest::validate::{MIN_CUSTOMERS, Z_TO_SERVE};
    if r.validations.is_empty() {
        return format!(
            "serving the blend: fewer than {MIN_CUSTOMERS} customers with a second order to validate other rankers on\n"
        );
    }
    let mut out = format!(
        "rankers validated on {} customers' latest orders (HitRate@10, NDCG@10, HitRate@10 on the order before, z over the blend on both; served above z {Z_TO_SERVE} when not below it on either):\n",
        r.customers
    );
    for v in &r.validations {
        out.push_str(&format!(
            "  {:<13} {:.4}  {:.4}  {:.4}  {:+.2}{}\n",
            v.ranker.name(),
            v.hit_rate,
            v.ndcg,
            v.previous_hit_rate,
            v.z,
            if v.ranker == r.served { "  served" } else { "" }
        ));
    }
    if r.learned.is_none() {
        out.push_str(&format!(
            "  learned       not trained: too little history (fewer than {} items bought new in the order before the held-out ones)\n",
            crate::suggest::learned::MIN_POSITIVES
        ));
    }
    out
}
