//! A customer's first read: each record kind in one correlated subquery
//! (an indexed range read with its own bound) aggregated into a JSON array
//! (JSON carries any text and NULL unchanged), in two groups of columns.
//!
//! - The context's: the profile row, their spend, top categories and
//!   brands, consents, open tickets, recent orders with their lines and
//!   returned units, recent returns with their lines, and every style
//!   bought.
//! - The suggestion history's: the newest purchase lines, the returns of
//!   the return window, the styles thumbed down.
//!
//! On PostgreSQL both are one statement, one round trip and one snapshot.
//! On SQLite they are two statements run at once on two connections,
//! which are threads of this process: a first read waits for the longer of
//! the two instead of their sum (the purchase lines are about half of the
//! work; every style bought rides with the context to even them out). Each
//! is one consistent snapshot; a write committed between them can show in
//! one and not yet in the other. What the replica keeps of the read is
//! filed under the change-feed position read before both began, so that
//! write's feed entry makes the replica read the customer again.

use std::{
    collections::{HashMap, HashSet},
    sync::OnceLock,
};

use anyhow::anyhow;
use serde_json::Value;
use sqlx::{AssertSqlSafe, Row};
use tracing::instrument;

use super::{
    AffinityRow, Backend, LINES_PER_RECORD, OrderLineRow, OrderRow, ProfileRow, PurchasedLine,
    ReturnRow, ReturnedLine, Store, TicketRow, instant, reads::stored,
};
use crate::domain::{
    ConsentRecord, CustomerId, Error, OrderStatus, Purpose, ReturnStatus, TicketPriority,
    TicketStatus, Timestamp,
};

/// The bounds of one customer read.
#[derive(Debug, Clone, Copy)]
pub struct CustomerReadBounds {
    /// Orders and returns since.
    pub since: Timestamp,
    /// Most recent orders.
    pub orders: i64,
    /// Most recent returns.
    pub returns: i64,
    /// Most open tickets.
    pub tickets: i64,
    /// Most purchase lines, newest first (suggestions' history).
    pub purchase_lines: i64,
    /// Returns counted against suggestions since.
    pub returned_since: Timestamp,
}

/// Most styles read as "already bought" for one customer (the newest).
pub const BOUGHT_STYLES: i64 = 20_000;
/// Most rows read for one customer's returned or rejected styles.
pub const STYLE_ROWS: i64 = 2000;

/// What one customer read returns.
#[derive(Debug, Clone)]
pub struct CustomerRead {
    /// The profile with its running totals.
    pub profile: ProfileRow,
    /// Consents on file, by purpose.
    pub consents: Vec<ConsentRecord>,
    /// Open and pending tickets, most recently updated first.
    pub tickets: Vec<TicketRow>,
    /// Recent orders, newest first, with their first lines.
    pub orders: Vec<OrderRow>,
    /// Recent returns, newest first, with their first lines.
    pub returns: Vec<ReturnRow>,
    /// The newest purchase lines (cancelled orders left out), newest first.
    pub purchase_lines: Vec<PurchasedLine>,
    /// Returned lines of the return window, newest first.
    pub returned_lines: Vec<ReturnedLine>,
    /// Every style bought, with when last.
    pub bought_groups: HashMap<String, Timestamp>,
    /// Styles thumbed down.
    pub rejected_groups: HashSet<String>,
}

/// `fields` as one JSON array per row, aggregated in `order` into a JSON
/// array (text), in the backend's dialect.
fn agg(backend: Backend, fields: &str, order: &str) -> String {
    match backend {
        Backend::Sqlite => format!("json_group_array(json_array({fields}) ORDER BY {order})"),
        Backend::Postgres => format!("json_agg(json_build_array({fields}) ORDER BY {order})::text"),
    }
}

/// [`agg`] in no particular order: for rows the reader puts in order
/// itself, or keeps in a map (an ordered aggregate sorts them again).
fn agg_any(backend: Backend, fields: &str) -> String {
    match backend {
        Backend::Sqlite => format!("json_group_array(json_array({fields}))"),
        Backend::Postgres => format!("json_agg(json_build_array({fields}))::text"),
    }
}

/// The context's columns, with `$1` the customer, `$2` since, `$3`
/// orders, `$4` returns, `$5` tickets, `$6` lines per record, `$7` bought
/// styles: the profile, its aggregates, consents, open tickets, recent
/// orders and returns, and every style bought (22 columns).
fn context_columns(b: Backend) -> Vec<String> {
    let recent_orders = "SELECT order_id FROM orders WHERE customer_id = $1 AND placed_at >= $2 \
                         ORDER BY placed_at DESC, order_id LIMIT $3";
    let recent_returns = "SELECT return_id FROM returns WHERE customer_id = $1 AND requested_at >= $2 \
                          ORDER BY requested_at DESC, return_id LIMIT $4";
    let top = |kind: &str| {
        format!(
            "(SELECT {} FROM (SELECT name, units, orders FROM customer_affinities \
             WHERE customer_id = $1 AND kind = '{kind}' ORDER BY orders DESC, units DESC, name LIMIT 3) a)",
            agg(b, "name, units, orders", "orders DESC, units DESC, name")
        )
    };
    let profile = [
        "display_name",
        "email",
        "phone",
        "loyalty_id",
        "customer_since",
        "first_seen_at",
        "last_activity_at",
        "order_count",
        "units_purchased",
        "units_returned",
        "last_order_at",
    ]
    .map(|c| format!("c.{c}"));
    let aggregates = [
        format!(
            "(SELECT {} FROM (SELECT currency, spend_minor FROM customer_spend WHERE customer_id = $1 \
             ORDER BY spend_minor DESC LIMIT 10) s)",
            agg(b, "currency, spend_minor", "spend_minor DESC, currency")
        ),
        top("category"),
        top("brand"),
        format!(
            "(SELECT {} FROM consents WHERE customer_id = $1)",
            agg(b, "purpose, granted, source, updated_at", "purpose")
        ),
        format!(
            "(SELECT {} FROM (SELECT * FROM tickets WHERE customer_id = $1 \
             AND status IN ('open', 'pending') ORDER BY updated_at DESC LIMIT $5) t \
             LEFT JOIN orders o ON o.order_id = t.order_id)",
            agg(
                b,
                "t.ticket_id, t.subject, t.status, t.priority, t.channel, t.order_id, t.created_at, \
                 t.updated_at, o.status, o.placed_at",
                "t.updated_at DESC, t.ticket_id"
            )
        ),
        format!(
            "(SELECT {} FROM orders WHERE order_id IN ({recent_orders}))",
            agg(
                b,
                "order_id, status, placed_at, currency, total_minor, channel, line_count",
                "placed_at DESC, order_id"
            )
        ),
        format!(
            "(SELECT {} FROM order_lines WHERE order_id IN ({recent_orders}) AND line_no < $6)",
            agg(
                b,
                "order_id, product_id, quantity, unit_price_minor, name, brand, category_path",
                "order_id, line_no"
            )
        ),
        format!(
            "(SELECT {} FROM (SELECT r.order_id, l.product_id, CAST(SUM(l.quantity) AS BIGINT) AS units \
             FROM returns r JOIN return_lines l ON l.return_id = r.return_id \
             WHERE r.order_id IN ({recent_orders}) AND r.status <> 'rejected' \
             GROUP BY r.order_id, l.product_id) x)",
            agg(b, "order_id, product_id, units", "order_id, product_id")
        ),
        format!(
            "(SELECT {} FROM returns WHERE return_id IN ({recent_returns}))",
            agg(
                b,
                "return_id, order_id, status, reason_code, reason_text, requested_at, refund_currency, \
                 refund_minor",
                "requested_at DESC, return_id"
            )
        ),
        format!(
            "(SELECT {} FROM return_lines WHERE return_id IN ({recent_returns}) AND line_no < $6)",
            agg(b, "return_id, product_id, quantity", "return_id, line_no")
        ),
        format!(
            "(SELECT {} FROM (SELECT group_id, last_bought_at FROM customer_groups WHERE customer_id = $1 \
             ORDER BY last_bought_at DESC LIMIT $7) g)",
            agg_any(b, "group_id, last_bought_at")
        ),
    ];
    [profile.as_slice(), aggregates.as_slice()].concat()
}

/// The suggestion history's columns, with `$1` the customer and `p` the
/// parameters holding the purchase lines, returned since and style rows:
/// the newest purchase lines, the returns of the return window and the
/// styles thumbed down (3 columns).
fn history_columns(b: Backend, p: [&str; 3]) -> Vec<String> {
    let [purchase_lines, returned_since, style_rows] = p;
    vec![
        format!(
            "(SELECT {} FROM (SELECT l.product_id, l.category_path, l.unit_price_minor, o.placed_at, \
             l.order_id, l.line_no, l.quantity FROM orders o JOIN order_lines l ON l.order_id = o.order_id \
             WHERE o.customer_id = $1 AND o.status <> 'cancelled' \
             ORDER BY o.placed_at DESC, l.order_id, l.line_no LIMIT {purchase_lines}) p)",
            agg_any(
                b,
                "product_id, category_path, unit_price_minor, placed_at, order_id, quantity, line_no"
            )
        ),
        format!(
            "(SELECT {} FROM (SELECT r.order_id, rl.product_id, COALESCE(p.group_id, rl.product_id) AS group_id, \
             rl.quantity, r.reason_code, r.requested_at, r.return_id, rl.line_no FROM returns r \
             JOIN return_lines rl ON rl.return_id = r.return_id \
             LEFT JOIN products p ON p.product_id = rl.product_id \
             WHERE r.customer_id = $1 AND r.requested_at >= {returned_since} AND r.status <> 'rejected' \
             ORDER BY r.requested_at DESC, r.return_id, rl.line_no LIMIT {style_rows}) x)",
            agg(
                b,
                "order_id, product_id, group_id, quantity, reason_code, requested_at",
                "requested_at DESC, return_id, line_no"
            )
        ),
        format!(
            "(SELECT {} FROM (SELECT DISTINCT group_id FROM suggestion_feedback \
             WHERE customer_id = $1 AND kind = 'thumbs_down' LIMIT {style_rows}) f)",
            agg(b, "group_id", "group_id")
        ),
    ]
}

/// Where the history's columns start in the context's row, when they are
/// read with it (PostgreSQL).
const HISTORY_AT: usize = 22;

/// The statements of a customer read: the context's, with `$1`-`$7` as
/// [`context_columns`] says, and the suggestion history's, `$1` the
/// customer, `$2`-`$4` as [`history_columns`] takes them. On SQLite they
/// are two statements, run at once on two connections (each reader is a
/// thread of this process, so two take two cores). On PostgreSQL the
/// history's columns follow the context's in one statement, at `$8`-`$10`:
/// a second statement there is one more round trip to another process,
/// and measured slower (docs/performance.md). Built once per backend:
/// every first read runs them.
fn statements(b: Backend) -> &'static (String, Option<String>) {
    static SQLITE: OnceLock<(String, Option<String>)> = OnceLock::new();
    static POSTGRES: OnceLock<(String, Option<String>)> = OnceLock::new();
    match b {
        Backend::Sqlite => SQLITE.get_or_init(|| statements_of(b)),
        Backend::Postgres => POSTGRES.get_or_init(|| statements_of(b)),
    }
}

/// [`statements`], built.
fn statements_of(b: Backend) -> (String, Option<String>) {
    let from = "\nFROM customers c WHERE c.customer_id = $1";
    let context = context_columns(b);
    match b {
        Backend::Sqlite => (
            format!("SELECT {}{from}", context.join(",\n")),
            Some(format!(
                "SELECT {}",
                history_columns(b, ["$2", "$3", "$4"]).join(",\n")
            )),
        ),
        Backend::Postgres => {
            let history = history_columns(b, ["$8", "$9", "$10"]);
            let columns = [context, history].concat().join(",\n");
            (format!("SELECT {columns}{from}"), None)
        }
    }
}

impl Store {
    /// Everything a customer's context and suggestions read, in one or
    /// two statements ([`statements`]); `None` when no such customer is
    /// stored.
    #[instrument(skip_all)]
    pub async fn customer_read(
        &self,
        customer: &CustomerId,
        bounds: &CustomerReadBounds,
    ) -> Result<Option<CustomerRead>, Error> {
        let (context_sql, history_sql) = statements(self.backend);
        let context = sqlx::query(AssertSqlSafe(context_sql.as_str()))
            .bind(customer.as_str())
            .bind(bounds.since.millis())
            .bind(bounds.orders)
            .bind(bounds.returns)
            .bind(bounds.tickets)
            .bind(LINES_PER_RECORD)
            .bind(BOUGHT_STYLES);
        let history_bounds =
            |q: sqlx::query::Query<'static, sqlx::Any, sqlx::any::AnyArguments>| {
                q.bind(bounds.purchase_lines)
                    .bind(bounds.returned_since.millis())
                    .bind(STYLE_ROWS)
            };
        let Some(history_sql) = history_sql else {
            let row = history_bounds(context).fetch_optional(&self.reader).await?;
            return row.map(|r| read_of(&r, &r, HISTORY_AT)).transpose();
        };
        let history = history_bounds(
            sqlx::query(AssertSqlSafe(history_sql.as_str())).bind(customer.as_str()),
        );
        let (context, history) = tokio::try_join!(
            context.fetch_optional(&self.reader),
            history.fetch_one(&self.reader)
        )?;
        context.map(|c| read_of(&c, &history, 0)).transpose()
    }
}

/// One aggregated purchase line: product, category path, unit price,
/// placed at, order, quantity, line number.
type LineRecord = (String, String, i64, i64, String, i64, i64);

/// The newest purchase lines, newest first (then by order and line), from
/// rows aggregated in no order.
fn purchase_lines(rows: Vec<LineRecord>) -> Result<Vec<PurchasedLine>, Error> {
    let mut lines = rows
        .into_iter()
        .map(
            |(product_id, category_path, unit_price_minor, at, order_id, quantity, n)| {
                let line = PurchasedLine {
                    product_id,
                    category_path,
                    unit_price_minor,
                    placed_at: instant(at)?,
                    order_id,
                    quantity,
                };
                Ok((n, line))
            },
        )
        .collect::<Result<Vec<_>, Error>>()?;
    lines.sort_unstable_by(|(n, a), (m, b)| {
        let newest_first = b.placed_at.cmp(&a.placed_at);
        newest_first.then_with(|| a.order_id.cmp(&b.order_id).then(n.cmp(m)))
    });
    Ok(lines.into_iter().map(|(_, line)| line).collect())
}

/// The records of column `i` read straight into `T` (a tuple of the
/// record's fields): for the history's long arrays, which would otherwise
/// make a JSON value (and its allocations) of every field first.
fn typed<T: serde::de::DeserializeOwned>(
    row: &sqlx::any::AnyRow,
    i: usize,
) -> Result<Vec<T>, Error> {
    let text: Option<String> = row.try_get(i)?;
    match text {
        None => Ok(Vec::new()),
        Some(t) => serde_json::from_str(&t)
            .map_err(|e| Error::Internal(anyhow!("an aggregated column {i} does not parse: {e}"))),
    }
}

/// The records of column `i` as JSON values, one array per record.
fn records(row: &sqlx::any::AnyRow, i: usize) -> Result<Vec<Vec<Value>>, Error> {
    typed(row, i)
}

fn text(v: &Value) -> Result<String, Error> {
    match v {
        Value::String(s) => Ok(s.clone()),
        other => Err(Error::Internal(anyhow!("expected text, read {other}"))),
    }
}

fn int(v: &Value) -> Result<i64, Error> {
    v.as_i64()
        .ok_or_else(|| Error::Internal(anyhow!("expected an integer, read {v}")))
}

fn opt_text(v: &Value) -> Result<Option<String>, Error> {
    match v {
        Value::Null => Ok(None),
        v => text(v).map(Some),
    }
}

fn opt_int(v: &Value) -> Result<Option<i64>, Error> {
    match v {
        Value::Null => Ok(None),
        v => int(v).map(Some),
    }
}

/// The read from the context's row `r` and the history's row `h`, whose
/// columns start at `at`.
fn read_of(r: &sqlx::any::AnyRow, h: &sqlx::any::AnyRow, at: usize) -> Result<CustomerRead, Error> {
    let affinities = |i| -> Result<Vec<AffinityRow>, Error> {
        records(r, i)?
            .iter()
            .map(|f| {
                Ok(AffinityRow {
                    name: text(&f[0])?,
                    units: int(&f[1])?,
                    orders: int(&f[2])?,
                })
            })
            .collect()
    };
    let since: Option<i64> = r.try_get(4)?;
    let first_seen: i64 = r.try_get(5)?;
    let last_activity: i64 = r.try_get(6)?;
    let last_order: Option<i64> = r.try_get(10)?;
    let profile = ProfileRow {
        display_name: r.try_get(0)?,
        email: r.try_get(1)?,
        phone: r.try_get(2)?,
        loyalty_id: r.try_get(3)?,
        customer_since: instant(since.unwrap_or(first_seen))?,
        last_activity_at: (last_activity > 0)
            .then(|| instant(last_activity))
            .transpose()?,
        order_count: r.try_get(7)?,
        units_purchased: r.try_get(8)?,
        units_returned: r.try_get(9)?,
        last_order_at: last_order.map(instant).transpose()?,
        spend: records(r, 11)?
            .iter()
            .map(|f| Ok((text(&f[0])?, int(&f[1])?)))
            .collect::<Result<_, Error>>()?,
        top_categories: affinities(12)?,
        top_brands: affinities(13)?,
    };
    Ok(CustomerRead {
        profile,
        consents: consents(&records(r, 14)?)?,
        tickets: records(r, 15)?
            .iter()
            .map(|f| ticket(f))
            .collect::<Result<_, _>>()?,
        orders: orders(&records(r, 16)?, &records(r, 17)?, &records(r, 18)?)?,
        returns: returns(&records(r, 19)?, &records(r, 20)?)?,
        purchase_lines: purchase_lines(typed(h, at)?)?,
        returned_lines: typed::<(String, String, String, i64, String, i64)>(h, at + 1)?
            .into_iter()
            .map(
                |(order_id, product_id, group_id, quantity, reason_code, at)| {
                    Ok(ReturnedLine {
                        order_id,
                        product_id,
                        group_id,
                        quantity,
                        reason_code,
                        requested_at: instant(at)?,
                    })
                },
            )
            .collect::<Result<_, Error>>()?,
        bought_groups: typed::<(String, i64)>(r, 21)?
            .into_iter()
            .map(|(group, at)| Ok((group, instant(at)?)))
            .collect::<Result<_, Error>>()?,
        rejected_groups: typed::<(String,)>(h, at + 2)?
            .into_iter()
            .map(|(group,)| group)
            .collect(),
    })
}

fn consents(records: &[Vec<Value>]) -> Result<Vec<ConsentRecord>, Error> {
    let mut out = Vec::new();
    for f in records {
        // A purpose this version does not know is not ours to apply.
        let Some(purpose) = Purpose::from_stored(&text(&f[0])?) else {
            continue;
        };
        out.push(ConsentRecord {
            purpose,
            granted: int(&f[1])? != 0,
            source: text(&f[2])?,
            updated_at: instant(int(&f[3])?)?,
        });
    }
    Ok(out)
}

fn ticket(f: &[Value]) -> Result<TicketRow, Error> {
    let (status, priority) = (text(&f[2])?, text(&f[3])?);
    let order = match (opt_text(&f[8])?, opt_int(&f[9])?) {
        (Some(s), Some(p)) => Some((
            stored(OrderStatus::from_stored(&s), "order status", &s)?,
            instant(p)?,
        )),
        _ => None,
    };
    Ok(TicketRow {
        ticket_id: text(&f[0])?,
        subject: text(&f[1])?,
        status: stored(TicketStatus::from_stored(&status), "ticket status", &status)?,
        priority: stored(
            TicketPriority::from_stored(&priority),
            "ticket priority",
            &priority,
        )?,
        channel: text(&f[4])?,
        order_id: opt_text(&f[5])?,
        order,
        created_at: instant(int(&f[6])?)?,
        updated_at: instant(int(&f[7])?)?,
    })
}

/// Orders with their lines and the units returned of each product.
fn orders(
    headers: &[Vec<Value>],
    lines: &[Vec<Value>],
    returned: &[Vec<Value>],
) -> Result<Vec<OrderRow>, Error> {
    let mut units: HashMap<(String, String), i64> = HashMap::new();
    for f in returned {
        units.insert((text(&f[0])?, text(&f[1])?), opt_int(&f[2])?.unwrap_or(0));
    }
    let mut by_order: HashMap<String, Vec<OrderLineRow>> = HashMap::new();
    for f in lines {
        let (order_id, product_id) = (text(&f[0])?, text(&f[1])?);
        let returned_quantity = units
            .get(&(order_id.clone(), product_id.clone()))
            .copied()
            .unwrap_or(0);
        by_order.entry(order_id).or_default().push(OrderLineRow {
            product_id,
            quantity: int(&f[2])?,
            unit_price_minor: int(&f[3])?,
            name: text(&f[4])?,
            brand: text(&f[5])?,
            category_path: text(&f[6])?,
            returned_quantity,
        });
    }
    headers
        .iter()
        .map(|f| {
            let (order_id, status) = (text(&f[0])?, text(&f[1])?);
            Ok(OrderRow {
                lines: by_order.remove(&order_id).unwrap_or_default(),
                order_id,
                status: stored(OrderStatus::from_stored(&status), "order status", &status)?,
                placed_at: instant(int(&f[2])?)?,
                currency: text(&f[3])?,
                total_minor: int(&f[4])?,
                channel: text(&f[5])?,
                line_count: int(&f[6])?,
            })
        })
        .collect()
}

/// Returns with their lines.
fn returns(headers: &[Vec<Value>], lines: &[Vec<Value>]) -> Result<Vec<ReturnRow>, Error> {
    let mut by_return: HashMap<String, Vec<(String, i64)>> = HashMap::new();
    for f in lines {
        by_return
            .entry(text(&f[0])?)
            .or_default()
            .push((text(&f[1])?, int(&f[2])?));
    }
    headers
        .iter()
        .map(|f| {
            let (return_id, status) = (text(&f[0])?, text(&f[2])?);
            Ok(ReturnRow {
                lines: by_return.remove(&return_id).unwrap_or_default(),
                return_id,
                order_id: text(&f[1])?,
                status: stored(ReturnStatus::from_stored(&status), "return status", &status)?,
                reason_code: text(&f[3])?,
                reason_text: text(&f[4])?,
                requested_at: instant(int(&f[5])?)?,
                refund: opt_text(&f[6])?.zip(opt_int(&f[7])?),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_history_is_read_after_every_context_column_and_each_parameter_is_used() {
        for b in [Backend::Sqlite, Backend::Postgres] {
            assert_eq!(context_columns(b).len(), HISTORY_AT, "{b:?}");
            assert_eq!(history_columns(b, ["$2", "$3", "$4"]).len(), 3, "{b:?}");
        }
        let used = |sql: &str, n: usize| (1..=n).all(|i| sql.contains(&format!("${i}")));
        let (one, none) = statements(Backend::Postgres);
        assert!(
            none.is_none() && used(one, 10),
            "PostgreSQL: one statement, $1-$10"
        );
        let (context, history) = statements(Backend::Sqlite);
        let history = history.as_deref().unwrap_or_default();
        assert!(
            used(context, 7) && !context.contains("$8"),
            "SQLite's context: $1-$7"
        );
        assert!(
            used(history, 4) && !history.contains("$5"),
            "SQLite's history: $1-$4"
        );
    }

    #[test]
    fn purchase_lines_come_newest_first_then_by_order_and_line() {
        let row = |order: &str, at: i64, line: i64| -> LineRecord {
            ("p".into(), "A > B".into(), 100, at, order.into(), 1, line)
        };
        let rows = vec![
            row("o-1", 1_000, 1),
            row("o-3", 3_000, 2),
            row("o-2", 3_000, 0),
            row("o-3", 3_000, 0),
            row("o-1", 1_000, 0),
        ];
        let read: Vec<(String, i64)> = purchase_lines(rows)
            .unwrap_or_default()
            .into_iter()
            .map(|l| (l.order_id, l.placed_at.millis()))
            .collect();
        let expected = [
            ("o-2", 3_000),
            ("o-3", 3_000),
            ("o-3", 3_000),
            ("o-1", 1_000),
            ("o-1", 1_000),
        ];
        assert_eq!(
            read,
            expected.map(|(o, t)| (o.to_owned(), t)).to_vec(),
            "newest first, then by order id"
        );
        // Within an order, by line number.
        let sorted = purchase_lines(vec![row("o-3", 3_000, 2), {
            let mut r = row("o-3", 3_000, 0);
            r.0 = "q".into();
            r
        }])
        .unwrap_or_default();
        assert_eq!(sorted[0].product_id, "q", "line 0 before line 2");
    }
}
