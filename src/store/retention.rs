//! Deleting by age: one small batch of one kind of record per call, oldest
//! first, each batch its own short transaction, so a pruner never holds the
//! writer for long and ingestion goes on between its batches. The policy
//! (which kinds, how old) is `crate::retention`'s; this file only deletes.
//!
//! On PostgreSQL a batch locks the rows it picks with `SKIP LOCKED`: two
//! replicas pruning at once take different rows, and a batch never waits
//! for (or deadlocks with) an erasure or an ingestion holding some of them.

use sqlx::{AssertSqlSafe, Row};

use super::{Backend, Store, placeholders};
use crate::domain::{Error, Timestamp};

/// The records kept for a bounded time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Aged {
    /// Browsing events, by when they happened.
    Events,
    /// Access-log entries, by when the read was made.
    AccessLog,
    /// Orders with their lines and the returns against them, by when the
    /// order was placed; returns whose order is not stored, by when they
    /// were requested.
    Purchases,
    /// Solved and closed tickets, by their last update (open and pending
    /// ones are never deleted by age).
    Tickets,
}

impl Aged {
    /// Every kind.
    pub const ALL: [Aged; 4] = [
        Aged::Events,
        Aged::AccessLog,
        Aged::Purchases,
        Aged::Tickets,
    ];

    /// Its name in flags, logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Aged::Events => "events",
            Aged::AccessLog => "access_log",
            Aged::Purchases => "purchases",
            Aged::Tickets => "tickets",
        }
    }
}

impl Store {
    /// Deletes up to `limit` records of `kind` from before `before`, oldest
    /// first, in one transaction. Returns how many were deleted (an order
    /// counts once, with its lines and returns); fewer than `limit` means
    /// none older are left (or the rest are locked by another replica).
    pub async fn prune(&self, kind: Aged, before: Timestamp, limit: i64) -> Result<u64, Error> {
        self.retrying(|| self.prune_once(kind, before, limit)).await
    }

    async fn prune_once(&self, kind: Aged, before: Timestamp, limit: i64) -> Result<u64, Error> {
        let lock = match self.backend {
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let mut tx = self.begin_write().await?;
        let n = match kind {
            Aged::Events => {
                let sql = format!(
                    "DELETE FROM events WHERE message_id IN (SELECT message_id FROM events \
                     WHERE occurred_at < $1 ORDER BY occurred_at LIMIT $2{lock})"
                );
                delete(&mut tx, &sql, before, limit).await?
            }
            Aged::AccessLog => {
                let sql = format!(
                    "DELETE FROM access_log WHERE entry_id IN (SELECT entry_id FROM access_log \
                     WHERE at < $1 ORDER BY at LIMIT $2{lock})"
                );
                delete(&mut tx, &sql, before, limit).await?
            }
            Aged::Tickets => {
                let sql = format!(
                    "DELETE FROM tickets WHERE ticket_id IN (SELECT ticket_id FROM tickets \
                     WHERE updated_at < $1 AND status IN ('solved', 'closed') \
                     ORDER BY updated_at LIMIT $2{lock})"
                );
                delete(&mut tx, &sql, before, limit).await?
            }
            Aged::Purchases => {
                let sql = format!(
                    "SELECT order_id FROM orders WHERE placed_at < $1 ORDER BY placed_at LIMIT $2{lock}"
                );
                let orders = ids(&mut tx, &sql, before, limit).await?;
                let sql = format!(
                    "SELECT return_id FROM returns r WHERE requested_at < $1 \
                     AND NOT EXISTS (SELECT 1 FROM orders o WHERE o.order_id = r.order_id) \
                     ORDER BY requested_at LIMIT $2{lock}"
                );
                let orphans = ids(&mut tx, &sql, before, limit).await?;
                delete_purchases(&mut tx, &orders, &orphans).await?;
                (orders.len() + orphans.len()) as u64
            }
        };
        tx.commit().await?;
        Ok(n)
    }

    /// The oldest instant of `kind` still stored (for `/metrics`), `None`
    /// when none is.
    pub async fn oldest(&self, kind: Aged) -> Result<Option<Timestamp>, Error> {
        let sql = match kind {
            Aged::Events => "SELECT MIN(occurred_at) FROM events",
            Aged::AccessLog => "SELECT MIN(at) FROM access_log",
            Aged::Purchases => "SELECT MIN(placed_at) FROM orders",
            Aged::Tickets => {
                "SELECT MIN(updated_at) FROM tickets WHERE status IN ('solved', 'closed')"
            }
        };
        let row = sqlx::query(sql).fetch_one(&self.reader).await?;
        row.try_get::<Option<i64>, _>(0)?
            .map(super::instant)
            .transpose()
    }
}

type Tx = sqlx::Transaction<'static, sqlx::Any>;

async fn delete(tx: &mut Tx, sql: &str, before: Timestamp, limit: i64) -> Result<u64, Error> {
    Ok(sqlx::query(AssertSqlSafe(sql.to_owned()))
        .bind(before.millis())
        .bind(limit)
        .execute(&mut **tx)
        .await?
        .rows_affected())
}

async fn ids(tx: &mut Tx, sql: &str, before: Timestamp, limit: i64) -> Result<Vec<String>, Error> {
    let rows = sqlx::query(AssertSqlSafe(sql.to_owned()))
        .bind(before.millis())
        .bind(limit)
        .fetch_all(&mut **tx)
        .await?;
    rows.iter()
        .map(|r| r.try_get::<String, _>(0).map_err(Error::from))
        .collect()
}

/// Deletes the orders (with their lines and the returns against them) and
/// the returns named. The customers' running totals are lifetime totals
/// and stay as they are.
async fn delete_purchases(tx: &mut Tx, orders: &[String], returns: &[String]) -> Result<(), Error> {
    let of_orders = [
        "DELETE FROM return_lines WHERE return_id IN \
         (SELECT return_id FROM returns WHERE order_id IN ({ids}))",
        "DELETE FROM returns WHERE order_id IN ({ids})",
        "DELETE FROM order_lines WHERE order_id IN ({ids})",
        "DELETE FROM orders WHERE order_id IN ({ids})",
    ];
    let of_returns = [
        "DELETE FROM return_lines WHERE return_id IN ({ids})",
        "DELETE FROM returns WHERE return_id IN ({ids})",
    ];
    delete_by_ids(tx, &of_orders, orders).await?;
    delete_by_ids(tx, &of_returns, returns).await
}

/// Runs each statement (its `{ids}` a list of placeholders) for `ids`, a
/// bounded number at a time.
async fn delete_by_ids(tx: &mut Tx, statements: &[&str], ids: &[String]) -> Result<(), Error> {
    for chunk in ids.chunks(super::ROWS_PER_STATEMENT) {
        for sql in statements {
            let sql = sql.replace("{ids}", &placeholders(1, chunk.len()));
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for id in chunk {
                q = q.bind(id.as_str());
            }
            q.execute(&mut **tx).await?;
        }
    }
    Ok(())
}
