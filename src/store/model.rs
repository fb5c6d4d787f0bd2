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

/// What a rebuild wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelSummary {
    /// Orders read.
    pub orders: u64,
    /// Products with counts.
    pub products: u64,
    /// Pair rows written (both directions).
    pub pairs: u64,
}

/// Adds (`sign` = 1) or removes (`sign` = -1) one order's products.
pub(super) async fn apply_order(
    conn: &mut AnyConnection,
    products: &[String],
    placed_at: i64,
    sign: i64,
) -> Result<(), Error> {
    let now = Timestamp::now().millis();
    let recent = i64::from(placed_at >= now - RECENT_DAYS * 86_400_000);
    for p in products {
        sqlx::query(
            "INSERT INTO model_items (product_id, baskets, recent_baskets, updated_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (product_id) DO UPDATE SET baskets = model_items.baskets + excluded.baskets, \
             recent_baskets = model_items.recent_baskets + excluded.recent_baskets, updated_at = excluded.updated_at",
        )
        .bind(p.as_str())
        .bind(sign)
        .bind(sign * recent)
        .bind(now)
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
        let now = Timestamp::now().millis();
        let since = now - RECENT_DAYS * 86_400_000;
        let mut index: HashMap<&str, ItemIx> = HashMap::new();
        let mut names: Vec<&str> = Vec::new();
        let mut baskets: Vec<Vec<ItemIx>> = Vec::new();
        let mut recent = Vec::new();
        let mut last: Option<&str> = None;
        for r in &rows {
            if last != Some(r.order_id.as_str()) {
                baskets.push(Vec::new());
                recent.push(r.placed_at >= since);
                last = Some(r.order_id.as_str());
            }
            let n = names.len() as ItemIx;
            let i = *index.entry(r.product_id.as_str()).or_insert_with(|| {
                names.push(r.product_id.as_str());
                n
            });
            if let Some(b) = baskets.last_mut()
                && !b.contains(&i)
            {
                b.push(i);
            }
        }
        let (popularity, pairs) = suggest::count(names.len(), &baskets);
        let mut recent_count = vec![0i64; names.len()];
        for (b, is_recent) in baskets.iter().zip(&recent) {
            if *is_recent {
                for &i in b {
                    recent_count[i as usize] += 1;
                }
            }
        }
        // Each product's strongest partners, by cosine.
        let mut partners: Vec<Vec<(ItemIx, u32, f32)>> = vec![Vec::new(); names.len()];
        for (key, together) in pairs {
            if together < 2 {
                continue;
            }
            let (a, b) = ((key >> 32) as ItemIx, (key & 0xffff_ffff) as ItemIx);
            let sim = suggest::cosine(together, popularity[a as usize], popularity[b as usize]);
            partners[a as usize].push((b, together, sim));
            partners[b as usize].push((a, together, sim));
        }
        let mut pair_rows: Vec<(ItemIx, ItemIx, u32)> = Vec::new();
        for (a, list) in partners.iter_mut().enumerate() {
            list.sort_by(|x, y| y.2.total_cmp(&x.2).then(x.0.cmp(&y.0)));
            list.truncate(PARTNERS);
            pair_rows.extend(list.iter().map(|&(b, n, _)| (a as ItemIx, b, n)));
        }

        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM model_pairs")
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM model_items")
            .execute(&mut *tx)
            .await?;
        for chunk in (0..names.len()).collect::<Vec<_>>().chunks(INSERT_ROWS) {
            let values: Vec<String> = (0..chunk.len())
                .map(|k| {
                    format!(
                        "(${}, ${}, ${}, ${})",
                        4 * k + 1,
                        4 * k + 2,
                        4 * k + 3,
                        4 * k + 4
                    )
                })
                .collect();
            let sql = format!(
                "INSERT INTO model_items (product_id, baskets, recent_baskets, updated_at) VALUES {}",
                values.join(", ")
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for &i in chunk {
                q = q
                    .bind(names[i])
                    .bind(i64::from(popularity[i]))
                    .bind(recent_count[i])
                    .bind(now);
            }
            q.execute(&mut *tx).await?;
        }
        for chunk in pair_rows.chunks(INSERT_ROWS) {
            let values: Vec<String> = (0..chunk.len())
                .map(|k| format!("(${}, ${}, ${})", 3 * k + 1, 3 * k + 2, 3 * k + 3))
                .collect();
            let sql = format!(
                "INSERT INTO model_pairs (product_a, product_b, baskets) VALUES {}",
                values.join(", ")
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for &(a, b, n) in chunk {
                q = q
                    .bind(names[a as usize])
                    .bind(names[b as usize])
                    .bind(i64::from(n));
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(ModelSummary {
            orders: baskets.len() as u64,
            products: names.len() as u64,
            pairs: pair_rows.len() as u64,
        })
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
