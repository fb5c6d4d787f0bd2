//! Bounded reads for the customer context. Every query is served by an
//! index and carries a LIMIT (or an `IN` list of ids already limited), so a
//! customer with 100,000 events costs the same handful of queries as one
//! with ten.

use std::collections::HashMap;

use anyhow::anyhow;
use sqlx::{AssertSqlSafe, Row, any::AnyRow};
use tracing::instrument;

use super::{IN_CHUNK, Store, instant, placeholders};
use crate::domain::{
    AnonymousId, CustomerId, CustomerKey, Error, EventKind, IdentityKind, OrderStatus,
    ReturnStatus, Size, TicketPriority, TicketStatus, Timestamp,
};

/// Whom an identity leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// A known customer.
    Customer(CustomerId),
    /// An anonymous visitor with browsing but no linked customer.
    Anonymous(AnonymousId),
}

/// A customer's profile row with its running totals.
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileRow {
    /// Name to greet them by.
    pub display_name: String,
    /// Primary email, or "".
    pub email: String,
    /// Primary phone, or "".
    pub phone: String,
    /// Loyalty id, or "".
    pub loyalty_id: String,
    /// When the relationship began (as sent, else first activity seen).
    pub customer_since: Timestamp,
    /// Latest activity of any kind, if any.
    pub last_activity_at: Option<Timestamp>,
    /// Non-cancelled orders.
    pub order_count: i64,
    /// Units bought.
    pub units_purchased: i64,
    /// Units returned (rejected returns excluded).
    pub units_returned: i64,
    /// Latest order placed, if any.
    pub last_order_at: Option<Timestamp>,
    /// Spend per currency code, largest first.
    pub spend: Vec<(String, i64)>,
    /// Top-level categories by units, most first.
    pub top_categories: Vec<AffinityRow>,
    /// Brands by units, most first.
    pub top_brands: Vec<AffinityRow>,
}

/// Units and orders of one category or brand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AffinityRow {
    /// Category or brand name.
    pub name: String,
    /// Units bought.
    pub units: i64,
    /// Orders containing it.
    pub orders: i64,
}

/// One browsing event, as read back.
#[derive(Debug, Clone)]
pub struct EventRow {
    /// What kind.
    pub kind: EventKind,
    /// The product, for product events.
    pub product_id: Option<String>,
    /// The text, for searches.
    pub search_query: Option<String>,
    /// Channel.
    pub channel: String,
    /// When.
    pub occurred_at: Timestamp,
}

/// A catalog product as stored now.
#[derive(Debug, Clone, Default)]
pub struct ProductRow {
    /// Product id.
    pub product_id: String,
    /// Name.
    pub name: String,
    /// Brand.
    pub brand: String,
    /// Stored category path.
    pub category_path: String,
    /// Price in minor units.
    pub price_minor: i64,
    /// Currency code.
    pub currency: String,
    /// Tracked quantity, if any.
    pub stock_quantity: Option<i64>,
    /// In stock.
    pub in_stock: bool,
    /// Style/group id.
    pub group_id: String,
    /// Sold at all.
    pub active: bool,
    /// Page link.
    pub url: String,
    /// Image link.
    pub image_url: String,
    /// Days after which a bought product may be suggested again.
    pub replenish_days: Option<i64>,
    /// Its size, for a variant of a sized style.
    pub size: Option<Size>,
}

/// Catalogue rows by product id, each shared with the replica's memory of
/// it rather than copied.
pub type ProductRows = std::collections::HashMap<String, std::sync::Arc<ProductRow>>;

/// An order with (some of) its lines.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderRow {
    /// Order id.
    pub order_id: String,
    /// Status.
    pub status: OrderStatus,
    /// When placed.
    pub placed_at: Timestamp,
    /// Currency of the amounts.
    pub currency: String,
    /// Total charged.
    pub total_minor: i64,
    /// Channel.
    pub channel: String,
    /// Lines the order has in all.
    pub line_count: i64,
    /// The first lines.
    pub lines: Vec<OrderLineRow>,
}

/// One order line, with what the order recorded about the product.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderLineRow {
    /// Product id.
    pub product_id: String,
    /// Units.
    pub quantity: i64,
    /// Unit price paid.
    pub unit_price_minor: i64,
    /// Name at the time.
    pub name: String,
    /// Brand at the time.
    pub brand: String,
    /// Category at the time.
    pub category_path: String,
    /// Units of this product returned from this order (rejected returns
    /// excluded).
    pub returned_quantity: i64,
}

/// A return with its lines.
#[derive(Debug, Clone, PartialEq)]
pub struct ReturnRow {
    /// Return id.
    pub return_id: String,
    /// Order id.
    pub order_id: String,
    /// Status.
    pub status: ReturnStatus,
    /// Reason code.
    pub reason_code: String,
    /// Reason text.
    pub reason_text: String,
    /// When requested.
    pub requested_at: Timestamp,
    /// Refund, as (currency, minor units), if known.
    pub refund: Option<(String, i64)>,
    /// (product id, quantity) of the first lines.
    pub lines: Vec<(String, i64)>,
}

/// An unresolved ticket with its related order's status.
#[derive(Debug, Clone, PartialEq)]
pub struct TicketRow {
    /// Ticket id.
    pub ticket_id: String,
    /// Subject.
    pub subject: String,
    /// Status.
    pub status: TicketStatus,
    /// Priority.
    pub priority: TicketPriority,
    /// Channel.
    pub channel: String,
    /// Related order id.
    pub order_id: Option<String>,
    /// Related order's status and placement, when the order is known.
    pub order: Option<(OrderStatus, Timestamp)>,
    /// Opened.
    pub created_at: Timestamp,
    /// Last changed.
    pub updated_at: Timestamp,
}

/// Most lines read per order or return.
pub const LINES_PER_RECORD: i64 = 50;

pub(super) fn stored<T>(value: Option<T>, what: &str, raw: &str) -> Result<T, Error> {
    value.ok_or_else(|| Error::Internal(anyhow!("unknown stored {what} {raw:?}")))
}

fn product_row(row: &AnyRow) -> Result<ProductRow, Error> {
    Ok(ProductRow {
        product_id: row.try_get(0)?,
        name: row.try_get(1)?,
        brand: row.try_get(2)?,
        category_path: row.try_get(3)?,
        price_minor: row.try_get(4)?,
        currency: row.try_get(5)?,
        stock_quantity: row.try_get(6)?,
        in_stock: row.try_get::<i64, _>(7)? != 0,
        group_id: row.try_get(8)?,
        active: row.try_get::<i64, _>(9)? != 0,
        url: row.try_get(10)?,
        image_url: row.try_get(11)?,
        replenish_days: row.try_get(12)?,
        size: stored_size(row.try_get(13)?, row.try_get(14)?),
    })
}

/// A size as stored in two columns (both NULL for none).
fn stored_size(label: Option<String>, system: Option<String>) -> Option<Size> {
    label.map(|l| Size::from_stored(&l, system.as_deref().unwrap_or("other")))
}

impl Store {
    /// Finds whom an identity leads to: a customer, an anonymous visitor
    /// with browsing, or nobody.
    #[instrument(skip_all)]
    pub async fn resolve(&self, key: &CustomerKey) -> Result<Option<Subject>, Error> {
        match key {
            CustomerKey::Id(id) => {
                let row = sqlx::query("SELECT 1 FROM customers WHERE customer_id = $1")
                    .bind(id.as_str())
                    .fetch_optional(&self.reader)
                    .await?;
                Ok(row.map(|_| Subject::Customer(id.clone())))
            }
            CustomerKey::Identity(identity) => {
                let mut conn = self.reader.acquire().await?;
                if let Some(c) = super::customers::customer_of(&mut conn, identity).await? {
                    return Ok(Some(Subject::Customer(c)));
                }
                if identity.kind() != IdentityKind::AnonymousId {
                    return Ok(None);
                }
                let seen = sqlx::query("SELECT 1 FROM events WHERE anonymous_id = $1 LIMIT 1")
                    .bind(identity.value())
                    .fetch_optional(&mut *conn)
                    .await?;
                match seen {
                    Some(_) => Ok(Some(Subject::Anonymous(
                        AnonymousId::parse(identity.value())
                            .map_err(|e| anyhow!("stored anonymous id {e}"))?,
                    ))),
                    None => Ok(None),
                }
            }
        }
    }

    /// The most recent browsing events of a subject since `since`, newest
    /// first, at most `limit`.
    #[instrument(skip_all, fields(limit))]
    pub async fn recent_events(
        &self,
        subject: &Subject,
        since: Timestamp,
        limit: i64,
    ) -> Result<Vec<EventRow>, Error> {
        let (sql, id) = match subject {
            Subject::Customer(c) => (
                "SELECT event_type, product_id, search_query, channel, occurred_at FROM events \
                 WHERE customer_id = $1 AND occurred_at >= $2 ORDER BY occurred_at DESC LIMIT $3",
                c.as_str(),
            ),
            Subject::Anonymous(a) => (
                "SELECT event_type, product_id, search_query, channel, occurred_at FROM events \
                 WHERE anonymous_id = $1 AND occurred_at >= $2 ORDER BY occurred_at DESC LIMIT $3",
                a.as_str(),
            ),
        };
        let rows = sqlx::query(sql)
            .bind(id)
            .bind(since.millis())
            .bind(limit)
            .fetch_all(&self.reader)
            .await?;
        rows.iter()
            .map(|r| {
                let kind: String = r.try_get(0)?;
                Ok(EventRow {
                    kind: stored(EventKind::from_stored(&kind), "event type", &kind)?,
                    product_id: r.try_get(1)?,
                    search_query: r.try_get(2)?,
                    channel: r.try_get(3)?,
                    occurred_at: instant(r.try_get(4)?)?,
                })
            })
            .collect()
    }

    /// Products bought by a customer since `since` with the time of each
    /// purchase, newest first, at most `limit` lines.
    #[instrument(skip_all)]
    pub async fn purchases_since(
        &self,
        customer: &CustomerId,
        since: Timestamp,
        limit: i64,
    ) -> Result<Vec<(String, Timestamp)>, Error> {
        let rows = sqlx::query(
            "SELECT l.product_id, o.placed_at FROM orders o JOIN order_lines l ON l.order_id = o.order_id \
             WHERE o.customer_id = $1 AND o.placed_at >= $2 AND o.status <> 'cancelled' \
             ORDER BY o.placed_at DESC LIMIT $3",
        )
        .bind(customer.as_str())
        .bind(since.millis())
        .bind(limit)
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, instant(r.try_get(1)?)?)))
            .collect()
    }

    /// The catalog rows of the given products (unknown ids are left out).
    #[instrument(skip_all, fields(count = ids.len()))]
    pub async fn products(&self, ids: &[&str]) -> Result<HashMap<String, ProductRow>, Error> {
        let mut out = HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(PADDED_CHUNK) {
            // Padded to a power of two (the first id again): a handful of
            // statement texts, each prepared once per connection, instead
            // of one per list length that the statement cache keeps
            // evicting.
            let n = padded_len(chunk.len());
            let sql = format!(
                "SELECT product_id, name, brand, category_path, price_minor, currency, stock_quantity, in_stock, \
                 group_id, active, url, image_url, replenish_days, size_label, size_system FROM products WHERE product_id IN ({})",
                placeholders(1, n)
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for id in chunk
                .iter()
                .chain(std::iter::repeat_n(&chunk[0], n - chunk.len()))
            {
                q = q.bind(*id);
            }
            for row in q.fetch_all(&self.reader).await? {
                let p = product_row(&row)?;
                out.insert(p.product_id.clone(), p);
            }
        }
        Ok(out)
    }
}

/// Most ids in one padded `IN` list.
const PADDED_CHUNK: usize = 512;

/// The length a list of `n` ids (1 to [`PADDED_CHUNK`]) is padded to: the
/// next power of two.
fn padded_len(n: usize) -> usize {
    n.max(1).next_power_of_two().min(PADDED_CHUNK)
}

/// A catalog row for offline evaluation.
#[derive(Debug, Clone)]
pub struct CatalogRow {
    /// Product id.
    pub product_id: String,
    /// Name.
    pub name: String,
    /// Style group id.
    pub group_id: String,
    /// Stored category path.
    pub category_path: String,
    /// Price in minor units.
    pub price_minor: i64,
    /// Active and in stock.
    pub available: bool,
    /// Brand; may be empty.
    pub brand: String,
    /// Days after which a bought product may be suggested again.
    pub replenish_days: Option<i64>,
    /// Merchandise or not, when the retailer said so.
    pub merchandise: Option<bool>,
    /// Its size, for a variant of a sized style.
    pub size: Option<Size>,
}

/// One purchased line of the whole history, for offline evaluation.
#[derive(Debug, Clone)]
pub struct PurchaseRow {
    /// Customer.
    pub customer_id: String,
    /// Order.
    pub order_id: String,
    /// When the order was placed.
    pub placed_at: i64,
    /// Product.
    pub product_id: String,
}

/// The whole catalog, in one read of `conn` (model builds and evaluation).
pub(super) async fn catalog_rows_in(
    conn: &mut sqlx::AnyConnection,
) -> Result<Vec<CatalogRow>, Error> {
    let sql = format!("SELECT {CATALOG_COLUMNS} FROM products ORDER BY product_id");
    let rows = sqlx::query(AssertSqlSafe(sql))
        .fetch_all(&mut *conn)
        .await?;
    rows.iter().map(catalog_row).collect()
}

/// A catalogue row as model builds and replicas read it (the columns of
/// [`CATALOG_COLUMNS`], in order).
fn catalog_row(r: &AnyRow) -> Result<CatalogRow, Error> {
    Ok(CatalogRow {
        product_id: r.try_get(0)?,
        name: r.try_get(1)?,
        group_id: r.try_get(2)?,
        category_path: r.try_get(3)?,
        price_minor: r.try_get(4)?,
        available: r.try_get::<i64, _>(5)? != 0 && r.try_get::<i64, _>(6)? != 0,
        brand: r.try_get(7)?,
        replenish_days: r.try_get(8)?,
        merchandise: r.try_get::<Option<i64>, _>(9)?.map(|m| m != 0),
        size: stored_size(r.try_get(10)?, r.try_get(11)?),
    })
}

/// The columns [`catalog_row`] reads.
const CATALOG_COLUMNS: &str = "product_id, name, group_id, category_path, price_minor, in_stock, active, brand, replenish_days, merchandise, size_label, size_system";

/// Every purchased line of every non-cancelled order of a known customer,
/// ordered by customer, time and order, in one read of `conn`.
pub(super) async fn purchase_rows_in(
    conn: &mut sqlx::AnyConnection,
) -> Result<Vec<PurchaseRow>, Error> {
    let rows = sqlx::query(
        "SELECT o.customer_id, o.order_id, o.placed_at, l.product_id FROM orders o \
         JOIN order_lines l ON l.order_id = o.order_id \
         WHERE o.customer_id IS NOT NULL AND o.status <> 'cancelled' \
         ORDER BY o.customer_id, o.placed_at, o.order_id, l.line_no",
    )
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(PurchaseRow {
                customer_id: r.try_get(0)?,
                order_id: r.try_get(1)?,
                placed_at: r.try_get(2)?,
                product_id: r.try_get(3)?,
            })
        })
        .collect()
}

impl Store {
    /// The catalog rows of the given products (unknown ids are left out),
    /// as a model build reads them: for replicas applying product changes.
    pub async fn catalog_rows_of(&self, ids: &[&str]) -> Result<Vec<CatalogRow>, Error> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(IN_CHUNK) {
            let sql = format!(
                "SELECT {CATALOG_COLUMNS} FROM products WHERE product_id IN ({})",
                placeholders(1, chunk.len())
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for id in chunk {
                q = q.bind(*id);
            }
            for r in q.fetch_all(&self.reader).await? {
                out.push(catalog_row(&r)?);
            }
        }
        Ok(out)
    }

    /// Up to `n` catalogue rows after `after` in product id order: the
    /// catalogue read a page at a time (the text index is built this way,
    /// without holding a million rows at once).
    #[instrument(skip_all, fields(n))]
    pub async fn catalog_page(&self, after: &str, n: i64) -> Result<Vec<CatalogRow>, Error> {
        let sql = format!(
            "SELECT {CATALOG_COLUMNS} FROM products WHERE product_id > $1 ORDER BY product_id LIMIT $2"
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(after)
            .bind(n)
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(catalog_row).collect()
    }
}

impl Store {
    /// Customers for a benchmark: the one with the most orders, and up to
    /// `n` others with at least one order, spread evenly over the id
    /// order (deterministic).
    pub async fn bench_customers(&self, n: usize) -> Result<(Option<String>, Vec<String>), Error> {
        let hot: Option<String> = sqlx::query_scalar(
            "SELECT customer_id FROM customers ORDER BY order_count DESC, customer_id LIMIT 1",
        )
        .fetch_optional(&self.reader)
        .await?;
        let all: Vec<String> = sqlx::query_scalar(
            "SELECT customer_id FROM customers WHERE order_count > 0 ORDER BY customer_id LIMIT 1000000",
        )
        .fetch_all(&self.reader)
        .await?;
        let step = (all.len() / n.max(1)).max(1);
        let picked = all.into_iter().step_by(step).take(n).collect();
        Ok((hot, picked))
    }

    /// Up to `n` product names spread over the catalogue, for load tests.
    pub async fn bench_product_names(&self, n: usize) -> Result<Vec<String>, Error> {
        let all: Vec<String> =
            sqlx::query_scalar("SELECT name FROM products ORDER BY product_id LIMIT 1000000")
                .fetch_all(&self.reader)
                .await?;
        let step = (all.len() / n.max(1)).max(1);
        Ok(all.into_iter().step_by(step).take(n).collect())
    }

    /// Up to `n` product ids spread over the catalogue, for load tests.
    pub async fn bench_products(&self, n: usize) -> Result<Vec<String>, Error> {
        let all: Vec<String> =
            sqlx::query_scalar("SELECT product_id FROM products ORDER BY product_id LIMIT 1000000")
                .fetch_all(&self.reader)
                .await?;
        let step = (all.len() / n.max(1)).max(1);
        Ok(all.into_iter().step_by(step).take(n).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::{PADDED_CHUNK, padded_len};

    #[test]
    fn id_lists_are_padded_to_few_lengths() {
        assert_eq!(padded_len(1), 1);
        assert_eq!(padded_len(3), 4);
        assert_eq!(padded_len(64), 64);
        assert_eq!(padded_len(65), 128);
        assert_eq!(padded_len(PADDED_CHUNK), PADDED_CHUNK);
        let lengths: std::collections::BTreeSet<usize> =
            (1..=PADDED_CHUNK).map(padded_len).collect();
        assert_eq!(lengths.len(), 10, "{lengths:?}");
        assert!((1..=PADDED_CHUNK).all(|n| padded_len(n) >= n));
    }
}
