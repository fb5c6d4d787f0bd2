//! Reads that feed suggestions (all bounded: by the customer's recent
//! lines, by primary key, or by a limit), feedback on suggestions, and A/B
//! experiments.

use std::collections::{HashMap, HashSet};

use sqlx::{AssertSqlSafe, Row};
use tracing::instrument;

use super::{IN_CHUNK, Store, Subject, placeholders};
use crate::domain::{CustomerId, Error, Timestamp, WriteOutcome};

/// One purchased line of a customer, newest first.
#[derive(Debug, Clone)]
pub struct PurchasedLine {
    /// Product.
    pub product_id: String,
    /// Category path as ordered.
    pub category_path: String,
    /// Unit price paid, minor units.
    pub unit_price_minor: i64,
    /// When the order was placed.
    pub placed_at: Timestamp,
}

/// What ranking needs of a product (the full row is read only for the
/// items finally suggested).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductFacts {
    /// Display name.
    pub name: String,
    /// Stored category path.
    pub category_path: String,
    /// Price, minor units.
    pub price_minor: i64,
    /// Style.
    pub group_id: String,
    /// Sold at all.
    pub active: bool,
    /// In stock.
    pub in_stock: bool,
    /// Days after which a bought product may be suggested again.
    pub replenish_days: Option<i64>,
    /// Brand; may be empty.
    pub brand: String,
}

/// A seed's partner in the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartnerRow {
    /// The seed product.
    pub seed: String,
    /// The partner.
    pub partner: String,
    /// Orders (or sessions) containing both.
    pub together: i64,
    /// Orders (or sessions) containing the seed.
    pub seed_total: i64,
    /// Orders (or sessions) containing the partner.
    pub partner_total: i64,
}

/// A product's counts in the model.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ModelCounts {
    /// Orders (or browsing sessions, for views) containing it.
    pub total: i64,
    /// Of those, recent orders ("popular now"); 0 for views.
    pub recent: i64,
}

/// Feedback as stored: one (suggestion, kind).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedbackRow {
    /// The signed suggestion id.
    pub suggestion_id: String,
    /// Stored kind name.
    pub kind: &'static str,
    /// The customer, for a known customer.
    pub customer_id: Option<String>,
    /// The anonymous id, for a visitor.
    pub anonymous_id: Option<String>,
    /// Product suggested.
    pub product_id: String,
    /// Its style.
    pub group_id: String,
    /// Experiment ("" for none).
    pub experiment: String,
    /// Variant.
    pub variant: String,
    /// Reason code name.
    pub reason_code: String,
    /// When the suggestion was made.
    pub issued_at: Timestamp,
    /// When the feedback happened.
    pub occurred_at: Timestamp,
}

/// Distinct suggestions per outcome, for one variant.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VariantCounts {
    /// Variant name.
    pub variant: String,
    /// Suggestions with any feedback.
    pub shown: u64,
    /// Thumbs up or sent to the customer.
    pub accepted: u64,
    /// Bought.
    pub purchased: u64,
    /// Thumbs down.
    pub rejected: u64,
}

/// A stored experiment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExperimentRow {
    /// Name.
    pub name: String,
    /// Variants, as JSON.
    pub variants: String,
    /// Running now.
    pub running: bool,
    /// Last change.
    pub updated_at: Timestamp,
}

/// Most rows read for one customer's returned or rejected styles.
const STYLE_ROWS: i64 = 2000;
/// Orders containing a suggested style within this many days of the
/// suggestion are attributed to it.
pub const ATTRIBUTION_DAYS: i64 = 30;
/// Clocks of the shop's systems and ours may disagree by this much: an
/// order stamped up to this long before a suggestion is still attributed.
const CLOCK_SKEW_MS: i64 = 5 * 60_000;

impl Store {
    /// A customer's most recent purchased lines, newest first.
    #[instrument(skip_all)]
    pub async fn recent_purchase_lines(
        &self,
        customer: &CustomerId,
        limit: i64,
    ) -> Result<Vec<PurchasedLine>, Error> {
        let (pack, sep) = packing(self.backend);
        let fields = pack_fields(
            sep,
            &[
                "product_id",
                "category_path",
                "unit_price_minor",
                "placed_at",
                "order_id",
                "line_no",
            ],
        );
        let sql = format!(
            "SELECT {pack}({fields}, {sep}(30)) FROM (SELECT l.product_id, l.category_path, \
             l.unit_price_minor, o.placed_at, l.order_id, l.line_no FROM orders o \
             JOIN order_lines l ON l.order_id = o.order_id \
             WHERE o.customer_id = $1 AND o.status <> 'cancelled' \
             ORDER BY o.placed_at DESC, l.order_id, l.line_no LIMIT $2) newest"
        );
        let packed: Option<String> = sqlx::query(AssertSqlSafe(sql))
            .bind(customer.as_str())
            .bind(limit)
            .fetch_one(&self.reader)
            .await?
            .try_get(0)?;
        let mut lines = unpack(packed.as_deref(), 6)?
            .into_iter()
            .map(|f| {
                Ok((
                    f[4].to_owned(),
                    number(f[5])?,
                    PurchasedLine {
                        product_id: f[0].to_owned(),
                        category_path: f[1].to_owned(),
                        unit_price_minor: number(f[2])?,
                        placed_at: super::instant(number(f[3])?)?,
                    },
                ))
            })
            .collect::<Result<Vec<_>, Error>>()?;
        // The aggregate does not keep the order: restore it.
        lines.sort_by(|a, b| {
            b.2.placed_at
                .cmp(&a.2.placed_at)
                .then(a.0.cmp(&b.0))
                .then(a.1.cmp(&b.1))
        });
        Ok(lines.into_iter().map(|l| l.2).collect())
    }

    /// Styles among `groups` the customer bought (over their whole history),
    /// with when each was last bought: primary-key lookups.
    pub async fn bought_groups(
        &self,
        customer: &CustomerId,
        groups: &[&str],
    ) -> Result<HashMap<String, Timestamp>, Error> {
        let mut out = HashMap::new();
        for chunk in groups.chunks(IN_CHUNK) {
            let sql = format!(
                "SELECT group_id, last_bought_at FROM customer_groups WHERE customer_id = $1 AND group_id IN ({})",
                placeholders(2, chunk.len())
            );
            let mut q = sqlx::query(AssertSqlSafe(sql)).bind(customer.as_str());
            for g in chunk {
                q = q.bind(*g);
            }
            for row in q.fetch_all(&self.reader).await? {
                out.insert(row.try_get(0)?, super::instant(row.try_get(1)?)?);
            }
        }
        Ok(out)
    }

    /// Styles the customer returned since `since` (rejected returns do not
    /// count).
    pub async fn returned_groups(
        &self,
        customer: &CustomerId,
        since: Timestamp,
    ) -> Result<HashSet<String>, Error> {
        let rows = sqlx::query(
            "SELECT DISTINCT COALESCE(p.group_id, rl.product_id) FROM returns r \
             JOIN return_lines rl ON rl.return_id = r.return_id \
             LEFT JOIN products p ON p.product_id = rl.product_id \
             WHERE r.customer_id = $1 AND r.requested_at >= $2 AND r.status <> 'rejected' LIMIT $3",
        )
        .bind(customer.as_str())
        .bind(since.millis())
        .bind(STYLE_ROWS)
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }

    /// Styles the customer (or visitor) gave a thumbs down.
    pub async fn rejected_groups(&self, subject: &Subject) -> Result<HashSet<String>, Error> {
        let (sql, id) = match subject {
            Subject::Customer(c) => (
                "SELECT DISTINCT group_id FROM suggestion_feedback \
                 WHERE customer_id = $1 AND kind = 'thumbs_down' LIMIT $2",
                c.as_str(),
            ),
            Subject::Anonymous(a) => (
                "SELECT DISTINCT group_id FROM suggestion_feedback \
                 WHERE anonymous_id = $1 AND kind = 'thumbs_down' LIMIT $2",
                a.as_str(),
            ),
        };
        let rows = sqlx::query(sql)
            .bind(id)
            .bind(STYLE_ROWS)
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }

    /// The strongest partners of each seed product: bought together
    /// (`views` false) or viewed together (`views` true), at most
    /// `per_seed` each, with the counts cosine needs. Pairs seen once are
    /// noise and left out, as a rebuild leaves them out.
    #[instrument(skip_all, fields(seeds = seeds.len(), views))]
    pub async fn model_partners_of(
        &self,
        seeds: &[&str],
        views: bool,
        per_seed: usize,
    ) -> Result<Vec<PartnerRow>, Error> {
        let (pairs, count, items) = if views {
            ("model_view_pairs", "sessions", "model_views")
        } else {
            ("model_pairs", "baskets", "model_items")
        };
        let (pack, sep) = packing(self.backend);
        let fields = pack_fields(
            sep,
            &["r.product_b", "r.n", &format!("COALESCE(mb.{count}, 0)")],
        );
        let mut out = Vec::new();
        for chunk in seeds.chunks(IN_CHUNK) {
            let sql = format!(
                "SELECT r.product_a, MAX(COALESCE(ma.{count}, 0)), {pack}({fields}, {sep}(30)) \
                 FROM (SELECT product_a, product_b, {count} AS n, \
                 ROW_NUMBER() OVER (PARTITION BY product_a ORDER BY {count} DESC, product_b) AS rn \
                 FROM {pairs} WHERE product_a IN ({}) AND {count} >= 2) r \
                 LEFT JOIN {items} ma ON ma.product_id = r.product_a \
                 LEFT JOIN {items} mb ON mb.product_id = r.product_b \
                 WHERE r.rn <= {per_seed} GROUP BY r.product_a",
                placeholders(1, chunk.len())
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for s in chunk {
                q = q.bind(*s);
            }
            for r in q.fetch_all(&self.reader).await? {
                let seed: String = r.try_get(0)?;
                let seed_total: i64 = r.try_get(1)?;
                let packed: Option<String> = r.try_get(2)?;
                for f in unpack(packed.as_deref(), 3)? {
                    out.push(PartnerRow {
                        seed: seed.clone(),
                        partner: f[0].to_owned(),
                        together: number(f[1])?,
                        seed_total,
                        partner_total: number(f[2])?,
                    });
                }
            }
        }
        Ok(out)
    }

    /// Ranking facts of products (unknown ids are left out).
    pub async fn product_facts(
        &self,
        ids: &[&str],
    ) -> Result<HashMap<String, ProductFacts>, Error> {
        let (pack, sep) = packing(self.backend);
        let fields = pack_fields(
            sep,
            &[
                "product_id",
                "name",
                "category_path",
                "price_minor",
                "group_id",
                "active",
                "in_stock",
                "COALESCE(CAST(replenish_days AS TEXT), '')",
                "brand",
            ],
        );
        let mut out = HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(IN_CHUNK) {
            let sql = format!(
                "SELECT {pack}({fields}, {sep}(30)) FROM products WHERE product_id IN ({})",
                placeholders(1, chunk.len())
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for id in chunk {
                q = q.bind(*id);
            }
            let packed: Option<String> = q.fetch_one(&self.reader).await?.try_get(0)?;
            for f in unpack(packed.as_deref(), 9)? {
                out.insert(
                    f[0].to_owned(),
                    ProductFacts {
                        name: f[1].to_owned(),
                        category_path: f[2].to_owned(),
                        price_minor: number(f[3])?,
                        group_id: f[4].to_owned(),
                        active: number(f[5])? != 0,
                        in_stock: number(f[6])? != 0,
                        replenish_days: (!f[7].is_empty()).then(|| number(f[7])).transpose()?,
                        brand: f[8].to_owned(),
                    },
                );
            }
        }
        Ok(out)
    }

    /// The best-selling available products, now (recent orders first, then
    /// all-time), overall or in one category.
    pub async fn popular_products(
        &self,
        category: Option<&str>,
        limit: i64,
    ) -> Result<Vec<(String, ModelCounts)>, Error> {
        let filter = if category.is_some() {
            "m.category = $2 AND"
        } else {
            ""
        };
        let (pack, sep) = packing(self.backend);
        let fields = pack_fields(sep, &["product_id", "baskets", "recent_baskets"]);
        let sql = format!(
            "SELECT {pack}({fields}, {sep}(30)) FROM (SELECT m.product_id, m.baskets, m.recent_baskets \
             FROM model_items m JOIN products p ON p.product_id = m.product_id \
             WHERE {filter} p.active = 1 AND p.in_stock = 1 \
             ORDER BY m.recent_baskets DESC, m.baskets DESC, m.product_id LIMIT $1) best"
        );
        let mut q = sqlx::query(AssertSqlSafe(sql)).bind(limit);
        if let Some(c) = category {
            q = q.bind(c);
        }
        let packed: Option<String> = q.fetch_one(&self.reader).await?.try_get(0)?;
        let mut out = unpack(packed.as_deref(), 3)?
            .into_iter()
            .map(|f| {
                Ok((
                    f[0].to_owned(),
                    ModelCounts {
                        total: number(f[1])?,
                        recent: number(f[2])?,
                    },
                ))
            })
            .collect::<Result<Vec<_>, Error>>()?;
        // The aggregate does not keep the order: restore it.
        out.sort_by(|a, b| {
            b.1.recent
                .cmp(&a.1.recent)
                .then(b.1.total.cmp(&a.1.total))
                .then(a.0.cmp(&b.0))
        });
        Ok(out)
    }

    /// The categories buyers of `from` moved into next:
    /// (from, to, share of buyers).
    pub async fn category_moves(&self, from: &[&str]) -> Result<Vec<(String, String, f64)>, Error> {
        let mut out = Vec::new();
        for chunk in from.chunks(IN_CHUNK) {
            let sql = format!(
                "SELECT from_category, to_category, share FROM model_category_next \
                 WHERE from_category IN ({}) ORDER BY from_category, to_category",
                placeholders(1, chunk.len())
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for c in chunk {
                q = q.bind(*c);
            }
            for r in q.fetch_all(&self.reader).await? {
                out.push((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?));
            }
        }
        Ok(out)
    }

    /// Records feedback, in one transaction. A (suggestion, kind) already
    /// stored is a duplicate.
    #[instrument(skip_all, fields(count = rows.len()))]
    pub async fn record_feedback(&self, rows: &[FeedbackRow]) -> Result<Vec<WriteOutcome>, Error> {
        let now = Timestamp::now().millis();
        let mut tx = self.begin_write().await?;
        let mut out = Vec::with_capacity(rows.len());
        for f in rows {
            let n = sqlx::query(
                "INSERT INTO suggestion_feedback (suggestion_id, kind, customer_id, anonymous_id, product_id, \
                 group_id, experiment, variant, reason_code, issued_at, occurred_at, recorded_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
                 ON CONFLICT (suggestion_id, kind) DO NOTHING",
            )
            .bind(f.suggestion_id.as_str())
            .bind(f.kind)
            .bind(f.customer_id.as_deref())
            .bind(f.anonymous_id.as_deref())
            .bind(f.product_id.as_str())
            .bind(f.group_id.as_str())
            .bind(f.experiment.as_str())
            .bind(f.variant.as_str())
            .bind(f.reason_code.as_str())
            .bind(f.issued_at.millis())
            .bind(f.occurred_at.millis())
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            out.push(if n == 1 {
                WriteOutcome::Created
            } else {
                WriteOutcome::Duplicate
            });
        }
        tx.commit().await?;
        Ok(out)
    }

    /// Distinct suggestions per outcome and variant of an experiment.
    pub async fn feedback_counts(&self, experiment: &str) -> Result<Vec<VariantCounts>, Error> {
        let rows = sqlx::query(
            "SELECT variant, COUNT(DISTINCT suggestion_id), \
             COUNT(DISTINCT CASE WHEN kind IN ('thumbs_up', 'sent_to_customer') THEN suggestion_id END), \
             COUNT(DISTINCT CASE WHEN kind = 'purchased' THEN suggestion_id END), \
             COUNT(DISTINCT CASE WHEN kind = 'thumbs_down' THEN suggestion_id END) \
             FROM suggestion_feedback WHERE experiment = $1 GROUP BY variant ORDER BY variant",
        )
        .bind(experiment)
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|r| {
                let n =
                    |i: usize| -> Result<u64, Error> { Ok(r.try_get::<i64, _>(i)?.max(0) as u64) };
                Ok(VariantCounts {
                    variant: r.try_get(0)?,
                    shown: n(1)?,
                    accepted: n(2)?,
                    purchased: n(3)?,
                    rejected: n(4)?,
                })
            })
            .collect()
    }

    /// The running experiment, if any.
    pub async fn running_experiment(&self) -> Result<Option<ExperimentRow>, Error> {
        let row = sqlx::query(
            "SELECT name, variants, running, updated_at FROM experiments WHERE running = 1 \
             ORDER BY updated_at DESC, name LIMIT 1",
        )
        .fetch_optional(&self.reader)
        .await?;
        row.as_ref().map(experiment_row).transpose()
    }

    /// An experiment by name.
    pub async fn experiment(&self, name: &str) -> Result<Option<ExperimentRow>, Error> {
        let row = sqlx::query(
            "SELECT name, variants, running, updated_at FROM experiments WHERE name = $1",
        )
        .bind(name)
        .fetch_optional(&self.reader)
        .await?;
        row.as_ref().map(experiment_row).transpose()
    }

    /// Creates or replaces an experiment; starting it stops any other.
    pub async fn put_experiment(
        &self,
        name: &str,
        variants: &str,
        running: bool,
    ) -> Result<ExperimentRow, Error> {
        let now = Timestamp::now();
        let mut tx = self.begin_write().await?;
        if running {
            sqlx::query("UPDATE experiments SET running = 0, updated_at = $2 WHERE running = 1 AND name <> $1")
                .bind(name)
                .bind(now.millis())
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(
            "INSERT INTO experiments (name, variants, running, created_at, updated_at) VALUES ($1, $2, $3, $4, $4) \
             ON CONFLICT (name) DO UPDATE SET variants = excluded.variants, running = excluded.running, \
             updated_at = excluded.updated_at",
        )
        .bind(name)
        .bind(variants)
        .bind(super::flag(running))
        .bind(now.millis())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(ExperimentRow {
            name: name.to_owned(),
            variants: variants.to_owned(),
            running,
            updated_at: now,
        })
    }
}

fn experiment_row(r: &sqlx::any::AnyRow) -> Result<ExperimentRow, Error> {
    Ok(ExperimentRow {
        name: r.try_get(0)?,
        variants: r.try_get(1)?,
        running: r.try_get::<i64, _>(2)? != 0,
        updated_at: super::instant(r.try_get(3)?)?,
    })
}

/// Attributes an order to the suggestions of its styles made to the customer
/// in the 30 days before it (each suggestion once): runs in the order's
/// transaction.
pub(super) async fn attribute_order(
    conn: &mut sqlx::AnyConnection,
    customer: &str,
    order_id: &str,
    placed_at: i64,
    groups: &[String],
) -> Result<(), Error> {
    let now = Timestamp::now().millis();
    for chunk in groups.chunks(IN_CHUNK) {
        let sql = format!(
            "INSERT INTO suggestion_feedback (suggestion_id, kind, customer_id, anonymous_id, product_id, \
             group_id, experiment, variant, reason_code, issued_at, occurred_at, recorded_at, order_id) \
             SELECT suggestion_id, 'purchased', MIN(customer_id), MIN(anonymous_id), MIN(product_id), \
             MIN(group_id), MIN(experiment), MIN(variant), MIN(reason_code), MIN(issued_at), $2, $3, $4 \
             FROM suggestion_feedback WHERE customer_id = $1 AND kind <> 'thumbs_down' \
             AND issued_at <= $6 AND issued_at >= $5 AND group_id IN ({}) \
             GROUP BY suggestion_id \
             ON CONFLICT (suggestion_id, kind) DO NOTHING",
            placeholders(7, chunk.len())
        );
        let mut q = sqlx::query(AssertSqlSafe(sql))
            .bind(customer)
            .bind(placed_at)
            .bind(now)
            .bind(order_id)
            .bind(placed_at - ATTRIBUTION_DAYS * 86_400_000)
            .bind(placed_at + CLOCK_SKEW_MS);
        for g in chunk {
            q = q.bind(g.as_str());
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

/// SQL that packs one value per row into one string per group (records
/// joined by RS, fields by US): the aggregate and the character function of
/// the backend. Rows cross from SQLite's thread one by one, so thousands of
/// small rows cost far more than a few packed ones. Packed fields never
/// contain control characters (ids and texts are validated at ingestion).
fn packing(backend: super::Backend) -> (&'static str, &'static str) {
    match backend {
        super::Backend::Sqlite => ("group_concat", "char"),
        super::Backend::Postgres => ("string_agg", "chr"),
    }
}

/// `fields` joined with the field separator, for [`packing`].
fn pack_fields(sep: &str, fields: &[&str]) -> String {
    fields.join(&format!(" || {sep}(31) || "))
}

/// The records of a packed string, each with exactly `width` fields.
fn unpack(packed: Option<&str>, width: usize) -> Result<Vec<Vec<&str>>, Error> {
    let Some(packed) = packed.filter(|p| !p.is_empty()) else {
        return Ok(Vec::new());
    };
    packed
        .split('\u{1e}')
        .map(|record| {
            let fields: Vec<&str> = record.split('\u{1f}').collect();
            if fields.len() == width {
                Ok(fields)
            } else {
                Err(Error::Internal(anyhow::anyhow!(
                    "a packed record has {} fields, not {width}",
                    fields.len()
                )))
            }
        })
        .collect()
}

/// A number in a packed record.
fn number(s: &str) -> Result<i64, Error> {
    s.parse()
        .map_err(|e| Error::Internal(anyhow::anyhow!("a packed number {s:?}: {e}")))
}
