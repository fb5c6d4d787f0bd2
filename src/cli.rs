//! The command line: `serve`, `migrate`, `import`, `context`.

use std::{net::SocketAddr, time::Duration};

use clap::{Args, Parser, Subcommand};

use crate::{
    proto::customer_ref::Identity,
    startup::{Application, ServeConfig, shutdown_signal},
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
            ..StoreOptions::default()
        }
    }

    async fn open(&self) -> anyhow::Result<Store> {
        let store = Store::connect(&self.url(), &self.options()).await?;
        store.migrate().await?;
        Ok(store)
    }
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
        #[command(flatten)]
        db: DatabaseArgs,
    },
    /// Apply database migrations and exit.
    Migrate {
        #[command(flatten)]
        db: DatabaseArgs,
    },
    /// Load a product catalog and Segment-style event files into the store.
    Import(crate::ingest::ImportArgs),
    /// Print a customer's context from a running server.
    Context {
        /// Server address.
        #[arg(
            long,
            default_value = "http://127.0.0.1:50051",
            env = "CUSTOMER_CONTEXT_SERVER"
        )]
        server: String,
        /// Look up by customer id.
        #[arg(long, group = "who")]
        customer_id: Option<String>,
        /// Look up by email.
        #[arg(long, group = "who")]
        email: Option<String>,
        /// Look up by phone.
        #[arg(long, group = "who")]
        phone: Option<String>,
        /// Look up by loyalty id.
        #[arg(long, group = "who")]
        loyalty_id: Option<String>,
        /// Look up by anonymous browser/device id.
        #[arg(long, group = "who")]
        anonymous_id: Option<String>,
        /// How far back to show browsing, orders and returns (days; 0 = the server default).
        #[arg(long, default_value_t = 0)]
        lookback_days: u32,
        /// Print the protobuf JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    telemetry::init(cli.log_format);
    match cli.command {
        Command::Serve { listen, demo, db } => {
            let url = db.url();
            if db.database_url.is_none() {
                tracing::info!(path = %default_sqlite_path().display(), "using the embedded SQLite database");
            }
            let config = ServeConfig {
                listen,
                database_url: url,
                store: db.options(),
                demo,
            };
            let app = Application::build(&config).await?;
            app.run_until_stopped(shutdown_signal()).await
        }
        Command::Migrate { db } => {
            let store = db.open().await?;
            store.close().await;
            tracing::info!("migrations applied");
            Ok(())
        }
        Command::Import(args) => {
            let store = args.db.open().await?;
            let result = crate::ingest::run_import(&store, &args).await;
            store.close().await;
            result
        }
        Command::Context {
            server,
            customer_id,
            email,
            phone,
            loyalty_id,
            anonymous_id,
            lookback_days,
            json,
        } => {
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
            let request = crate::client::request(identity, lookback_days);
            let context = tokio::time::timeout(
                Duration::from_secs(30),
                crate::client::fetch(&server, request),
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
    }
}
