//! `keys`: create, list and revoke API keys.

use clap::Subcommand;

use super::DatabaseArgs;
use crate::{domain::Role, store::Store};

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

/// Runs a `keys` subcommand against its database.
pub(super) async fn run(command: KeysCommand) -> anyhow::Result<()> {
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
