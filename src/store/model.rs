//! Bookkeeping of the suggestion model's periodic rebuild.

use super::Store;
use crate::domain::{Error, Timestamp};

impl Store {
    /// Claims the periodic rebuild for this replica when the last one (or
    /// the last claim) is older than `every_ms`, or when the newest stored
    /// model is in a format older than `format`: at most one replica
    /// rebuilds per period, whichever claims first.
    pub async fn claim_rebuild(&self, every_ms: i64, format: i64) -> Result<bool, Error> {
        let now = Timestamp::now().millis();
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO model_state (name, value) VALUES ('rebuild_claimed_at', 0) \
             ON CONFLICT (name) DO NOTHING",
        )
        .execute(&mut *tx)
        .await?;
        let rebuilt: Option<i64> =
            sqlx::query_scalar("SELECT value FROM model_state WHERE name = 'rebuilt_at'")
                .fetch_optional(&mut *tx)
                .await?;
        // A model stored in an older format than this version reads is
        // rebuilt at once (a minute between claims), not at the next period.
        let stored_format: Option<i64> =
            sqlx::query_scalar("SELECT format FROM model_snapshots ORDER BY version DESC LIMIT 1")
                .fetch_optional(&mut *tx)
                .await?;
        let outdated = stored_format.is_some_and(|f| f < format);
        let every_ms = if outdated {
            every_ms.min(60_000)
        } else {
            every_ms
        };
        let due = outdated || rebuilt.is_none_or(|at| at <= now - every_ms);
        let claimed = due && sqlx::query(
            "UPDATE model_state SET value = $1 WHERE name = 'rebuild_claimed_at' AND value <= $2",
        )
        .bind(now)
        .bind(now - every_ms)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        tx.commit().await?;
        Ok(claimed)
    }

    /// The format of the newest stored model snapshot, if any.
    pub async fn stored_model_format(&self) -> Result<Option<i64>, Error> {
        Ok(
            sqlx::query_scalar("SELECT format FROM model_snapshots ORDER BY version DESC LIMIT 1")
                .fetch_optional(&self.reader)
                .await?,
        )
    }
}
