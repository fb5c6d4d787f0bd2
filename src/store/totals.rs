//! The running totals orders move (order count, units, spend, styles
//! bought, category and brand affinities), summed in memory over a batch
//! and written at the end with one multi-row statement per table, each in
//! key order (see `lock_order`): a thousand orders cost a few statements,
//! not tens of thousands.

use std::collections::{BTreeMap, BTreeSet};

use sqlx::{AnyConnection, AssertSqlSafe};

use super::{MAX_TOTAL, ROWS_PER_STATEMENT, placeholders, values_rows};
use crate::domain::{CategoryPath, Error, OrderStatus};

/// What one order adds to (or, replaced, takes from) its customer.
pub(super) struct Contribution {
    pub counts: bool,
    pub currency: String,
    pub total_minor: i64,
    pub units: i64,
    pub placed_at: i64,
    /// Units per top-level category and per brand.
    pub affinities: BTreeMap<(&'static str, String), i64>,
    /// Distinct products, in line order (for the co-purchase model).
    pub products: Vec<String>,
    /// Distinct product groups (styles), for "already bought".
    pub groups: Vec<String>,
}

impl Contribution {
    pub fn from_lines<'a>(
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

/// One customer's row changes.
#[derive(Default)]
struct CustomerDelta {
    /// Activity span to widen the customer's first-seen / last-activity to.
    span: Option<(i64, i64)>,
    orders: i64,
    units: i64,
    last_order_at: Option<i64>,
}

/// Sums of the changes to write.
#[derive(Default)]
pub(super) struct Totals {
    customers: BTreeMap<String, CustomerDelta>,
    /// (customer, group) → (orders, last bought at).
    groups: BTreeMap<(String, String), (i64, i64)>,
    /// (customer, currency) → spend.
    spend: BTreeMap<(String, String), i64>,
    /// (customer, kind, name) → (units, orders).
    affinities: BTreeMap<(String, &'static str, String), (i64, i64)>,
    /// Customers that lost an order: rows that fell to zero are removed.
    shrunk: BTreeSet<String>,
}

impl Totals {
    /// Makes sure the customer exists and was active at `at`.
    pub fn touch(&mut self, customer: &str, at: i64) {
        let delta = self.customers.entry(customer.to_owned()).or_default();
        delta.span = Some(match delta.span {
            Some((first, last)) => (first.min(at), last.max(at)),
            None => (at, at),
        });
    }

    /// Adds (`sign` = 1) or removes (`sign` = -1) an order's contribution.
    pub fn add(&mut self, customer: &str, c: &Contribution, sign: i64) {
        if !c.counts {
            return;
        }
        self.touch(customer, c.placed_at);
        let delta = self.customers.get_mut(customer).expect("touched above");
        delta.orders += sign;
        delta.units = delta.units.saturating_add(sign * c.units);
        delta.last_order_at = delta.last_order_at.max(Some(c.placed_at));
        for group in &c.groups {
            let g = self
                .groups
                .entry((customer.to_owned(), group.clone()))
                .or_insert((0, 0));
            g.0 += sign;
            if sign > 0 {
                g.1 = g.1.max(c.placed_at);
            }
        }
        let spend = self
            .spend
            .entry((customer.to_owned(), c.currency.clone()))
            .or_insert(0);
        *spend = spend.saturating_add(sign * c.total_minor);
        for ((kind, name), units) in &c.affinities {
            let a = self
                .affinities
                .entry((customer.to_owned(), kind, name.clone()))
                .or_insert((0, 0));
            a.0 = a.0.saturating_add(sign * units);
            a.1 += sign;
        }
        if sign < 0 {
            self.shrunk.insert(customer.to_owned());
        }
    }

    /// Writes everything summed so far and starts again from nothing.
    /// Running totals saturate at `MAX_TOTAL` instead of overflowing: on
    /// SQLite an overflowing `+` would store a float that no read accepts.
    pub async fn flush(&mut self, conn: &mut AnyConnection) -> Result<(), Error> {
        let t = std::mem::take(self);
        t.write_customers(conn).await?;
        t.write_groups(conn).await?;
        t.write_spend(conn).await?;
        t.write_affinities(conn).await?;
        t.remove_emptied(conn).await
    }

    async fn write_customers(&self, conn: &mut AnyConnection) -> Result<(), Error> {
        let now = crate::domain::Timestamp::now().millis();
        let customers: Vec<_> = self.customers.iter().collect();
        for chunk in customers.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "INSERT INTO customers (customer_id, first_seen_at, last_activity_at, created_at, updated_at, \
                 order_count, units_purchased, last_order_at) VALUES {} \
                 ON CONFLICT (customer_id) DO UPDATE SET \
                 first_seen_at = CASE WHEN excluded.first_seen_at < customers.first_seen_at \
                     THEN excluded.first_seen_at ELSE customers.first_seen_at END, \
                 last_activity_at = CASE WHEN excluded.last_activity_at > customers.last_activity_at \
                     THEN excluded.last_activity_at ELSE customers.last_activity_at END, \
                 order_count = customers.order_count + excluded.order_count, \
                 units_purchased = CASE WHEN customers.units_purchased > {MAX_TOTAL} - excluded.units_purchased \
                     THEN {MAX_TOTAL} ELSE customers.units_purchased + excluded.units_purchased END, \
                 last_order_at = CASE WHEN excluded.last_order_at IS NOT NULL AND (customers.last_order_at IS NULL \
                     OR customers.last_order_at < excluded.last_order_at) \
                     THEN excluded.last_order_at ELSE customers.last_order_at END",
                values_rows(conn, chunk.len(), 8)
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for (id, d) in chunk {
                let (first, last) = d.span.expect("every customer delta has a span");
                q = q
                    .bind(id.as_str())
                    .bind(first)
                    .bind(last)
                    .bind(now)
                    .bind(now)
                    .bind(d.orders)
                    .bind(d.units.clamp(-MAX_TOTAL, MAX_TOTAL))
                    .bind(d.last_order_at);
            }
            q.execute(&mut *conn).await?;
        }
        Ok(())
    }

    async fn write_groups(&self, conn: &mut AnyConnection) -> Result<(), Error> {
        let groups: Vec<_> = self.groups.iter().collect();
        for chunk in groups.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "INSERT INTO customer_groups (customer_id, group_id, orders, last_bought_at) VALUES {} \
                 ON CONFLICT (customer_id, group_id) DO UPDATE SET orders = customer_groups.orders + excluded.orders, \
                 last_bought_at = CASE WHEN excluded.last_bought_at > customer_groups.last_bought_at \
                 THEN excluded.last_bought_at ELSE customer_groups.last_bought_at END",
                values_rows(conn, chunk.len(), 4)
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for ((customer, group), (orders, last)) in chunk {
                q = q
                    .bind(customer.as_str())
                    .bind(group.as_str())
                    .bind(*orders)
                    .bind(*last);
            }
            q.execute(&mut *conn).await?;
        }
        Ok(())
    }

    async fn write_spend(&self, conn: &mut AnyConnection) -> Result<(), Error> {
        let spend: Vec<_> = self.spend.iter().collect();
        for chunk in spend.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "INSERT INTO customer_spend (customer_id, currency, spend_minor) VALUES {} \
                 ON CONFLICT (customer_id, currency) DO UPDATE SET spend_minor = CASE \
                 WHEN customer_spend.spend_minor > {MAX_TOTAL} - excluded.spend_minor THEN {MAX_TOTAL} \
                 ELSE customer_spend.spend_minor + excluded.spend_minor END",
                values_rows(conn, chunk.len(), 3)
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for ((customer, currency), minor) in chunk {
                q = q
                    .bind(customer.as_str())
                    .bind(currency.as_str())
                    .bind((**minor).clamp(-MAX_TOTAL, MAX_TOTAL));
            }
            q.execute(&mut *conn).await?;
        }
        Ok(())
    }

    async fn write_affinities(&self, conn: &mut AnyConnection) -> Result<(), Error> {
        let affinities: Vec<_> = self.affinities.iter().collect();
        for chunk in affinities.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "INSERT INTO customer_affinities (customer_id, kind, name, units, orders) VALUES {} \
                 ON CONFLICT (customer_id, kind, name) DO UPDATE SET \
                 units = customer_affinities.units + excluded.units, \
                 orders = customer_affinities.orders + excluded.orders",
                values_rows(conn, chunk.len(), 5)
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for ((customer, kind, name), (units, orders)) in chunk {
                q = q
                    .bind(customer.as_str())
                    .bind(*kind)
                    .bind(name.as_str())
                    .bind(*units)
                    .bind(*orders);
            }
            q.execute(&mut *conn).await?;
        }
        Ok(())
    }

    /// Removes the style and affinity rows of customers that lost an order
    /// once they fall to zero orders.
    async fn remove_emptied(&self, conn: &mut AnyConnection) -> Result<(), Error> {
        let shrunk: Vec<_> = self.shrunk.iter().collect();
        for chunk in shrunk.chunks(super::IN_CHUNK) {
            for table in ["customer_groups", "customer_affinities"] {
                let sql = format!(
                    "DELETE FROM {table} WHERE orders <= 0 AND customer_id IN ({})",
                    placeholders(1, chunk.len())
                );
                let mut q = sqlx::query(AssertSqlSafe(sql));
                for customer in chunk {
                    q = q.bind(customer.as_str());
                }
                q.execute(&mut *conn).await?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(status: OrderStatus, placed_at: i64) -> Contribution {
        Contribution::from_lines(
            status,
            "EUR".into(),
            5_000,
            placed_at,
            [
                ("p1", "g1", 2, "Nordkap", "apparel > jackets"),
                ("p2", "g2", 1, "", "footwear"),
                ("p1", "g1", 1, "Nordkap", "apparel > jackets"),
            ]
            .into_iter(),
        )
    }

    #[test]
    fn an_order_sums_its_lines_once_per_style_and_product() {
        let c = order(OrderStatus::Placed, 10);
        assert_eq!(c.units, 4);
        assert_eq!(c.products, ["p1", "p2"]);
        assert_eq!(c.groups, ["g1", "g2"]);
        assert_eq!(c.affinities[&("category", "apparel".to_owned())], 3);
        assert_eq!(c.affinities[&("brand", "Nordkap".to_owned())], 3);
        assert!(!c.affinities.contains_key(&("brand", String::new())));
    }

    #[test]
    fn a_replaced_order_nets_to_nothing_and_marks_its_customer() {
        let mut t = Totals::default();
        t.add("ann", &order(OrderStatus::Placed, 10), 1);
        t.add("ann", &order(OrderStatus::Placed, 10), -1);
        let ann = &t.customers["ann"];
        assert_eq!((ann.orders, ann.units, ann.span), (0, 0, Some((10, 10))));
        assert_eq!(t.groups[&("ann".into(), "g1".into())], (0, 10));
        assert_eq!(t.spend[&("ann".into(), "EUR".into())], 0);
        assert!(t.shrunk.contains("ann"));
    }

    #[test]
    fn orders_that_do_not_count_only_touch() {
        let mut t = Totals::default();
        t.touch("bo", 7);
        t.add("bo", &order(OrderStatus::Cancelled, 20), 1);
        let bo = &t.customers["bo"];
        assert_eq!(
            (bo.orders, bo.span, bo.last_order_at),
            (0, Some((7, 7)), None)
        );
        assert!(t.groups.is_empty() && t.spend.is_empty() && t.affinities.is_empty());
    }

    #[test]
    fn two_orders_of_one_customer_add_up() {
        let mut t = Totals::default();
        t.add("cy", &order(OrderStatus::Placed, 10), 1);
        t.add("cy", &order(OrderStatus::Placed, 30), 1);
        let cy = &t.customers["cy"];
        assert_eq!((cy.orders, cy.units, cy.last_order_at), (2, 8, Some(30)));
        assert_eq!(cy.span, Some((10, 30)));
        assert_eq!(
            t.affinities[&("cy".into(), "category", "apparel".into())],
            (6, 2)
        );
        assert!(t.shrunk.is_empty());
    }
}
