//! Returns.

use sqlx::{AnyConnection, Row};
use tracing::instrument;

use super::{
    Store,
    batch::{BatchWrite, Names, Writing},
    customers::touch_customer,
};
use crate::domain::{
    Change, ChangeKind, CustomerId, Error, ItemResult, Return, ReturnStatus, Timestamp, Violations,
    WriteOutcome, fingerprint,
};

impl Store {
    /// Records returns in one transaction. A return that names no customer
    /// belongs to its order's customer; if the order is not known either, it
    /// is rejected (the sender can resend it with a customer id).
    #[instrument(skip_all, fields(count = returns.len()))]
    pub async fn record_returns(&self, returns: &[Return]) -> Result<Vec<ItemResult>, Error> {
        self.write_batch(&Returns, returns).await
    }
}

/// Returns, written in a batch.
struct Returns;

impl BatchWrite for Returns {
    type Item = Return;
    type Answer = ItemResult;
    const NAMES: Names = Names::People;

    fn key(r: &Return) -> impl Ord + '_ {
        (
            r.customer_id.as_ref().map(CustomerId::as_str),
            r.return_id.as_str(),
        )
    }

    fn names(r: &Return) -> Vec<String> {
        super::trust::suppression_keys(r.customer_id.as_ref(), &[])
    }

    async fn write(
        &self,
        w: &mut Writing<'_>,
        returns: Vec<&Return>,
    ) -> Result<Vec<ItemResult>, Error> {
        let mut results = Vec::with_capacity(returns.len());
        for r in returns {
            if w.suppressed(&Self::names(r)).await? {
                results.push(Ok(WriteOutcome::Suppressed));
                continue;
            }
            results.push(record_return(w.tx, r, &mut w.changes).await?);
        }
        Ok(results)
    }
}

/// Adds or removes a return's units from the customer's returned units.
async fn apply(
    conn: &mut AnyConnection,
    customer: &str,
    units: i64,
    status: ReturnStatus,
    sign: i64,
) -> Result<(), Error> {
    if !status.counts() {
        return Ok(());
    }
    sqlx::query("UPDATE customers SET units_returned = units_returned + $2 WHERE customer_id = $1")
        .bind(customer)
        .bind(sign * units)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

async fn record_return(
    conn: &mut AnyConnection,
    r: &Return,
    changes: &mut Vec<Change>,
) -> Result<ItemResult, Error> {
    let hash = fingerprint(r);
    let stored =
        sqlx::query("SELECT content_hash, customer_id, status FROM returns WHERE return_id = $1")
            .bind(r.return_id.as_str())
            .fetch_optional(&mut *conn)
            .await?;
    if let Some(row) = &stored
        && row.try_get::<i64, _>(0)? == hash
    {
        return Ok(Ok(WriteOutcome::Duplicate));
    }
    let customer = match &r.customer_id {
        Some(c) => c.clone(),
        None => {
            let owner = sqlx::query("SELECT customer_id FROM orders WHERE order_id = $1")
                .bind(r.order_id.as_str())
                .fetch_optional(&mut *conn)
                .await?;
            let owner: Option<String> = match owner {
                Some(row) => row.try_get(0)?,
                None => None,
            };
            match owner {
                Some(id) => {
                    CustomerId::parse(&id).map_err(|e| anyhow::anyhow!("stored customer id {e}"))?
                }
                None => {
                    return Ok(Err(Violations::single(
                        "customer_id",
                        "is required when the order is not known (yet) or has no customer",
                    )));
                }
            }
        }
    };
    touch_customer(conn, &customer, r.requested_at, r.requested_at).await?;
    let now = Timestamp::now().millis();
    let existed = stored.is_some();
    if let Some(row) = stored {
        let old_customer: String = row.try_get(1)?;
        let old_status: String = row.try_get(2)?;
        let old_status = ReturnStatus::from_stored(&old_status)
            .ok_or_else(|| anyhow::anyhow!("stored return status {old_status:?}"))?;
        let old_units: Option<i64> = sqlx::query(
            "SELECT CAST(SUM(quantity) AS BIGINT) FROM return_lines WHERE return_id = $1",
        )
        .bind(r.return_id.as_str())
        .fetch_one(&mut *conn)
        .await?
        .try_get(0)?;
        apply(conn, &old_customer, old_units.unwrap_or(0), old_status, -1).await?;
        sqlx::query("DELETE FROM return_lines WHERE return_id = $1")
            .bind(r.return_id.as_str())
            .execute(&mut *conn)
            .await?;
    }
    sqlx::query(
        "INSERT INTO returns (return_id, order_id, customer_id, status, reason_code, reason_text, requested_at, \
         refund_currency, refund_minor, content_hash, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
         ON CONFLICT (return_id) DO UPDATE SET order_id = excluded.order_id, customer_id = excluded.customer_id, \
         status = excluded.status, reason_code = excluded.reason_code, reason_text = excluded.reason_text, \
         requested_at = excluded.requested_at, refund_currency = excluded.refund_currency, \
         refund_minor = excluded.refund_minor, content_hash = excluded.content_hash, updated_at = excluded.updated_at",
    )
    .bind(r.return_id.as_str())
    .bind(r.order_id.as_str())
    .bind(customer.as_str())
    .bind(r.status.as_str())
    .bind(&r.reason_code)
    .bind(&r.reason_text)
    .bind(r.requested_at.millis())
    .bind(r.refund.map(|m| m.currency.as_str().to_owned()))
    .bind(r.refund.map(|m| m.minor))
    .bind(hash)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    for (i, l) in r.lines.iter().enumerate() {
        sqlx::query("INSERT INTO return_lines (return_id, line_no, product_id, quantity) VALUES ($1, $2, $3, $4)")
            .bind(r.return_id.as_str())
            .bind(i as i64)
            .bind(l.product_id.as_str())
            .bind(l.quantity)
            .execute(&mut *conn)
            .await?;
    }
    apply(conn, customer.as_str(), r.units(), r.status, 1).await?;
    changes.push(Change::customer(ChangeKind::Return, customer.as_str()));
    Ok(Ok(if existed {
        WriteOutcome::Updated
    } else {
        WriteOutcome::Created
    }))
}
