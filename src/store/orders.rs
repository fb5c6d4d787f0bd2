//! Orders, and the running totals they feed (spend, units, affinities).

use std::collections::HashMap;

use sqlx::{AnyConnection, AssertSqlSafe, Row};
use tracing::instrument;

use super::batch::{BatchWrite, Names, Writing};
use super::{
    IN_CHUNK, ROWS_PER_STATEMENT, Store, actor_key,
    customers::{customer_of_anonymous, link, touch_customer},
    placeholders,
    totals::{Contribution, Totals},
    values_rows,
};
use crate::domain::{
    Change, ChangeKind, CustomerId, Error, Identity, ItemResult, Order, OrderLine, OrderStatus,
    Timestamp, WriteOutcome, fingerprint,
};

/// Adds (`sign` = 1) or removes (`sign` = -1) an order's contribution to
/// its customer's totals, and tells the change feed its products entered or
/// left the co-purchase counts.
fn contribute(
    totals: &mut Totals,
    customer: &str,
    c: &Contribution,
    sign: i64,
    changes: &mut Vec<Change>,
) {
    if c.counts {
        changes.push(Change::basket(sign > 0, c.placed_at, c.products.clone()));
    }
    totals.add(customer, c, sign);
}

/// Reads back what a stored order contributes.
async fn stored_contribution(
    conn: &mut AnyConnection,
    order_id: &str,
) -> Result<Option<(Option<String>, Contribution)>, Error> {
    let Some(head) = sqlx::query("SELECT customer_id, status, currency, total_minor, placed_at FROM orders WHERE order_id = $1")
        .bind(order_id)
        .fetch_optional(&mut *conn)
        .await?
    else {
        return Ok(None);
    };
    let status: String = head.try_get(1)?;
    let status = OrderStatus::from_stored(&status)
        .ok_or_else(|| anyhow::anyhow!("stored order status {status:?}"))?;
    let lines =
        sqlx::query("SELECT product_id, COALESCE(group_id, product_id), quantity, brand, category_path FROM order_lines WHERE order_id = $1 ORDER BY line_no")
            .bind(order_id)
            .fetch_all(&mut *conn)
            .await?;
    let mut decoded = Vec::with_capacity(lines.len());
    for l in &lines {
        decoded.push((
            l.try_get::<String, _>(0)?,
            l.try_get::<String, _>(1)?,
            l.try_get::<i64, _>(2)?,
            l.try_get::<String, _>(3)?,
            l.try_get::<String, _>(4)?,
        ));
    }
    let contribution = Contribution::from_lines(
        status,
        head.try_get(2)?,
        head.try_get(3)?,
        head.try_get(4)?,
        decoded
            .iter()
            .map(|(p, g, q, b, c)| (p.as_str(), g.as_str(), *q, b.as_str(), c.as_str())),
    );
    Ok(Some((head.try_get(0)?, contribution)))
}

/// Gives a customer the guest orders placed under one of their anonymous
/// ids. Returns how many were attached.
pub(super) async fn attach_guest_orders(
    conn: &mut AnyConnection,
    customer_id: &CustomerId,
    anonymous_id: &str,
    changes: &mut Vec<Change>,
) -> Result<u64, Error> {
    let rows =
        sqlx::query("SELECT order_id FROM orders WHERE anonymous_id = $1 AND customer_id IS NULL")
            .bind(anonymous_id)
            .fetch_all(&mut *conn)
            .await?;
    let mut attached = 0;
    let mut totals = Totals::default();
    for row in rows {
        let order_id: String = row.try_get(0)?;
        sqlx::query("UPDATE orders SET customer_id = $1 WHERE order_id = $2")
            .bind(customer_id.as_str())
            .bind(&order_id)
            .execute(&mut *conn)
            .await?;
        if let Some((_, c)) = stored_contribution(conn, &order_id).await? {
            totals.touch(customer_id.as_str(), c.placed_at);
            contribute(&mut totals, customer_id.as_str(), &c, 1, changes);
        }
        attached += 1;
    }
    totals.flush(conn).await?;
    Ok(attached)
}

/// Name, brand and category of catalog products, for order lines that did
/// not carry them.
async fn catalog_facts(
    conn: &mut AnyConnection,
    ids: &[&str],
) -> Result<HashMap<String, Facts>, Error> {
    let mut out = HashMap::new();
    for chunk in ids.chunks(IN_CHUNK) {
        let sql = format!(
            "SELECT product_id, name, brand, category_path, group_id FROM products WHERE product_id IN ({})",
            placeholders(1, chunk.len())
        );
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for id in chunk {
            q = q.bind(*id);
        }
        for row in q.fetch_all(&mut *conn).await? {
            out.insert(
                row.try_get(0)?,
                (
                    row.try_get(1)?,
                    row.try_get(2)?,
                    row.try_get(3)?,
                    row.try_get(4)?,
                ),
            );
        }
    }
    Ok(out)
}

/// Catalog facts of a product: name, brand, category path, group.
type Facts = (String, String, String, String);

/// An order line as it will be stored: the product as it was, gaps filled
/// from the catalog, and its style group.
struct Line<'a> {
    order_id: &'a str,
    line_no: i64,
    line: &'a OrderLine,
    name: String,
    brand: String,
    category: String,
    group: String,
}

/// A batch of orders being recorded: what was read up front for all of
/// them, and the writes deferred to [`Batch::flush`] (a few multi-row
/// statements instead of about twenty statements an order).
struct Batch<'a> {
    /// Content hash of each order stored before, or earlier in the batch.
    stored: HashMap<String, i64>,
    /// The catalog facts of every product the batch orders.
    facts: HashMap<String, Facts>,
    /// Order rows to write: the order, its customer, its content hash.
    rows: Vec<(&'a Order, Option<CustomerId>, i64)>,
    lines: Vec<Line<'a>>,
    totals: Totals,
    /// Counted orders to attribute to suggestions: customer, order, placed
    /// at, style groups.
    attributions: Vec<(CustomerId, &'a str, i64, Vec<String>)>,
}

impl<'a> Batch<'a> {
    async fn read(conn: &mut AnyConnection, orders: &[&'a Order]) -> Result<Self, Error> {
        let ids: Vec<&str> = orders.iter().map(|o| o.order_id.as_str()).collect();
        let stored = super::stored_hashes(conn, super::Hashes::Orders, &ids).await?;
        let mut products: Vec<&str> = orders
            .iter()
            .flat_map(|o| o.lines.iter().map(|l| l.product_id.as_str()))
            .collect();
        products.sort_unstable();
        products.dedup();
        Ok(Self {
            stored,
            facts: catalog_facts(conn, &products).await?,
            rows: Vec::new(),
            lines: Vec::new(),
            totals: Totals::default(),
            attributions: Vec::new(),
        })
    }

    /// Writes what is pending, each table in key order.
    async fn flush(&mut self, conn: &mut AnyConnection) -> Result<(), Error> {
        self.rows.sort_by(|a, b| a.0.order_id.cmp(&b.0.order_id));
        for chunk in self.rows.chunks(ROWS_PER_STATEMENT) {
            insert_orders(conn, chunk).await?;
        }
        self.rows.clear();
        self.lines
            .sort_by(|a, b| (a.order_id, a.line_no).cmp(&(b.order_id, b.line_no)));
        for chunk in self.lines.chunks(ROWS_PER_STATEMENT) {
            insert_lines(conn, chunk).await?;
        }
        self.lines.clear();
        self.totals.flush(conn).await?;
        let attributions = std::mem::take(&mut self.attributions);
        let customers: Vec<&str> = attributions.iter().map(|a| a.0.as_str()).collect();
        let with_suggestions = super::suggestions::with_suggestions(conn, &customers).await?;
        for (customer, order_id, placed_at, groups) in &attributions {
            if with_suggestions.contains(customer.as_str()) {
                super::suggestions::attribute_order(
                    conn,
                    customer.as_str(),
                    order_id,
                    *placed_at,
                    groups,
                )
                .await?;
            }
        }
        Ok(())
    }
}

async fn insert_orders(
    conn: &mut AnyConnection,
    rows: &[(&Order, Option<CustomerId>, i64)],
) -> Result<(), Error> {
    let sql = format!(
        "INSERT INTO orders (order_id, customer_id, anonymous_id, status, placed_at, currency, total_minor, \
         channel, line_count, content_hash, updated_at) VALUES {} \
         ON CONFLICT (order_id) DO UPDATE SET customer_id = excluded.customer_id, \
         anonymous_id = excluded.anonymous_id, status = excluded.status, placed_at = excluded.placed_at, \
         currency = excluded.currency, total_minor = excluded.total_minor, channel = excluded.channel, \
         line_count = excluded.line_count, content_hash = excluded.content_hash, updated_at = excluded.updated_at",
        values_rows(conn, rows.len(), 11)
    );
    let now = Timestamp::now().millis();
    let mut q = sqlx::query(AssertSqlSafe(sql));
    for (o, customer, hash) in rows {
        q = q
            .bind(o.order_id.as_str())
            .bind(customer.as_ref().map(CustomerId::as_str))
            .bind(o.actor.anonymous_id().map(|a| a.as_str()))
            .bind(o.status.as_str())
            .bind(o.placed_at.millis())
            .bind(o.currency.as_str())
            .bind(o.total_minor)
            .bind(o.channel.as_str())
            .bind(o.lines.len() as i64)
            .bind(*hash)
            .bind(now);
    }
    q.execute(&mut *conn).await?;
    Ok(())
}

async fn insert_lines(conn: &mut AnyConnection, lines: &[Line<'_>]) -> Result<(), Error> {
    let sql = format!(
        "INSERT INTO order_lines (order_id, line_no, product_id, quantity, unit_price_minor, name, brand, \
         category_path, group_id) VALUES {}",
        values_rows(conn, lines.len(), 9)
    );
    let mut q = sqlx::query(AssertSqlSafe(sql));
    for l in lines {
        q = q
            .bind(l.order_id)
            .bind(l.line_no)
            .bind(l.line.product_id.as_str())
            .bind(l.line.quantity)
            .bind(l.line.unit_price_minor)
            .bind(l.name.as_str())
            .bind(l.brand.as_str())
            .bind(l.category.as_str())
            .bind(l.group.as_str());
    }
    q.execute(&mut *conn).await?;
    Ok(())
}

impl Store {
    /// Records orders in one transaction. A resent order with new content
    /// (a status change) replaces the stored one and its totals.
    #[instrument(skip_all, fields(count = orders.len()))]
    pub async fn record_orders(&self, orders: &[Order]) -> Result<Vec<ItemResult>, Error> {
        self.write_batch(&Orders, orders).await
    }
}

async fn record_order<'a>(
    conn: &mut AnyConnection,
    o: &'a Order,
    batch: &mut Batch<'a>,
    changes: &mut Vec<Change>,
) -> Result<ItemResult, Error> {
    let hash = fingerprint(o);
    let existed = match batch.stored.get(o.order_id.as_str()) {
        Some(&stored) if stored == hash => return Ok(Ok(WriteOutcome::Duplicate)),
        Some(_) => true,
        None => false,
    };
    if existed {
        // What the order contributed is read back from the database.
        batch.flush(conn).await?;
    }
    batch.stored.insert(o.order_id.as_str().to_owned(), hash);

    let customer = match (o.actor.customer_id(), o.actor.anonymous_id()) {
        (Some(c), Some(a)) => {
            if customer_of_anonymous(conn, a).await?.is_none() {
                // Written now, after what is pending, so rows are still
                // locked in key order.
                batch.flush(conn).await?;
                touch_customer(conn, c, o.placed_at, o.placed_at).await?;
                link(conn, c, &Identity::from(a.clone()), changes).await?;
            }
            Some(c.clone())
        }
        (Some(c), None) => Some(c.clone()),
        (None, Some(a)) => customer_of_anonymous(conn, a).await?,
        (None, None) => None,
    };

    if existed {
        if let Some((old_customer, old)) = stored_contribution(conn, o.order_id.as_str()).await?
            && let Some(old_customer) = old_customer
        {
            contribute(&mut batch.totals, &old_customer, &old, -1, changes);
        }
        sqlx::query("DELETE FROM order_lines WHERE order_id = $1")
            .bind(o.order_id.as_str())
            .execute(&mut *conn)
            .await?;
    }

    // Lines keep the product as it was; gaps are filled from the catalog
    // (and every line's style group, for "already bought").
    let first_line = batch.lines.len();
    for (i, l) in o.lines.iter().enumerate() {
        let known = batch.facts.get(l.product_id.as_str());
        let pick = |own: String, catalog: Option<&String>| {
            if own.is_empty() {
                catalog.cloned().unwrap_or_default()
            } else {
                own
            }
        };
        batch.lines.push(Line {
            order_id: o.order_id.as_str(),
            line_no: i as i64,
            line: l,
            name: pick(l.name.clone(), known.map(|k| &k.0)),
            brand: pick(l.brand.clone(), known.map(|k| &k.1)),
            category: pick(l.category.to_stored(), known.map(|k| &k.2)),
            group: known.map_or_else(|| l.product_id.as_str().to_owned(), |k| k.3.clone()),
        });
    }
    batch.rows.push((o, customer.clone(), hash));

    if let Some(c) = &customer {
        batch.totals.touch(c.as_str(), o.placed_at.millis());
        let contribution = Contribution::from_lines(
            o.status,
            o.currency.as_str().to_owned(),
            o.total_minor,
            o.placed_at.millis(),
            batch.lines[first_line..].iter().map(|l| {
                (
                    l.line.product_id.as_str(),
                    l.group.as_str(),
                    l.line.quantity,
                    l.brand.as_str(),
                    l.category.as_str(),
                )
            }),
        );
        contribute(&mut batch.totals, c.as_str(), &contribution, 1, changes);
        changes.push(Change::customer(ChangeKind::Order, c.as_str()));
        if contribution.counts {
            batch.attributions.push((
                c.clone(),
                o.order_id.as_str(),
                contribution.placed_at,
                contribution.groups,
            ));
        }
    }
    Ok(Ok(if existed {
        WriteOutcome::Updated
    } else {
        WriteOutcome::Created
    }))
}

/// Orders, written in a batch.
struct Orders;

impl BatchWrite for Orders {
    type Item = Order;
    type Answer = ItemResult;
    const NAMES: Names = Names::People;

    fn key(o: &Order) -> impl Ord + '_ {
        (actor_key(&o.actor), o.order_id.as_str())
    }

    fn names(o: &Order) -> Vec<String> {
        super::trust::actor_keys(&o.actor)
    }

    async fn write(
        &self,
        w: &mut Writing<'_>,
        orders: Vec<&Order>,
    ) -> Result<Vec<ItemResult>, Error> {
        let mut results = Vec::with_capacity(orders.len());
        let mut batch = Batch::read(w.tx, &orders).await?;
        for o in orders {
            if w.suppressed(&Self::names(o)).await? {
                results.push(Ok(WriteOutcome::Suppressed));
                continue;
            }
            results.push(record_order(w.tx, o, &mut batch, &mut w.changes).await?);
        }
        batch.flush(w.tx).await?;
        Ok(results)
    }
}
