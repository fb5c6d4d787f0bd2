//! Backups and restores. On SQLite a backup is a consistent copy of the
//! file taken while the service serves (`VACUUM INTO`: a read transaction,
//! so writers go on). On PostgreSQL, `pg_dump` does it (docs/operations.md).
//!
//! A restored backup taken before an erasure still holds the customer, so
//! the erasures recorded since (the suppression list: keyed hashes of the
//! identities of erased customers, no personal data) are replayed onto it
//! before it serves.

use std::{collections::HashSet, path::Path};

use sqlx::Row;

use super::{
    Backend, Store,
    trust::{PERSONAL_TABLES, identity_key},
};
use crate::domain::{CustomerId, Error, IdentityKind, keys};

/// What a replay did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Replayed {
    /// Customers of the restored copy erased again.
    pub customers: u64,
    /// Anonymous ids whose browsing and guest orders were deleted.
    pub visitors: u64,
    /// Suppression-list entries added.
    pub suppressions: u64,
}

impl Store {
    /// Writes a consistent copy of this SQLite database to `path` (a new
    /// file, readable by its owner only), compacted, while others go on
    /// reading and writing. Everything committed before it began is in it.
    pub async fn backup_into(&self, path: &Path) -> Result<(), Error> {
        if self.backend != Backend::Sqlite {
            return Err(Error::FailedPrecondition(
                "backup copies the embedded SQLite database; back PostgreSQL up with pg_dump (docs/operations.md)".into(),
            ));
        }
        if path.exists() {
            return Err(Error::FailedPrecondition(format!(
                "{} exists; a backup never overwrites a file",
                path.display()
            )));
        }
        let target = path.to_str().ok_or_else(|| {
            Error::FailedPrecondition("the backup path is not valid UTF-8".into())
        })?;
        // Created empty and private first: SQLite writes into an empty file.
        super::create_private(path).map_err(Error::Internal)?;
        let copied = sqlx::query("VACUUM INTO $1")
            .bind(target)
            .execute(&self.writer)
            .await;
        if copied.is_err() {
            let _ = std::fs::remove_file(path);
        }
        copied?;
        Ok(())
    }

    /// Whether this SQLite database is whole (`PRAGMA integrity_check`)
    /// and was written by this service (it has the migrations table).
    pub async fn check_copy(&self) -> Result<(), Error> {
        let verdict: String = sqlx::query_scalar("PRAGMA integrity_check")
            .fetch_one(&self.reader)
            .await?;
        if verdict != "ok" {
            return Err(Error::FailedPrecondition(format!(
                "the copy is damaged: {verdict}"
            )));
        }
        let migrations: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
        )
        .fetch_one(&self.reader)
        .await?;
        if migrations == 0 {
            return Err(Error::FailedPrecondition(
                "the file is not a customer-context database".into(),
            ));
        }
        Ok(())
    }

    /// The suppression list: keyed hashes of erased customers' ids and
    /// identities.
    pub async fn suppression_list(&self) -> Result<Vec<(String, i64)>, Error> {
        let rows = sqlx::query(
            "SELECT identity_hash, created_at FROM suppressions ORDER BY identity_hash",
        )
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }

    /// Erases again every customer and visitor of this database whose id
    /// or identity is on `list` (taken from a newer database of the same
    /// deployment), and adds the list to this one's. Fails when the two
    /// databases do not share the hashing key (`key_of_list`): their
    /// hashes could not be compared.
    pub async fn replay_erasures(
        &self,
        list: &[(String, i64)],
        key_of_list: &[u8; 32],
    ) -> Result<Replayed, Error> {
        let hash_key = self.hash_key().await?;
        if &hash_key != key_of_list {
            return Err(Error::FailedPrecondition(
                "the two databases belong to different deployments (their hashing keys differ)"
                    .into(),
            ));
        }
        let hashes: HashSet<&str> = list.iter().map(|(h, _)| h.as_str()).collect();
        let hashed =
            |kind: &str, value: &str| keys::hash_secret(&hash_key, &identity_key(kind, value));
        let mut out = Replayed::default();
        let mut erase: Vec<String> = Vec::new();
        for r in sqlx::query("SELECT customer_id FROM customers")
            .fetch_all(&self.reader)
            .await?
        {
            let id: String = r.try_get(0)?;
            if hashes.contains(hashed("customer_id", &id).as_str()) {
                erase.push(id);
            }
        }
        for r in sqlx::query("SELECT kind, value, customer_id FROM identities")
            .fetch_all(&self.reader)
            .await?
        {
            let (kind, value, id): (String, String, String) =
                (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?);
            if hashes.contains(hashed(&kind, &value).as_str()) && !erase.contains(&id) {
                erase.push(id);
            }
        }
        for id in &erase {
            let customer = CustomerId::parse(id)
                .map_err(|e| Error::Internal(anyhow::anyhow!("stored customer id: {e}")))?;
            self.erase_customer(&customer).await?;
            out.customers += 1;
        }
        // Browsing and guest orders under an anonymous id that was linked
        // to the customer only after the backup.
        let anonymous = IdentityKind::AnonymousId.as_str();
        for r in sqlx::query("SELECT DISTINCT anonymous_id FROM events WHERE anonymous_id IS NOT NULL AND customer_id IS NULL \
                              UNION SELECT DISTINCT anonymous_id FROM orders WHERE anonymous_id IS NOT NULL AND customer_id IS NULL")
            .fetch_all(&self.reader)
            .await?
        {
            let a: String = r.try_get(0)?;
            if hashes.contains(hashed(anonymous, &a).as_str()) {
                self.erase_visitor(&a).await?;
                out.visitors += 1;
            }
        }
        let mut tx = self.begin_write().await?;
        for (hash, at) in list {
            out.suppressions += sqlx::query(
                "INSERT INTO suppressions (identity_hash, created_at) VALUES ($1, $2) ON CONFLICT (identity_hash) DO NOTHING",
            )
            .bind(hash)
            .bind(*at)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        tx.commit().await?;
        Ok(out)
    }

    /// Deletes every row of an anonymous id not tied to a customer.
    async fn erase_visitor(&self, anonymous_id: &str) -> Result<(), Error> {
        let mut tx = self.begin_write().await?;
        for t in PERSONAL_TABLES {
            if let Some(q) = t.erase_anonymous {
                sqlx::query(q)
                    .bind(anonymous_id)
                    .bind("")
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }
}

/// Takes the SQLite file at `path` out of write-ahead-log mode, so the
/// file alone holds every committed write and can be moved. Fails when
/// another connection has the database open (a running service): the
/// change needs it alone.
pub async fn settle_sqlite_file(path: &Path) -> anyhow::Result<()> {
    use anyhow::Context as _;
    use sqlx::{Connection as _, Executor as _};
    sqlx::any::install_default_drivers();
    let url = super::sqlite_url(path);
    let mut conn = sqlx::AnyConnection::connect(&url)
        .await
        .with_context(|| format!("opening {}", path.display()))?;
    let mode: Result<String, _> = async {
        conn.execute("PRAGMA busy_timeout = 0").await?;
        sqlx::query_scalar("PRAGMA journal_mode = DELETE")
            .fetch_one(&mut conn)
            .await
    }
    .await;
    conn.close().await.ok();
    match mode {
        Ok(m) if m.eq_ignore_ascii_case("delete") => Ok(()),
        _ => anyhow::bail!(
            "{} is in use (is the service still running?): stop it first",
            path.display()
        ),
    }
}
