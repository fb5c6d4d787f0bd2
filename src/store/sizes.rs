//! What a customer's sizes are inferred from: their purchases and returns
//! of sized products, newest first, bounded.

use sqlx::Row;
use tracing::instrument;

use super::{Store, instant};
use crate::domain::{CustomerId, Error, Size, Timestamp};

/// Sized purchase lines read per customer (newest first).
pub const SIZED_LINES: i64 = 500;
/// Returned lines of sized products read per customer (newest first).
pub const SIZED_RETURNS: i64 = 500;

/// One purchased line of a sized product.
#[derive(Debug, Clone, PartialEq)]
pub struct SizedPurchase {
    /// The order.
    pub order_id: String,
    /// The product (a variant).
    pub product_id: String,
    /// Units bought.
    pub quantity: i64,
    /// Its size, as the catalogue says now.
    pub size: Size,
    /// Its stored category path, as the catalogue says now.
    pub category_path: String,
    /// When the order was placed.
    pub placed_at: Timestamp,
}

/// One returned line of a sized product (rejected returns left out).
#[derive(Debug, Clone, PartialEq)]
pub struct SizedReturn {
    /// The order it came from.
    pub order_id: String,
    /// The product (a variant).
    pub product_id: String,
    /// Units returned.
    pub quantity: i64,
    /// Its size, as the catalogue says now.
    pub size: Size,
    /// Its stored category path, as the catalogue says now.
    pub category_path: String,
    /// The return's reason code.
    pub reason_code: String,
    /// When the return was requested.
    pub requested_at: Timestamp,
}

impl Store {
    /// The customer's purchases and returns of sized products, newest
    /// first (at most [`SIZED_LINES`] and [`SIZED_RETURNS`]); cancelled
    /// and refunded orders are left out.
    #[instrument(skip_all)]
    pub async fn size_evidence(
        &self,
        customer: &CustomerId,
    ) -> Result<(Vec<SizedPurchase>, Vec<SizedReturn>), Error> {
        let lines = sqlx::query(
            "SELECT l.order_id, l.product_id, l.quantity, p.size_label, p.size_system, \
             p.category_path, o.placed_at FROM orders o \
             JOIN order_lines l ON l.order_id = o.order_id \
             JOIN products p ON p.product_id = l.product_id \
             WHERE o.customer_id = $1 AND o.status NOT IN ('cancelled', 'refunded') \
             AND p.size_label IS NOT NULL \
             ORDER BY o.placed_at DESC, l.order_id, l.line_no LIMIT $2",
        )
        .bind(customer.as_str())
        .bind(SIZED_LINES);
        let returns = sqlx::query(
            "SELECT r.order_id, rl.product_id, rl.quantity, p.size_label, p.size_system, \
             p.category_path, r.reason_code, r.requested_at FROM returns r \
             JOIN return_lines rl ON rl.return_id = r.return_id \
             JOIN products p ON p.product_id = rl.product_id \
             WHERE r.customer_id = $1 AND r.status <> 'rejected' AND p.size_label IS NOT NULL \
             ORDER BY r.requested_at DESC, r.return_id, rl.line_no LIMIT $2",
        )
        .bind(customer.as_str())
        .bind(SIZED_RETURNS);
        let (lines, returns) = tokio::try_join!(
            lines.fetch_all(&self.reader),
            returns.fetch_all(&self.reader)
        )?;
        let size = |r: &sqlx::any::AnyRow| -> Result<Size, Error> {
            Ok(Size::from_stored(
                &r.try_get::<String, _>(3)?,
                &r.try_get::<Option<String>, _>(4)?.unwrap_or_default(),
            ))
        };
        let purchases = lines
            .iter()
            .map(|r| {
                Ok(SizedPurchase {
                    order_id: r.try_get(0)?,
                    product_id: r.try_get(1)?,
                    quantity: r.try_get(2)?,
                    size: size(r)?,
                    category_path: r.try_get(5)?,
                    placed_at: instant(r.try_get(6)?)?,
                })
            })
            .collect::<Result<_, Error>>()?;
        let returned = returns
            .iter()
            .map(|r| {
                Ok(SizedReturn {
                    order_id: r.try_get(0)?,
                    product_id: r.try_get(1)?,
                    quantity: r.try_get(2)?,
                    size: size(r)?,
                    category_path: r.try_get(5)?,
                    reason_code: r.try_get(6)?,
                    requested_at: instant(r.try_get(7)?)?,
                })
            })
            .collect::<Result<_, Error>>()?;
        Ok((purchases, returned))
    }
}
