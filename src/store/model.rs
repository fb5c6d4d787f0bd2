//! The co-purchase model in the database: counts per product and per pair
//! of products over counted orders. Live orders update it in their own
//! transaction (so a new order changes suggestions at once, on every
//! replica); `rebuild_model` recomputes it from the whole history and keeps
//! each product's strongest partners.

use std::collections::HashMap;

use sqlx::{AnyConnection, AssertSqlSafe, Row};
use tracing::instrument;

use super::{Store, placeholders};
use crate::{
    domain::{Error, Timestamp},
    suggest::{self, ItemIx},
};

/// Orders of this many recent days count as "popular now".
pub const RECENT_DAYS: i64 = 28;
/// Partners kept per product by a rebuild.
pub const PARTNERS: usize = suggest::NEIGHBOURS;
/// Rows per multi-row INSERT of a rebuild.
const INSERT_ROWS: usize = 300;

/// Product views of this many recent days feed the co-view model.
pub const VIEW_DAYS: i64 = 90;
/// A gap longer than this between two views of one visitor starts a new
/// browsing session.
const SESSION_GAP_MS: i64 = 30 * 60_000;

/// What a rebuild wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelSummary {
    /// Orders read.
    pub orders: u64,
    /// Products with counts.
    pub products: u64,
    /// Pair rows written (both directions).
    pub pairs: u64,
    /// Browsing sessions read.
    pub sessions: u64,
    /// Co-view pair rows written (both directions).
    pub view_pairs: u64,
    /// Category transitions written.
    pub transitions: u64,
}

/// Appends `rows` to `head` ("INSERT INTO t (a, b) VALUES") in multi-row
/// statements of `width` parameters per row.
async fn insert_rows<'a, T>(
    conn: &mut AnyConnection,
    head: &str,
    width: usize,
    rows: &'a [T],
    bind: impl for<'q> Fn(
        sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
        &'a T,
    ) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
) -> Result<(), Error> {
    for chunk in rows.chunks(INSERT_ROWS) {
        let values: Vec<String> = (0..chunk.len())
            .map(|k| format!("({})", placeholders(width * k + 1, width)))
            .collect();
        let sql = format!("{head} {}", values.join(", "));
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for row in chunk {
            q = bind(q, row);
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

/// Each item's strongest partners (cosine, pairs seen twice or more) as
/// (a, b, count) rows, both directions.
fn partner_rows(popularity: &[u32], pairs: HashMap<u64, u32>) -> Vec<(ItemIx, ItemIx, u32)> {
    let mut partners: Vec<Vec<(ItemIx, u32, f32)>> = vec![Vec::new(); popularity.len()];
    for (key, together) in pairs {
        if together < 2 {
            continue;
        }
        let (a, b) = ((key >> 32) as ItemIx, (key & 0xffff_ffff) as ItemIx);
        let sim = suggest::cosine(together, popularity[a as usize], popularity[b as usize]);
        partners[a as usize].push((b, together, sim));
        partners[b as usize].push((a, together, sim));
    }
    let mut rows = Vec::new();
    for (a, list) in partners.iter_mut().enumerate() {
        list.sort_by(|x, y| y.2.total_cmp(&x.2).then(x.0.cmp(&y.0)));
        list.truncate(PARTNERS);
        rows.extend(list.iter().map(|&(b, n, _)| (a as ItemIx, b, n)));
    }
    rows
}

/// Interns strings as dense indexes.
#[derive(Default)]
struct Interner<'a> {
    index: HashMap<&'a str, ItemIx>,
    names: Vec<&'a str>,
}

impl<'a> Interner<'a> {
    fn get(&mut self, s: &'a str) -> ItemIx {
        let n = self.names.len() as ItemIx;
        *self.index.entry(s).or_insert_with(|| {
            self.names.push(s);
            n
        })
    }
}

/// Adds (`sign` = 1) or removes (`sign` = -1) one order's products.
/// `categories` are the products' suggestion categories, in the same order
/// (may be empty when only removing: stored rows keep theirs).
pub(super) async fn apply_order(
    conn: &mut AnyConnection,
    products: &[String],
    categories: &[String],
    placed_at: i64,
    sign: i64,
) -> Result<(), Error> {
    let now = Timestamp::now().millis();
    let recent = i64::from(placed_at >= now - RECENT_DAYS * 86_400_000);
    for (i, p) in products.iter().enumerate() {
        sqlx::query(
            "INSERT INTO model_items (product_id, baskets, recent_baskets, updated_at, category) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (product_id) DO UPDATE SET baskets = model_items.baskets + excluded.baskets, \
             recent_baskets = model_items.recent_baskets + excluded.recent_baskets, updated_at = excluded.updated_at",
        )
        .bind(p.as_str())
        .bind(sign)
        .bind(sign * recent)
        .bind(now)
        .bind(categories.get(i).map_or("", String::as_str))
        .execute(&mut *conn)
        .await?;
    }
    let paired = &products[..products.len().min(suggest::MAX_BASKET_PAIRS)];
    for (i, a) in paired.iter().enumerate() {
        for b in &paired[i + 1..] {
            for (x, y) in [(a, b), (b, a)] {
                sqlx::query(
                    "INSERT INTO model_pairs (product_a, product_b, baskets) VALUES ($1, $2, $3) \
                     ON CONFLICT (product_a, product_b) DO UPDATE SET baskets = model_pairs.baskets + excluded.baskets",
                )
                .bind(x.as_str())
                .bind(y.as_str())
                .bind(sign)
                .execute(&mut *conn)
                .await?;
            }
        }
    }
    if sign < 0 && !products.is_empty() {
        let list = placeholders(1, paired.len().max(1));
        let sql = format!("DELETE FROM model_pairs WHERE baskets <= 0 AND product_a IN ({list})");
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for p in paired.iter().take(paired.len().max(1)) {
            q = q.bind(p.as_str());
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

impl Store {
    /// Recomputes the model from every counted order of a known customer,
    /// in one transaction: counts per product, and for each product its
    /// strongest partners (cosine, pairs seen in at least two orders).
    #[instrument(skip_all)]
    pub async fn rebuild_model(&self) -> Result<ModelSummary, Error> {
        let rows = self.purchase_rows().await?;
        let catalog: HashMap<String, String> =
            sqlx::query("SELECT product_id, category_path FROM products")
                .fetch_all(&self.reader)
                .await?
                .iter()
                .map(|r| {
                    Ok((
                        r.try_get(0)?,
                        suggest::category_key(&r.try_get::<String, _>(1)?),
                    ))
                })
                .collect::<Result<_, Error>>()?;
        let now = Timestamp::now().millis();
        let since = now - RECENT_DAYS * 86_400_000;

        // Baskets, and each customer's orders as the categories they touched.
        let mut items = Interner::default();
        let mut categories = Interner::default();
        let mut baskets: Vec<Vec<ItemIx>> = Vec::new();
        let mut recent = Vec::new();
        let mut histories: Vec<Vec<Vec<u32>>> = Vec::new();
        let mut last: Option<(&str, &str)> = None;
        for r in &rows {
            let (customer, order) = (r.customer_id.as_str(), r.order_id.as_str());
            if last.map(|l| l.1) != Some(order) {
                baskets.push(Vec::new());
                recent.push(r.placed_at >= since);
                if last.map(|l| l.0) != Some(customer) {
                    histories.push(Vec::new());
                }
                if let Some(h) = histories.last_mut() {
                    h.push(Vec::new());
                }
                last = Some((customer, order));
            }
            let i = items.get(r.product_id.as_str());
            if let Some(b) = baskets.last_mut()
                && !b.contains(&i)
            {
                b.push(i);
            }
            if let Some(category) = catalog.get(&r.product_id).filter(|c| !c.is_empty()) {
                let c = categories.get(category.as_str());
                if let Some(o) = histories.last_mut().and_then(|h| h.last_mut())
                    && !o.contains(&c)
                {
                    o.push(c);
                }
            }
        }
        let (popularity, pairs) = suggest::count(items.names.len(), &baskets);
        let mut recent_count = vec![0i64; items.names.len()];
        for (b, is_recent) in baskets.iter().zip(&recent) {
            if *is_recent {
                for &i in b {
                    recent_count[i as usize] += 1;
                }
            }
        }
        let pair_rows = partner_rows(&popularity, pairs);
        let transitions = suggest::category_transitions(categories.names.len(), &histories);
        let transition_rows: Vec<(u32, u32, f32)> = transitions
            .iter()
            .enumerate()
            .flat_map(|(from, list)| {
                list.iter()
                    .map(move |&(to, share)| (from as u32, to, share))
            })
            .collect();

        // Browsing sessions: one visitor's views with no long gap.
        let views = sqlx::query(
            "SELECT COALESCE(customer_id, anonymous_id), product_id, occurred_at FROM events \
             WHERE event_type = 'product_viewed' AND product_id IS NOT NULL AND occurred_at >= $1 \
             ORDER BY 1, 3",
        )
        .bind(now - VIEW_DAYS * 86_400_000)
        .fetch_all(&self.reader)
        .await?;
        let views: Vec<(String, String, i64)> = views
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
            .collect::<Result<_, Error>>()?;
        let mut viewed = Interner::default();
        let mut sessions: Vec<Vec<ItemIx>> = Vec::new();
        let mut prev: Option<(&str, i64)> = None;
        for (visitor, product, at) in &views {
            let same = prev.is_some_and(|(v, t)| v == visitor && at - t <= SESSION_GAP_MS);
            if !same {
                sessions.push(Vec::new());
            }
            prev = Some((visitor.as_str(), *at));
            let i = viewed.get(product.as_str());
            if let Some(s) = sessions.last_mut()
                && !s.contains(&i)
            {
                s.push(i);
            }
        }
        let (view_popularity, view_pairs) = suggest::count(viewed.names.len(), &sessions);
        let view_rows = partner_rows(&view_popularity, view_pairs);

        let mut tx = self.begin_write().await?;
        for table in [
            "model_pairs",
            "model_items",
            "model_view_pairs",
            "model_views",
            "model_category_next",
        ] {
            sqlx::query(AssertSqlSafe(format!("DELETE FROM {table}")))
                .execute(&mut *tx)
                .await?;
        }
        let item_ix: Vec<usize> = (0..items.names.len()).collect();
        insert_rows(
            &mut tx,
            "INSERT INTO model_items (product_id, baskets, recent_baskets, updated_at, category) VALUES",
            5,
            &item_ix,
            |q, &i| {
                q.bind(items.names[i])
                    .bind(i64::from(popularity[i]))
                    .bind(recent_count[i])
                    .bind(now)
                    .bind(catalog.get(items.names[i]).map_or("", String::as_str))
            },
        )
        .await?;
        insert_rows(
            &mut tx,
            "INSERT INTO model_pairs (product_a, product_b, baskets) VALUES",
            3,
            &pair_rows,
            |q, &(a, b, n)| {
                q.bind(items.names[a as usize])
                    .bind(items.names[b as usize])
                    .bind(i64::from(n))
            },
        )
        .await?;
        let view_ix: Vec<usize> = (0..viewed.names.len()).collect();
        insert_rows(
            &mut tx,
            "INSERT INTO model_views (product_id, sessions) VALUES",
            2,
            &view_ix,
            |q, &i| q.bind(viewed.names[i]).bind(i64::from(view_popularity[i])),
        )
        .await?;
        insert_rows(
            &mut tx,
            "INSERT INTO model_view_pairs (product_a, product_b, sessions) VALUES",
            3,
            &view_rows,
            |q, &(a, b, n)| {
                q.bind(viewed.names[a as usize])
                    .bind(viewed.names[b as usize])
                    .bind(i64::from(n))
            },
        )
        .await?;
        insert_rows(
            &mut tx,
            "INSERT INTO model_category_next (from_category, to_category, share) VALUES",
            3,
            &transition_rows,
            |q, &(from, to, share)| {
                q.bind(categories.names[from as usize])
                    .bind(categories.names[to as usize])
                    .bind(f64::from(share))
            },
        )
        .await?;
        sqlx::query(
            "INSERT INTO model_state (name, value) VALUES ('rebuilt_at', $1) \
             ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        )
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(ModelSummary {
            orders: baskets.len() as u64,
            products: items.names.len() as u64,
            pairs: pair_rows.len() as u64,
            sessions: sessions.len() as u64,
            view_pairs: view_rows.len() as u64,
            transitions: transition_rows.len() as u64,
        })
    }

    /// Claims the periodic rebuild for this replica when the last one (or
    /// the last claim) is older than `every_ms`: at most one replica
    /// rebuilds per period, whichever claims first.
    pub async fn claim_rebuild(&self, every_ms: i64) -> Result<bool, Error> {
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
        let due = rebuilt.is_none_or(|at| at <= now - every_ms);
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

    /// A product's partners in the model with the orders they share,
    /// most shared first (at most `limit`).
    pub async fn model_partners(
        &self,
        product_id: &str,
        limit: i64,
    ) -> Result<Vec<(String, i64)>, Error> {
        let rows = sqlx::query(
            "SELECT product_b, baskets FROM model_pairs WHERE product_a = $1 ORDER BY baskets DESC, product_b LIMIT $2",
        )
        .bind(product_id)
        .bind(limit)
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }

    /// A product's counts in the model: (orders, recent orders).
    pub async fn model_item(&self, product_id: &str) -> Result<Option<(i64, i64)>, Error> {
        let row =
            sqlx::query("SELECT baskets, recent_baskets FROM model_items WHERE product_id = $1")
                .bind(product_id)
                .fetch_optional(&self.reader)
                .await?;
        row.map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).transpose()
    }
}
