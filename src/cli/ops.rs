//! Operations: `prune` (retention now), `backup`, `restore` and
//! `replay-erasures` (docs/operations.md).

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::Args;

use super::DatabaseArgs;
use crate::{
    domain::Timestamp,
    retention::Retention,
    store::{Store, StoreOptions, settle_sqlite_file, sqlite_file_of, sqlite_url},
};

/// How long each kind of record is kept; 0 keeps it for ever.
#[derive(Debug, Args, Clone)]
pub struct RetentionArgs {
    /// Days browsing events are kept (by when they happened).
    #[arg(long, default_value_t = 180, env = "EVENTS_RETENTION_DAYS", value_parser = days())]
    pub events_retention_days: u32,
    /// Days access-log entries are kept.
    #[arg(long, default_value_t = 400, env = "ACCESS_LOG_RETENTION_DAYS", value_parser = days())]
    pub access_log_retention_days: u32,
    /// Days orders (with their lines and returns) are kept, by when they
    /// were placed; 0 keeps them. Customers' lifetime totals stay.
    #[arg(long, default_value_t = 0, env = "ORDERS_RETENTION_DAYS", value_parser = days())]
    pub orders_retention_days: u32,
    /// Days solved and closed tickets are kept after their last update;
    /// 0 keeps them. Open and pending tickets are always kept.
    #[arg(long, default_value_t = 0, env = "TICKETS_RETENTION_DAYS", value_parser = days())]
    pub tickets_retention_days: u32,
}

fn days() -> clap::builder::RangedI64ValueParser<u32> {
    clap::value_parser!(u32).range(0..=36_500)
}

impl RetentionArgs {
    /// The policy.
    pub fn policy(&self) -> Retention {
        let kept = |d: u32| (d > 0).then_some(d);
        Retention {
            events: kept(self.events_retention_days),
            access_log: kept(self.access_log_retention_days),
            purchases: kept(self.orders_retention_days),
            tickets: kept(self.tickets_retention_days),
        }
    }
}

/// Runs one retention pass now and prints what it deleted.
pub(super) async fn prune(db: &DatabaseArgs, retention: &RetentionArgs) -> anyhow::Result<()> {
    let store = db.open().await?;
    let started = std::time::Instant::now();
    let done = crate::retention::prune(&store, &retention.policy(), Timestamp::now(), |_, _| {})
        .await
        .map_err(|e| anyhow::anyhow!("pruning: {e:?}"))?;
    store.close().await;
    for p in &done {
        println!("{:<11} {:>10} deleted", p.kind.as_str(), p.deleted);
    }
    println!("in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// Writes a consistent copy of the embedded database while it serves.
pub(super) async fn backup(db: &DatabaseArgs, to: &Path) -> anyhow::Result<()> {
    let store = db.open().await?;
    let started = std::time::Instant::now();
    store
        .backup_into(to)
        .await
        .map_err(|e| anyhow::anyhow!("backing up: {e}"))?;
    store.close().await;
    let bytes = std::fs::metadata(to).map(|m| m.len()).unwrap_or(0);
    println!(
        "Backed up to {} ({:.1} MiB in {:.1} s).",
        to.display(),
        bytes as f64 / 1_048_576.0,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Replaces the embedded database (the service stopped) with a backup:
/// the copy is checked, migrated to this version, and the erasures
/// recorded in the database it replaces are replayed onto it. The replaced
/// file is kept beside it.
pub(super) async fn restore(db: &DatabaseArgs, from: &Path) -> anyhow::Result<()> {
    let url = db.url();
    let target = sqlite_file_of(&url).context(
        "restore replaces the embedded SQLite database; restore PostgreSQL with pg_restore, then run replay-erasures (docs/operations.md)",
    )?;
    anyhow::ensure!(from.is_file(), "{} is not a file", from.display());
    if target.exists() {
        // Fails at once while the service (or anything) has it open.
        settle_sqlite_file(&target).await?;
    }
    let staging = target.with_extension("restoring");
    let _ = std::fs::remove_file(&staging);
    std::fs::copy(from, &staging).with_context(|| format!("copying {}", from.display()))?;
    let options = StoreOptions::default();
    let copy = Store::connect(&sqlite_url(&staging), &options).await?;
    copy.check_copy()
        .await
        .map_err(|e| anyhow::anyhow!("{}: {e}", from.display()))?;
    copy.migrate().await?;
    if target.exists() {
        let current = Store::connect(&url, &options).await?;
        let replayed = replay_from(&current, &copy).await?;
        current.close().await;
        println!(
            "Replayed the erasures recorded since: {} customers and {} visitors erased again.",
            replayed.customers, replayed.visitors
        );
    }
    copy.close().await;
    settle_sqlite_file(&staging).await?;
    if target.exists() {
        settle_sqlite_file(&target).await?;
        let kept = kept_name(&target);
        std::fs::rename(&target, &kept)?;
        println!(
            "The database it replaces is kept as {} (delete it once the restore is confirmed).",
            kept.display()
        );
    }
    std::fs::rename(&staging, &target)?;
    println!("Restored {} into {}.", from.display(), target.display());
    Ok(())
}

/// Erases again, in this database, every customer erased in `from` (a
/// newer database of the same deployment): after restoring a PostgreSQL
/// dump, or a backup by hand.
pub(super) async fn replay_erasures(db: &DatabaseArgs, from: &str) -> anyhow::Result<()> {
    let target = db.open().await?;
    let source = Store::connect(from, &StoreOptions::default()).await?;
    let replayed = replay_from(&source, &target).await?;
    source.close().await;
    target.close().await;
    println!(
        "{} customers and {} visitors erased again; {} suppression entries added.",
        replayed.customers, replayed.visitors, replayed.suppressions
    );
    Ok(())
}

async fn replay_from(source: &Store, target: &Store) -> anyhow::Result<crate::store::Replayed> {
    let list = source
        .suppression_list()
        .await
        .map_err(|e| anyhow::anyhow!("reading the erasure record: {e:?}"))?;
    let key = source
        .hash_key()
        .await
        .map_err(|e| anyhow::anyhow!("reading the hashing key: {e:?}"))?;
    target
        .replay_erasures(&list, &key)
        .await
        .map_err(|e| anyhow::anyhow!("replaying erasures: {e}"))
}

/// `FILE.before-restore` (numbered when taken).
fn kept_name(target: &Path) -> PathBuf {
    let base = format!("{}.before-restore", target.display());
    (0..)
        .map(|i| match i {
            0 => PathBuf::from(&base),
            i => PathBuf::from(format!("{base}.{i}")),
        })
        .find(|p| !p.exists())
        .unwrap_or_else(|| PathBuf::from(base))
}
