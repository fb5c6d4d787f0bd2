//! `context`: a customer's context from a running server, for people or
//! as protobuf JSON.

use std::{path::PathBuf, time::Duration};

use anyhow::Context as _;
use clap::Args;

use super::bootstrap_key_path;
use crate::proto::customer_ref::Identity;

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

/// Prints a customer's context from a running server.
pub(super) async fn run(args: ContextArgs) -> anyhow::Result<()> {
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
