//! Reads that feed suggestions (all bounded: by the customer's recent
//! lines, by primary key, or by a limit), feedback on suggestions, and A/B
//! experiments.

use std::collections::{HashMap, HashSet};

use sqlx::{AssertSqlSafe, Row};
use tracing::instrument;

use super::customer_read::{BOUGHT_STYLES, STYLE_ROWS};
use super::{
    IN_CHUNK, Store, Subject,
    batch::{BatchWrite, Names, Writing},
    placeholders,
    trust::identity_key,
};
use crate::domain::{Change, ChangeKind, CustomerId, Error, IdentityKind, Timestamp, WriteOutcome};

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
    /// The order.
    pub order_id: String,
    /// Units bought.
    pub quantity: i64,
}

/// One returned line, with its product's style.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReturnedLine {
    /// The order it came from.
    pub order_id: String,
    /// The product.
    pub product_id: String,
    /// Its style (the product id when the catalogue does not know it).
    pub group_id: String,
    /// Units returned.
    pub quantity: i64,
    /// The return's reason code.
    pub reason_code: String,
    /// When the return was requested.
    pub requested_at: Timestamp,
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
    /// The curation the suggestion came from, for a curated item.
    pub curation_id: Option<String>,
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

/// Distinct suggestions per outcome over grouped feedback rows: shown (any
/// feedback), accepted (thumbs up or sent), purchased, rejected; read by
/// [`outcome_counts`] from the second column on.
pub(super) const OUTCOME_COUNTS: &str = "COUNT(DISTINCT suggestion_id), \
     COUNT(DISTINCT CASE WHEN kind IN ('thumbs_up', 'sent_to_customer') THEN suggestion_id END), \
     COUNT(DISTINCT CASE WHEN kind = 'purchased' THEN suggestion_id END), \
     COUNT(DISTINCT CASE WHEN kind = 'thumbs_down' THEN suggestion_id END)";

/// The counts of [`OUTCOME_COUNTS`] in columns 1 to 4 of a row.
pub(super) fn outcome_counts(r: &sqlx::any::AnyRow) -> Result<super::CurationCounts, Error> {
    let n = |i: usize| -> Result<u64, Error> { Ok(r.try_get::<i64, _>(i)?.max(0) as u64) };
    Ok(super::CurationCounts {
        shown: n(1)?,
        accepted: n(2)?,
        purchased: n(3)?,
        rejected: n(4)?,
    })
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
                "quantity",
            ],
        );
        let sql = format!(
            "SELECT {pack}({fields}, {sep}(30)) FROM (SELECT l.product_id, l.category_path, \
             l.unit_price_minor, o.placed_at, l.order_id, l.line_no, l.quantity FROM orders o \
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
        let mut lines = unpack(packed.as_deref(), 7)?
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
                        order_id: f[4].to_owned(),
                        quantity: number(f[6])?,
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

    /// Every style the customer bought, with when each was last bought (the
    /// newest [`BOUGHT_STYLES`] for an extraordinary history), packed into
    /// one row: one indexed range read however many there are.
    #[instrument(skip_all)]
    pub async fn all_bought_groups(
        &self,
        customer: &CustomerId,
    ) -> Result<HashMap<String, Timestamp>, Error> {
        let (pack, sep) = packing(self.backend);
        let fields = pack_fields(sep, &["group_id", "CAST(last_bought_at AS TEXT)"]);
        let sql = format!(
            "SELECT {pack}({fields}, {sep}(30)) FROM (SELECT group_id, last_bought_at \
             FROM customer_groups WHERE customer_id = $1 \
             ORDER BY last_bought_at DESC LIMIT $2) newest"
        );
        let packed: Option<String> = sqlx::query(AssertSqlSafe(sql))
            .bind(customer.as_str())
            .bind(BOUGHT_STYLES)
            .fetch_one(&self.reader)
            .await?
            .try_get(0)?;
        unpack(packed.as_deref(), 2)?
            .into_iter()
            .map(|f| Ok((f[0].to_owned(), super::instant(number(f[1])?)?)))
            .collect()
    }

    /// The customer's returned lines since `since`, newest first (rejected
    /// returns do not count), with each product's style: the returned
    /// styles and the size returns in one read.
    pub async fn returned_lines(
        &self,
        customer: &CustomerId,
        since: Timestamp,
    ) -> Result<Vec<ReturnedLine>, Error> {
        let rows = sqlx::query(
            "SELECT r.order_id, rl.product_id, COALESCE(p.group_id, rl.product_id), rl.quantity, \
             r.reason_code, r.requested_at FROM returns r \
             JOIN return_lines rl ON rl.return_id = r.return_id \
             LEFT JOIN products p ON p.product_id = rl.product_id \
             WHERE r.customer_id = $1 AND r.requested_at >= $2 AND r.status <> 'rejected' \
             ORDER BY r.requested_at DESC, r.return_id, rl.line_no LIMIT $3",
        )
        .bind(customer.as_str())
        .bind(since.millis())
        .bind(STYLE_ROWS)
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ReturnedLine {
                    order_id: r.try_get(0)?,
                    product_id: r.try_get(1)?,
                    group_id: r.try_get(2)?,
                    quantity: r.try_get(3)?,
                    reason_code: r.try_get(4)?,
                    requested_at: super::instant(r.try_get(5)?)?,
                })
            })
            .collect()
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

    /// Records feedback, in one transaction. A (suggestion, kind) already
    /// stored is a duplicate.
    #[instrument(skip_all, fields(count = rows.len()))]
    pub async fn record_feedback(&self, rows: &[FeedbackRow]) -> Result<Vec<WriteOutcome>, Error> {
        self.write_batch(&Feedback, rows).await
    }

    /// Distinct suggestions per outcome and variant of an experiment.
    pub async fn feedback_counts(&self, experiment: &str) -> Result<Vec<VariantCounts>, Error> {
        let sql = format!(
            "SELECT variant, {OUTCOME_COUNTS} FROM suggestion_feedback WHERE experiment = $1 \
             GROUP BY variant ORDER BY variant"
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(experiment)
            .fetch_all(&self.reader)
            .await?;
        rows.iter()
            .map(|r| {
                let c = outcome_counts(r)?;
                Ok(VariantCounts {
                    variant: r.try_get(0)?,
                    shown: c.shown,
                    accepted: c.accepted,
                    purchased: c.purchased,
                    rejected: c.rejected,
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
        let row = ExperimentRow {
            name: name.to_owned(),
            variants: variants.to_owned(),
            running,
            updated_at: Timestamp::now(),
        };
        self.write_batch(&ExperimentSetting, std::slice::from_ref(&row))
            .await?;
        Ok(row)
    }
}

/// An experiment set (`SetExperiment`): one at a time, on the batch
/// skeleton so a conflict is retried and the feed told.
struct ExperimentSetting;

impl BatchWrite for ExperimentSetting {
    type Item = ExperimentRow;
    type Answer = ();
    const NAMES: Names = Names::NoOne;

    fn key(e: &ExperimentRow) -> impl Ord + '_ {
        e.name.as_str()
    }

    async fn write(
        &self,
        w: &mut Writing<'_>,
        experiments: Vec<&ExperimentRow>,
    ) -> Result<Vec<()>, Error> {
        for e in &experiments {
            let at = e.updated_at.millis();
            if e.running {
                sqlx::query(
                    "UPDATE experiments SET running = 0, updated_at = $2 WHERE running = 1 AND name <> $1",
                )
                .bind(e.name.as_str())
                .bind(at)
                .execute(&mut *w.tx)
                .await?;
            }
            sqlx::query(
                "INSERT INTO experiments (name, variants, running, created_at, updated_at) VALUES ($1, $2, $3, $4, $4) \
                 ON CONFLICT (name) DO UPDATE SET variants = excluded.variants, running = excluded.running, \
                 updated_at = excluded.updated_at",
            )
            .bind(e.name.as_str())
            .bind(e.variants.as_str())
            .bind(super::flag(e.running))
            .bind(at)
            .execute(&mut *w.tx)
            .await?;
            w.changes.push(Change::of(ChangeKind::Experiment));
        }
        Ok(vec![(); experiments.len()])
    }
}

/// The suppression keys of whom a feedback row names.
fn named(f: &FeedbackRow) -> Vec<String> {
    let customer = f
        .customer_id
        .as_deref()
        .map(|c| identity_key("customer_id", c));
    let visitor = f
        .anonymous_id
        .as_deref()
        .map(|a| identity_key(IdentityKind::AnonymousId.as_str(), a));
    customer.into_iter().chain(visitor).collect()
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
             group_id, experiment, variant, reason_code, issued_at, occurred_at, recorded_at, order_id, \
             curation_id) \
             SELECT suggestion_id, 'purchased', MIN(customer_id), MIN(anonymous_id), MIN(product_id), \
             MIN(group_id), MIN(experiment), MIN(variant), MIN(reason_code), MIN(issued_at), $2, $3, $4, \
             MIN(curation_id) \
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

/// Which of `customers` were ever shown a suggestion (only their orders
/// can be attributed to one).
pub(super) async fn with_suggestions(
    conn: &mut sqlx::AnyConnection,
    customers: &[&str],
) -> Result<HashSet<String>, Error> {
    let mut unique = customers.to_vec();
    unique.sort_unstable();
    unique.dedup();
    let mut out = HashSet::new();
    for chunk in unique.chunks(IN_CHUNK) {
        let sql = format!(
            "SELECT DISTINCT customer_id FROM suggestion_feedback WHERE customer_id IN ({})",
            placeholders(1, chunk.len())
        );
        let mut q = sqlx::query_scalar::<_, String>(AssertSqlSafe(sql));
        for c in chunk {
            q = q.bind(*c);
        }
        out.extend(q.fetch_all(&mut *conn).await?);
    }
    Ok(out)
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

/// Suggestion feedback, written in a batch. It names the customer or
/// visitor the suggestion was made to: feedback on one made before they
/// were erased is dropped (its id stays verifiable for a while).
struct Feedback;

impl BatchWrite for Feedback {
    type Item = FeedbackRow;
    type Answer = WriteOutcome;
    const NAMES: Names = Names::People;

    fn key(f: &FeedbackRow) -> impl Ord + '_ {
        f.suggestion_id.as_str()
    }

    fn names(f: &FeedbackRow) -> Vec<String> {
        named(f)
    }

    async fn write(
        &self,
        w: &mut Writing<'_>,
        rows: Vec<&FeedbackRow>,
    ) -> Result<Vec<WriteOutcome>, Error> {
        let now = Timestamp::now().millis();
        let mut out = Vec::with_capacity(rows.len());
        for f in rows {
            if w.suppressed(&named(f)).await? {
                out.push(WriteOutcome::Suppressed);
                continue;
            }
            let n = sqlx::query(
                "INSERT INTO suggestion_feedback (suggestion_id, kind, customer_id, anonymous_id, product_id, \
                 group_id, experiment, variant, reason_code, issued_at, occurred_at, recorded_at, \
                 curation_id) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
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
            .bind(f.curation_id.as_deref())
            .execute(&mut *w.tx)
            .await?
            .rows_affected();
            if n == 1
                && let Some(c) = &f.customer_id
            {
                w.changes.push(Change::customer(ChangeKind::Feedback, c));
            }
            out.push(if n == 1 {
                WriteOutcome::Created
            } else {
                WriteOutcome::Duplicate
            });
        }
        Ok(out)
    }
}
