//! Orders, and the running totals they feed (spend, units, affinities).

use std::collections::{BTreeMap, HashMap};

use sqlx::{AnyConnection, AssertSqlSafe, Row};
use tracing::instrument;

use super::{
    IN_CHUNK, Store, actor_key,
    customers::{customer_of_anonymous, link, touch_customer},
    in_request_order, lock_order, placeholders,
};
use crate::domain::{
    CategoryPath, Change, ChangeKind, CustomerId, Error, Identity, ItemResult, Order, OrderStatus,
    Timestamp, WriteOutcome, fingerprint,
};

/// What one order contributes to its customer's running totals.
struct Contribution {
    counts: bool,
    currency: String,
    total_minor: i64,
    units: i64,
    placed_at: i64,
    /// Units per top-level category and per brand.
    affinities: BTreeMap<(&'static str, String), i64>,
    /// Distinct products, in line order (for the co-purchase model).
    products: Vec<String>,
    /// Distinct product groups (styles), for "already bought".
    groups: Vec<String>,
}

impl Contribution {
    fn from_lines<'a>(
        status: OrderStatus,
        currency: String,
        total_minor: i64,
        placed_at: i64,
        lines: impl Iterator<Item = (&'a str, &'a str, i64, &'a str, &'a str)>,
    ) -> Self {
        let mut affinities = BTreeMap::new();
        let mut units = 0;
        let mut products: Vec<String> = Vec::new();
        let mut groups: Vec<String> = Vec::new();
        for (product_id, group_id, quantity, brand, category_path) in lines {
            if !products.iter().any(|p| p == product_id) {
                products.push(product_id.to_owned());
            }
            if !groups.iter().any(|g| g == group_id) {
                groups.push(group_id.to_owned());
            }
            units += quantity;
            let top = CategoryPath::from_stored(category_path).top().to_owned();
            if !top.is_empty() {
                *affinities.entry(("category", top)).or_insert(0) += quantity;
            }
            if !brand.is_empty() {
                *affinities.entry(("brand", brand.to_owned())).or_insert(0) += quantity;
            }
        }
        Self {
            counts: status.counts(),
            currency,
            total_minor,
            units,
            placed_at,
            affinities,
            products,
            groups,
        }
    }
}

/// Adds (`sign` = 1) or removes (`sign` = -1) an order's contribution,
/// and tells the change feed its products entered or left the co-purchase
/// counts.
async fn apply(
    conn: &mut AnyConnection,
    customer: &str,
    c: &Contribution,
    sign: i64,
    changes: &mut Vec<Change>,
) -> Result<(), Error> {
    if !c.counts {
        return Ok(());
    }
    changes.push(Change::basket(sign > 0, c.placed_at, c.products.clone()));
    for group in &c.groups {
        sqlx::query(
            "INSERT INTO customer_groups (customer_id, group_id, orders, last_bought_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (customer_id, group_id) DO UPDATE SET orders = customer_groups.orders + excluded.orders, \
             last_bought_at = CASE WHEN excluded.last_bought_at > customer_groups.last_bought_at \
             THEN excluded.last_bought_at ELSE customer_groups.last_bought_at END",
        )
        .bind(customer)
        .bind(group.as_str())
        .bind(sign)
        .bind(if sign > 0 { c.placed_at } else { 0 })
        .execute(&mut *conn)
        .await?;
    }
    if sign < 0 {
        sqlx::query("DELETE FROM customer_groups WHERE customer_id = $1 AND orders <= 0")
            .bind(customer)
            .execute(&mut *conn)
            .await?;
    }
    // Running totals saturate at MAX_TOTAL instead of overflowing: on
    // SQLite an overflowing `+` would store a float that no read accepts.
    sqlx::query(
        "UPDATE customers SET order_count = order_count + $2, \
         units_purchased = CASE WHEN units_purchased > $5 - $3 THEN $5 ELSE units_purchased + $3 END, \
         last_order_at = CASE WHEN last_order_at IS NULL OR last_order_at < $4 THEN $4 ELSE last_order_at END \
         WHERE customer_id = $1",
    )
    .bind(customer)
    .bind(sign)
    .bind(sign * c.units)
    .bind(c.placed_at)
    .bind(super::MAX_TOTAL)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO customer_spend (customer_id, currency, spend_minor) VALUES ($1, $2, $3) \
         ON CONFLICT (customer_id, currency) DO UPDATE SET spend_minor = CASE \
         WHEN customer_spend.spend_minor > $4 - excluded.spend_minor THEN $4 \
         ELSE customer_spend.spend_minor + excluded.spend_minor END",
    )
    .bind(customer)
    .bind(&c.currency)
    .bind(sign * c.total_minor)
    .bind(super::MAX_TOTAL)
    .execute(&mut *conn)
    .await?;
    for ((kind, name), units) in &c.affinities {
        sqlx::query(
            "INSERT INTO customer_affinities (customer_id, kind, name, units, orders) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (customer_id, kind, name) DO UPDATE SET \
             units = customer_affinities.units + excluded.units, orders = customer_affinities.orders + excluded.orders",
        )
        .bind(customer)
        .bind(*kind)
        .bind(name)
        .bind(sign * units)
        .bind(sign)
        .execute(&mut *conn)
        .await?;
    }
    if sign < 0 {
        sqlx::query("DELETE FROM customer_affinities WHERE customer_id = $1 AND orders <= 0")
            .bind(customer)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
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
    for row in rows {
        let order_id: String = row.try_get(0)?;
        sqlx::query("UPDATE orders SET customer_id = $1 WHERE order_id = $2")
            .bind(customer_id.as_str())
            .bind(&order_id)
            .execute(&mut *conn)
            .await?;
        if let Some((_, c)) = stored_contribution(conn, &order_id).await? {
            let at = super::instant(c.placed_at)?;
            touch_customer(conn, customer_id, at, at).await?;
            apply(conn, customer_id.as_str(), &c, 1, changes).await?;
        }
        attached += 1;
    }
    Ok(attached)
}

/// Name, brand and category of catalog products, for order lines that did
/// not carry them.
async fn catalog_facts(
    conn: &mut AnyConnection,
    ids: &[&str],
) -> Result<HashMap<String, (String, String, String, String)>, Error> {
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

impl Store {
    /// Records orders in one transaction. A resent order with new content
    /// (a status change) replaces the stored one and its totals.
    #[instrument(skip_all, fields(count = orders.len()))]
    pub async fn record_orders(&self, orders: &[Order]) -> Result<Vec<ItemResult>, Error> {
        self.retrying(|| self.record_orders_once(orders)).await
    }

    async fn record_orders_once(&self, orders: &[Order]) -> Result<Vec<ItemResult>, Error> {
        let hash_key = self.hash_key().await?;
        let mut tx = self.begin_write().await?;
        let suppression = super::trust::Suppression::load(&mut tx, hash_key).await?;
        let mut results = Vec::with_capacity(orders.len());
        let mut changes = Vec::new();
        let order = lock_order(orders, |o| (actor_key(&o.actor), o.order_id.as_str()));
        for o in order.iter().map(|&i| &orders[i]) {
            let identities: Vec<Identity> = o
                .actor
                .anonymous_id()
                .cloned()
                .map(Identity::from)
                .into_iter()
                .collect();
            let keys = super::trust::suppression_keys(o.actor.customer_id(), &identities);
            if suppression.check(&mut tx, &keys).await? {
                results.push(Ok(WriteOutcome::Suppressed));
                continue;
            }
            results.push(record_order(&mut tx, o, &mut changes).await?);
        }
        super::feed::append(&mut tx, &changes).await?;
        tx.commit().await?;
        Ok(in_request_order(&order, results))
    }
}

async fn record_order(
    conn: &mut AnyConnection,
    o: &Order,
    changes: &mut Vec<Change>,
) -> Result<ItemResult, Error> {
    let hash = fingerprint(o);
    let stored = sqlx::query("SELECT content_hash FROM orders WHERE order_id = $1")
        .bind(o.order_id.as_str())
        .fetch_optional(&mut *conn)
        .await?;
    let existed = match stored {
        Some(row) if row.try_get::<i64, _>(0)? == hash => return Ok(Ok(WriteOutcome::Duplicate)),
        Some(_) => true,
        None => false,
    };

    let customer = match (o.actor.customer_id(), o.actor.anonymous_id()) {
        (Some(c), Some(a)) => {
            touch_customer(conn, c, o.placed_at, o.placed_at).await?;
            if customer_of_anonymous(conn, a).await?.is_none() {
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
            apply(conn, &old_customer, &old, -1, changes).await?;
        }
        sqlx::query("DELETE FROM order_lines WHERE order_id = $1")
            .bind(o.order_id.as_str())
            .execute(&mut *conn)
            .await?;
    }
    sqlx::query(
        "INSERT INTO orders (order_id, customer_id, anonymous_id, status, placed_at, currency, total_minor, \
         channel, line_count, content_hash, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
         ON CONFLICT (order_id) DO UPDATE SET customer_id = excluded.customer_id, \
         anonymous_id = excluded.anonymous_id, status = excluded.status, placed_at = excluded.placed_at, \
         currency = excluded.currency, total_minor = excluded.total_minor, channel = excluded.channel, \
         line_count = excluded.line_count, content_hash = excluded.content_hash, updated_at = excluded.updated_at",
    )
    .bind(o.order_id.as_str())
    .bind(customer.as_ref().map(CustomerId::as_str))
    .bind(o.actor.anonymous_id().map(|a| a.as_str()))
    .bind(o.status.as_str())
    .bind(o.placed_at.millis())
    .bind(o.currency.as_str())
    .bind(o.total_minor)
    .bind(&o.channel)
    .bind(o.lines.len() as i64)
    .bind(hash)
    .bind(Timestamp::now().millis())
    .execute(&mut *conn)
    .await?;

    // Lines keep the product as it was; gaps are filled from the catalog.
    // (and every line's style group, for "already bought").
    let ids: Vec<&str> = o.lines.iter().map(|l| l.product_id.as_str()).collect();
    let facts = catalog_facts(conn, &ids).await?;
    let mut snapshot = Vec::with_capacity(o.lines.len());
    for (i, l) in o.lines.iter().enumerate() {
        let known = facts.get(l.product_id.as_str());
        let pick = |own: String, catalog: Option<&String>| {
            if own.is_empty() {
                catalog.cloned().unwrap_or_default()
            } else {
                own
            }
        };
        let name = pick(l.name.clone(), known.map(|k| &k.0));
        let brand = pick(l.brand.clone(), known.map(|k| &k.1));
        let category = pick(l.category.to_stored(), known.map(|k| &k.2));
        let group = known.map_or_else(|| l.product_id.as_str().to_owned(), |k| k.3.clone());
        sqlx::query(
            "INSERT INTO order_lines (order_id, line_no, product_id, quantity, unit_price_minor, name, brand, \
             category_path, group_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(o.order_id.as_str())
        .bind(i as i64)
        .bind(l.product_id.as_str())
        .bind(l.quantity)
        .bind(l.unit_price_minor)
        .bind(&name)
        .bind(&brand)
        .bind(&category)
        .bind(&group)
        .execute(&mut *conn)
        .await?;
        snapshot.push((l.product_id.as_str(), group, l.quantity, brand, category));
    }

    if let Some(c) = &customer {
        touch_customer(conn, c, o.placed_at, o.placed_at).await?;
        let contribution = Contribution::from_lines(
            o.status,
            o.currency.as_str().to_owned(),
            o.total_minor,
            o.placed_at.millis(),
            snapshot
                .iter()
                .map(|(p, g, q, b, cat)| (*p, g.as_str(), *q, b.as_str(), cat.as_str())),
        );
        apply(conn, c.as_str(), &contribution, 1, changes).await?;
        changes.push(Change::customer(ChangeKind::Order, c.as_str()));
        if contribution.counts {
            super::suggestions::attribute_order(
                conn,
                c.as_str(),
                o.order_id.as_str(),
                contribution.placed_at,
                &contribution.groups,
            )
            .await?;
        }
    }
    Ok(Ok(if existed {
        WriteOutcome::Updated
    } else {
        WriteOutcome::Created
    }))
}
