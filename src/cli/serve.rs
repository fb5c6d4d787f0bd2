//! `serve`: the service, with its security and load settings.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
};

use anyhow::Context as _;
use clap::Args;

use super::{DatabaseArgs, ModelArgs, bootstrap_key_path};
use crate::{
    auth::GateConfig,
    connect::{ConnectorConfig, SourceValue},
    domain::Role,
    startup::{Application, ServeConfig, TlsFiles, shutdown_signal},
    store::{Store, default_sqlite_path},
};

/// Arguments of `serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:50051", env = "LISTEN")]
    pub listen: SocketAddr,
    /// Load the demo retailer first (skipped when already loaded).
    #[arg(long)]
    pub demo: bool,
    /// Which database.
    #[command(flatten)]
    pub db: DatabaseArgs,
    /// Keys, TLS and load limits.
    #[command(flatten)]
    pub security: SecurityArgs,
    /// Hours between full rebuilds of the suggestion model (co-views,
    /// category transitions, "popular now"); 0 turns them off. With
    /// several replicas, one of them rebuilds per period.
    #[arg(long, default_value_t = 6, env = "MODEL_REBUILD_HOURS")]
    pub model_rebuild_hours: u32,
    /// Styles returned within this many days are never suggested to
    /// that customer.
    #[arg(long, default_value_t = crate::suggest::SuggestConfig::default().return_window_days, env = "RETURN_WINDOW_DAYS")]
    pub return_window_days: u32,
    /// Personalise suggestions only for customers who granted the
    /// `personalised_suggestions` consent (opt-in); by default a
    /// customer with no record on file is personalised (opt-out).
    #[arg(long, env = "SUGGESTIONS_OPT_IN")]
    pub suggestions_opt_in: bool,
    /// MiB this replica may keep of the customers it read (their reads,
    /// history and ranked lists, as weighed when kept), so a conversation's
    /// next calls need no database; past it, it forgets them all and
    /// refills. 0 keeps none.
    #[arg(long, default_value_t = (crate::suggest::memo::CUSTOMER_BYTES >> 20) as u32, env = "CUSTOMER_MEMORY_MB")]
    pub customer_memory_mb: u32,
    /// How the suggestion model is built.
    #[command(flatten)]
    pub model: ModelArgs,
    /// The webhook receivers.
    #[command(flatten)]
    pub connectors: ConnectorArgs,
    /// Helpdesk origins allowed to frame the sidebar and hand it the
    /// conversation's contact, e.g. https://app.chatwoot.com or
    /// https://*.zendesk.com (comma-separated). None: only this service.
    #[arg(
        long,
        value_name = "ORIGIN",
        env = "SIDEBAR_FRAME_ORIGINS",
        value_delimiter = ','
    )]
    pub sidebar_frame_origins: Vec<String>,
    /// How long each kind of record is kept.
    #[command(flatten)]
    pub retention: super::ops::RetentionArgs,
}

/// The webhook receivers of `serve` (docs/connectors.md). A receiver
/// answers only once its source has a secret or token.
#[derive(Debug, Args, Clone)]
pub struct ConnectorArgs {
    /// A sender's signing secret as SOURCE=SECRET (shopify, segment,
    /// zendesk, chatwoot); give a source two while rotating. Several,
    /// comma-separated, in the environment.
    #[arg(
        long = "webhook-secret",
        value_name = "SOURCE=SECRET",
        env = "WEBHOOK_SECRETS",
        hide_env_values = true,
        value_delimiter = ','
    )]
    pub secrets: Vec<SourceValue>,
    /// A static token as SOURCE=TOKEN, sent by the sender in the
    /// `X-Webhook-Token` header (or `?token=` in the URL): for gorgias,
    /// freshdesk, rudderstack, Segment batches, and Chatwoot where its
    /// signature does not match.
    #[arg(
        long = "webhook-token",
        value_name = "SOURCE=TOKEN",
        env = "WEBHOOK_TOKENS",
        hide_env_values = true,
        value_delimiter = ','
    )]
    pub tokens: Vec<SourceValue>,
    /// A JSON file holding the same secrets and tokens (see docs/connectors.md).
    #[arg(long, value_name = "FILE", env = "CONNECTORS_FILE")]
    pub connectors_file: Option<PathBuf>,
    /// The shop's currency, for Shopify product prices (its product
    /// webhooks do not carry one).
    #[arg(long, default_value = "USD", env = "SHOP_CURRENCY")]
    pub shop_currency: String,
    /// Days a webhook delivery (its raw body) is kept.
    #[arg(long, default_value_t = 14, env = "WEBHOOK_RETENTION_DAYS", value_parser = clap::value_parser!(u32).range(1..=3650))]
    pub webhook_retention_days: u32,
}

impl ConnectorArgs {
    /// The connectors' configuration.
    pub fn config(&self) -> anyhow::Result<ConnectorConfig> {
        let currency = crate::domain::Currency::parse(&self.shop_currency)
            .map_err(|e| anyhow::anyhow!("--shop-currency: {e}"))?;
        let mut config = ConnectorConfig::default();
        config.shop_currency = currency.as_str().to_owned();
        config.retention_days = self.webhook_retention_days;
        if let Some(file) = &self.connectors_file {
            config = config.with_file(file)?;
        }
        config.with(&self.secrets, &self.tokens)
    }
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

/// Serves until a shutdown signal: the demo loaded first when asked, the
/// bootstrap admin key created on a store without keys.
pub(super) async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let ServeArgs {
        listen,
        demo,
        db,
        security,
        model_rebuild_hours,
        return_window_days,
        suggestions_opt_in,
        customer_memory_mb,
        model,
        connectors,
        sidebar_frame_origins,
        retention,
    } = args;
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
        customer_memory: (customer_memory_mb as usize) << 20,
        connectors: connectors.config()?,
        frame_origins: sidebar_frame_origins,
        retention: retention.policy(),
    };
    let app = Application::build(&config).await?;
    if config.gate.auth {
        bootstrap_admin_key(app.store(), embedded).await?;
    }
    app.run_until_stopped(shutdown_signal()).await
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
