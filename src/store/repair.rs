//! Repairs of records stored by earlier versions, run after every
//! migration. Each looks for damage with one cheap query and does nothing
//! on a healthy database; all are idempotent.
//!
//! - Running totals that overflowed (before input was bounded, two orders
//!   of 2^62 pushed a customer's spend past `i64::MAX`; SQLite then stored a
//!   float no read accepts) are recomputed from the customer's orders,
//!   saturating at [`MAX_TOTAL`].
//! - Consents dated more than a day ahead (before claimed times were
//!   bounded, a grant dated 9999 outranked every later withdrawal) are
//!   dated now, so the next record sent wins as it should.

use sqlx::{AnyConnection, Row};

use super::{MAX_TOTAL, Store};
use crate::domain::{Error, MAX_CLAIMED_SKEW_MS, OrderStatus, Timestamp};

impl Store {
    /// Runs every repair in one write transaction.
    pub(super) async fn repair(&self) -> Result<RepairReport, Error> {
        let mut tx = self.begin_write().await?;
        let customers = damaged_totals(&mut tx).await?;
        for customer in &customers {
            recompute_totals(&mut tx, customer).await?;
        }
        let now = Timestamp::now().millis();
        let consents = sqlx::query("UPDATE consents SET updated_at = $1 WHERE updated_at > $2")
            .bind(now)
            .bind(now.saturating_add(MAX_CLAIMED_SKEW_MS))
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        let report = RepairReport {
            totals_recomputed: customers.len(),
            consents_redated: consents,
        };
        if report.totals_recomputed > 0 || report.consents_redated > 0 {
            tracing::warn!(
                totals_recomputed = report.totals_recomputed,
                consents_redated = report.consents_redated,
                "repaired records stored by an earlier version"
            );
        }
        Ok(report)
    }
}

/// What a repair changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RepairReport {
    /// Customers whose running totals were recomputed.
    pub totals_recomputed: usize,
    /// Consents whose future date was replaced by the repair's time.
    pub consents_redated: u64,
}

/// Customers with a total outside `0..=MAX_TOTAL` (a float stored by
/// SQLite compares above it).
async fn damaged_totals(conn: &mut AnyConnection) -> Result<Vec<String>, Error> {
    let rows = sqlx::query(
        "SELECT customer_id FROM customer_spend WHERE spend_minor < 0 OR spend_minor > $1 \
         UNION SELECT customer_id FROM customers WHERE units_purchased < 0 OR units_purchased > $1",
    )
    .bind(MAX_TOTAL)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|r| r.try_get::<String, _>(0).map_err(Error::from))
        .collect()
}

/// Recomputes a customer's spend per currency and units bought from the
/// stored orders, with saturating arithmetic.
async fn recompute_totals(conn: &mut AnyConnection, customer: &str) -> Result<(), Error> {
    let orders = sqlx::query(
        "SELECT o.status, o.currency, o.total_minor, \
         (SELECT CAST(SUM(l.quantity) AS BIGINT) FROM order_lines l WHERE l.order_id = o.order_id) \
         FROM orders o WHERE o.customer_id = $1",
    )
    .bind(customer)
    .fetch_all(&mut *conn)
    .await?;
    let mut spend: std::collections::BTreeMap<String, i64> = Default::default();
    let mut units = 0i64;
    for row in &orders {
        let status: String = row.try_get(0)?;
        if !OrderStatus::from_stored(&status).is_some_and(OrderStatus::counts) {
            continue;
        }
        let total: i64 = row.try_get(2)?;
        let slot = spend.entry(row.try_get(1)?).or_insert(0);
        *slot = slot.saturating_add(total.max(0)).min(MAX_TOTAL);
        let lines: Option<i64> = row.try_get(3)?;
        units = units
            .saturating_add(lines.unwrap_or(0).max(0))
            .min(MAX_TOTAL);
    }
    sqlx::query("DELETE FROM customer_spend WHERE customer_id = $1")
        .bind(customer)
        .execute(&mut *conn)
        .await?;
    for (currency, minor) in spend {
        sqlx::query(
            "INSERT INTO customer_spend (customer_id, currency, spend_minor) VALUES ($1, $2, $3)",
        )
        .bind(customer)
        .bind(currency)
        .bind(minor)
        .execute(&mut *conn)
        .await?;
    }
    sqlx::query("UPDATE customers SET units_purchased = $2 WHERE customer_id = $1")
        .bind(customer)
        .bind(units)
        .execute(&mut *conn)
        .await?;
    Ok(())
}
