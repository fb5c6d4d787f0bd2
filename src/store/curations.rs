//! Stylists' curations: writes (each checked against the catalogue in the
//! same transaction), pages for listing, the live set for serving, and the
//! feedback numbers per curation.

use std::collections::HashMap;

use sqlx::{AssertSqlSafe, Row, any::AnyRow};
use tracing::instrument;

use super::{
    IN_CHUNK, Store, instant, placeholders,
    suggestions::{OUTCOME_COUNTS, outcome_counts},
};
use crate::domain::{
    Anchor, CategoryPath, Change, ChangeKind, CuratedItem, Curation, CurationDraft, CustomerId,
    Error, ProductId, Timestamp, Violations,
};

/// Most curations loaded for serving (newest first).
pub const LIVE_CURATIONS: i64 = 10_000;

/// Which curations a page lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CurationFilter {
    /// Not archived.
    NotArchived,
    /// Not archived and inside their window at the given instant.
    ActiveAt(Timestamp),
    /// Archived.
    Archived,
    /// Every one.
    All,
}

/// What to list.
#[derive(Debug, Clone)]
pub struct CurationQuery {
    /// Most per page.
    pub page_size: u32,
    /// Start after this (created_at, curation_id), from the previous page.
    pub after: Option<(i64, String)>,
    /// Only this stylist's.
    pub stylist: Option<String>,
    /// Only those anchored on this style.
    pub anchor_group: Option<String>,
    /// Only those anchored on exactly this stored category path.
    pub anchor_category: Option<String>,
    /// Which states.
    pub filter: CurationFilter,
}

/// Feedback on suggested items (one curation's, or one variant's).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CurationCounts {
    /// Items with any feedback.
    pub shown: u64,
    /// Thumbs up or sent.
    pub accepted: u64,
    /// Bought.
    pub purchased: u64,
    /// Thumbs down.
    pub rejected: u64,
}

impl std::ops::AddAssign for CurationCounts {
    fn add_assign(&mut self, o: Self) {
        self.shown += o.shown;
        self.accepted += o.accepted;
        self.purchased += o.purchased;
        self.rejected += o.rejected;
    }
}

const COLUMNS: &str = "curation_id, title, stylist, note, anchor_kind, anchor_category, starts_at, \
                       ends_at, archived, created_at, updated_at";

impl Store {
    /// Creates a curation under `curation_id`, or, when `request_id` was
    /// used before, returns the curation that request created.
    #[instrument(skip_all)]
    pub async fn create_curation(
        &self,
        curation_id: &str,
        request_id: Option<&str>,
        draft: &CurationDraft,
    ) -> Result<Curation, Error> {
        if let Some(r) = request_id
            && let Some(id) = self.curation_of_request(r).await?
        {
            return self
                .curation(&id)
                .await?
                .ok_or_else(|| Error::Internal(anyhow::anyhow!("curation of a request vanished")));
        }
        let now = Timestamp::now().millis();
        let hash_key = self.hash_key().await?;
        let mut tx = self.begin_write().await?;
        self.refuse_erased(&mut tx, &hash_key, draft).await?;
        let groups = item_groups(&mut tx, draft).await?;
        let inserted = with_draft(
            sqlx::query(
                "INSERT INTO curations (curation_id, title, stylist, note, anchor_kind, \
                 anchor_category, starts_at, ends_at, created_at, updated_at, archived, request_id) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, 0, $10) \
                 ON CONFLICT (request_id) DO NOTHING",
            ),
            curation_id,
            draft,
            now,
        )
        .bind(request_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if inserted == 1 {
            write_parts(&mut tx, curation_id, draft, &groups).await?;
            super::feed::append(&mut tx, &[Change::of(ChangeKind::Curation)]).await?;
        }
        tx.commit().await?;
        // A concurrent retry of the same request may have won the insert.
        let id = match (inserted, request_id) {
            (0, Some(r)) => self.curation_of_request(r).await?.unwrap_or_default(),
            _ => curation_id.to_owned(),
        };
        self.curation(&id)
            .await?
            .ok_or_else(|| Error::Internal(anyhow::anyhow!("created curation not found")))
    }

    /// Replaces a curation's content.
    #[instrument(skip_all)]
    pub async fn update_curation(
        &self,
        curation_id: &str,
        draft: &CurationDraft,
    ) -> Result<Curation, Error> {
        let now = Timestamp::now().millis();
        let hash_key = self.hash_key().await?;
        let mut tx = self.begin_write().await?;
        self.refuse_erased(&mut tx, &hash_key, draft).await?;
        let archived: Option<i64> =
            sqlx::query_scalar("SELECT archived FROM curations WHERE curation_id = $1")
                .bind(curation_id)
                .fetch_optional(&mut *tx)
                .await?;
        match archived {
            None => return Err(Error::NotFound("no curation has this id".into())),
            Some(a) if a != 0 => {
                return Err(Error::FailedPrecondition(
                    "the curation is archived; create a new one".into(),
                ));
            }
            Some(_) => {}
        }
        let groups = item_groups(&mut tx, draft).await?;
        with_draft(
            sqlx::query(
                "UPDATE curations SET title = $2, stylist = $3, note = $4, anchor_kind = $5, \
                 anchor_category = $6, starts_at = $7, ends_at = $8, updated_at = $9 \
                 WHERE curation_id = $1",
            ),
            curation_id,
            draft,
            now,
        )
        .execute(&mut *tx)
        .await?;
        for table in ["curation_items", "curation_products", "curation_customers"] {
            sqlx::query(AssertSqlSafe(format!(
                "DELETE FROM {table} WHERE curation_id = $1"
            )))
            .bind(curation_id)
            .execute(&mut *tx)
            .await?;
        }
        write_parts(&mut tx, curation_id, draft, &groups).await?;
        super::feed::append(&mut tx, &[Change::of(ChangeKind::Curation)]).await?;
        tx.commit().await?;
        self.curation(curation_id)
            .await?
            .ok_or_else(|| Error::NotFound("no curation has this id".into()))
    }

    /// Archives a curation (again is a no-op).
    #[instrument(skip_all)]
    pub async fn archive_curation(&self, curation_id: &str) -> Result<Curation, Error> {
        let now = Timestamp::now().millis();
        let mut tx = self.begin_write().await?;
        let n = sqlx::query(
            "UPDATE curations SET archived = 1, updated_at = $2 \
             WHERE curation_id = $1 AND archived = 0",
        )
        .bind(curation_id)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 1 {
            super::feed::append(&mut tx, &[Change::of(ChangeKind::Curation)]).await?;
        }
        tx.commit().await?;
        self.curation(curation_id)
            .await?
            .ok_or_else(|| Error::NotFound("no curation has this id".into()))
    }

    /// One curation.
    pub async fn curation(&self, curation_id: &str) -> Result<Option<Curation>, Error> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM curations WHERE curation_id = $1"
        )))
        .bind(curation_id)
        .fetch_all(&self.reader)
        .await?;
        Ok(self.complete(&rows).await?.pop())
    }

    async fn curation_of_request(&self, request_id: &str) -> Result<Option<String>, Error> {
        Ok(
            sqlx::query_scalar("SELECT curation_id FROM curations WHERE request_id = $1")
                .bind(request_id)
                .fetch_optional(&self.reader)
                .await?,
        )
    }

    /// One page of curations, newest first, and whether more follow.
    #[instrument(skip_all)]
    pub async fn list_curations(&self, q: &CurationQuery) -> Result<(Vec<Curation>, bool), Error> {
        let mut sql = format!("SELECT {COLUMNS} FROM curations c WHERE 1 = 1");
        let mut texts: Vec<String> = Vec::new();
        let mut numbers: Vec<i64> = Vec::new();
        // Text parameters first ($1..), numbers after; placeholders are
        // numbered as they are added.
        let mut next = 1;
        let mut param = |sql: &mut String, clause: &str| {
            sql.push_str(&clause.replace('?', &format!("${next}")));
            next += 1;
        };
        if let Some(s) = &q.stylist {
            param(&mut sql, " AND c.stylist = ?");
            texts.push(s.clone());
        }
        if let Some(g) = &q.anchor_group {
            param(
                &mut sql,
                " AND c.curation_id IN (SELECT curation_id FROM curation_products WHERE group_id = ?)",
            );
            texts.push(g.clone());
        }
        if let Some(c) = &q.anchor_category {
            param(&mut sql, " AND c.anchor_category = ?");
            texts.push(c.clone());
        }
        if let Some((_, id)) = &q.after {
            texts.push(id.clone());
            let id_param = next;
            next += 1;
            sql.push_str(&format!(
                " AND (c.created_at < ${next} OR (c.created_at = ${next} AND c.curation_id < ${id_param}))"
            ));
            next += 1;
            numbers.push(q.after.as_ref().map_or(0, |a| a.0));
        }
        match q.filter {
            CurationFilter::NotArchived => sql.push_str(" AND c.archived = 0"),
            CurationFilter::Archived => sql.push_str(" AND c.archived = 1"),
            CurationFilter::All => {}
            CurationFilter::ActiveAt(now) => {
                sql.push_str(&format!(
                    " AND c.archived = 0 AND (c.starts_at IS NULL OR c.starts_at <= ${next}) \
                     AND (c.ends_at IS NULL OR c.ends_at > ${next})"
                ));
                next += 1;
                numbers.push(now.millis());
            }
        }
        sql.push_str(&format!(
            " ORDER BY c.created_at DESC, c.curation_id DESC LIMIT ${next}"
        ));
        numbers.push(i64::from(q.page_size) + 1);
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for t in &texts {
            query = query.bind(t.as_str());
        }
        for n in &numbers {
            query = query.bind(*n);
        }
        let rows = query.fetch_all(&self.reader).await?;
        let more = rows.len() > q.page_size as usize;
        let mut page = self.complete(&rows).await?;
        page.truncate(q.page_size as usize);
        Ok((page, more))
    }

    /// Every curation that is or will be served (not archived, not ended
    /// at `now`), newest first, at most [`LIVE_CURATIONS`].
    #[instrument(skip_all)]
    pub async fn live_curations(&self, now: Timestamp) -> Result<Vec<Curation>, Error> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM curations WHERE archived = 0 \
             AND (ends_at IS NULL OR ends_at > $1) \
             ORDER BY created_at DESC, curation_id DESC LIMIT $2"
        )))
        .bind(now.millis())
        .bind(LIVE_CURATIONS)
        .fetch_all(&self.reader)
        .await?;
        self.complete(&rows).await
    }

    /// Feedback numbers of the given curations, per (curation, style).
    pub async fn curation_counts(
        &self,
        ids: &[&str],
    ) -> Result<HashMap<(String, String), CurationCounts>, Error> {
        let mut out = HashMap::new();
        for chunk in ids.chunks(IN_CHUNK) {
            let sql = format!(
                "SELECT curation_id, {OUTCOME_COUNTS}, group_id FROM suggestion_feedback \
                 WHERE curation_id IN ({}) GROUP BY curation_id, group_id",
                placeholders(1, chunk.len())
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for id in chunk {
                q = q.bind(*id);
            }
            for r in q.fetch_all(&self.reader).await? {
                out.insert((r.try_get(0)?, r.try_get(5)?), outcome_counts(&r)?);
            }
        }
        Ok(out)
    }

    /// Curation rows with their items and anchors.
    async fn complete(&self, rows: &[AnyRow]) -> Result<Vec<Curation>, Error> {
        let ids: Vec<String> = rows
            .iter()
            .map(|r| r.try_get::<String, _>(0))
            .collect::<Result<_, _>>()?;
        let mut items: HashMap<String, Vec<(CuratedItem, String)>> = HashMap::new();
        let mut products: HashMap<String, Vec<ProductId>> = HashMap::new();
        let mut customers: HashMap<String, Vec<CustomerId>> = HashMap::new();
        for chunk in ids.chunks(IN_CHUNK) {
            let p = placeholders(1, chunk.len());
            let bind = |sql: String| {
                let mut q = sqlx::query(AssertSqlSafe(sql));
                for id in chunk {
                    q = q.bind(id.as_str());
                }
                q
            };
            for r in bind(format!(
                "SELECT curation_id, product_id, group_id, note FROM curation_items \
                 WHERE curation_id IN ({p}) ORDER BY curation_id, position"
            ))
            .fetch_all(&self.reader)
            .await?
            {
                items.entry(r.try_get(0)?).or_default().push((
                    CuratedItem {
                        product_id: stored(ProductId::parse(&r.try_get::<String, _>(1)?))?,
                        note: r.try_get(3)?,
                    },
                    r.try_get(2)?,
                ));
            }
            for r in bind(format!(
                "SELECT curation_id, product_id FROM curation_products \
                 WHERE curation_id IN ({p}) ORDER BY curation_id, product_id"
            ))
            .fetch_all(&self.reader)
            .await?
            {
                let id = stored(ProductId::parse(&r.try_get::<String, _>(1)?))?;
                products.entry(r.try_get(0)?).or_default().push(id);
            }
            for r in bind(format!(
                "SELECT curation_id, customer_id FROM curation_customers \
                 WHERE curation_id IN ({p}) ORDER BY curation_id, customer_id"
            ))
            .fetch_all(&self.reader)
            .await?
            {
                let id = stored(CustomerId::parse(&r.try_get::<String, _>(1)?))?;
                customers.entry(r.try_get(0)?).or_default().push(id);
            }
        }
        rows.iter()
            .map(|r| {
                let id: String = r.try_get(0)?;
                let kind: String = r.try_get(4)?;
                let anchor = match kind.as_str() {
                    "products" => Anchor::Products(products.remove(&id).unwrap_or_default()),
                    "customers" => Anchor::Customers(customers.remove(&id).unwrap_or_default()),
                    _ => Anchor::Category(CategoryPath::from_stored(
                        &r.try_get::<Option<String>, _>(5)?.unwrap_or_default(),
                    )),
                };
                let (items, item_groups) =
                    items.remove(&id).unwrap_or_default().into_iter().unzip();
                let at = |i: usize| -> Result<Option<Timestamp>, Error> {
                    r.try_get::<Option<i64>, _>(i)?.map(instant).transpose()
                };
                Ok(Curation {
                    curation_id: id,
                    draft: CurationDraft {
                        title: r.try_get(1)?,
                        stylist: r.try_get(2)?,
                        note: r.try_get(3)?,
                        anchor,
                        items,
                        starts_at: at(6)?,
                        ends_at: at(7)?,
                    },
                    item_groups,
                    archived: r.try_get::<i64, _>(8)? != 0,
                    created_at: instant(r.try_get(9)?)?,
                    updated_at: instant(r.try_get(10)?)?,
                })
            })
            .collect()
    }
}

fn stored<T>(parsed: Result<T, String>) -> Result<T, Error> {
    parsed.map_err(|e| Error::Internal(anyhow::anyhow!("a stored curation id is invalid: {e}")))
}

/// Binds $1 (the id) to $9 (the time) of a curation's row.
fn with_draft<'q>(
    q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    curation_id: &'q str,
    draft: &'q CurationDraft,
    now: i64,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    q.bind(curation_id)
        .bind(draft.title.as_str())
        .bind(draft.stylist.as_str())
        .bind(draft.note.as_str())
        .bind(anchor_kind(&draft.anchor))
        .bind(anchor_category(&draft.anchor))
        .bind(draft.starts_at.map(|t| t.millis()))
        .bind(draft.ends_at.map(|t| t.millis()))
        .bind(now)
}

fn anchor_kind(a: &Anchor) -> &'static str {
    match a {
        Anchor::Products(_) => "products",
        Anchor::Category(_) => "category",
        Anchor::Customers(_) => "customers",
    }
}

fn anchor_category(a: &Anchor) -> Option<String> {
    match a {
        Anchor::Category(c) => Some(c.to_stored()),
        Anchor::Products(_) | Anchor::Customers(_) => None,
    }
}

/// The style of every item and anchor product, read in the writing
/// transaction; products not in the catalogue, and two items of one style,
/// are field violations.
async fn item_groups(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    draft: &CurationDraft,
) -> Result<HashMap<String, String>, Error> {
    let mut ids: Vec<&str> = draft.items.iter().map(|i| i.product_id.as_str()).collect();
    if let Anchor::Products(p) = &draft.anchor {
        ids.extend(p.iter().map(ProductId::as_str));
    }
    ids.sort_unstable();
    ids.dedup();
    let mut groups = HashMap::new();
    for chunk in ids.chunks(IN_CHUNK) {
        let sql = format!(
            "SELECT product_id, group_id FROM products WHERE product_id IN ({})",
            placeholders(1, chunk.len())
        );
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for id in chunk {
            q = q.bind(*id);
        }
        for r in q.fetch_all(&mut **tx).await? {
            groups.insert(r.try_get::<String, _>(0)?, r.try_get::<String, _>(1)?);
        }
    }
    let mut v = Violations::new();
    for (i, item) in draft.items.iter().enumerate() {
        match groups.get(item.product_id.as_str()) {
            None => v.add(
                format!("curation.items[{i}].product_id"),
                "is not in the catalogue",
            ),
            Some(g) => {
                let same = draft.items[..i]
                    .iter()
                    .position(|o| groups.get(o.product_id.as_str()) == Some(g));
                if let Some(j) = same {
                    v.add(
                        format!("curation.items[{i}].product_id"),
                        format!("is the same style as items[{j}]"),
                    );
                }
            }
        }
    }
    if let Anchor::Products(p) = &draft.anchor {
        for (i, id) in p.iter().enumerate() {
            if !groups.contains_key(id.as_str()) {
                v.add(
                    format!("curation.anchor.products.product_ids[{i}]"),
                    "is not in the catalogue",
                );
            }
        }
    }
    if v.is_empty() {
        Ok(groups)
    } else {
        Err(Error::InvalidArgument(v))
    }
}

impl Store {
    /// Refuses a draft naming a customer who was erased: a curation must
    /// not bring one back. First in the transaction, as it holds off
    /// erasures until the draft is stored (see
    /// [`Store::hold_off_erasures`]).
    async fn refuse_erased(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        hash_key: &[u8; 32],
        draft: &CurationDraft,
    ) -> Result<(), Error> {
        let Anchor::Customers(ids) = &draft.anchor else {
            return Ok(());
        };
        self.hold_off_erasures(tx).await?;
        let erased = super::trust::erased_among(tx, hash_key, ids).await?;
        if erased.is_empty() {
            return Ok(());
        }
        let mut v = Violations::new();
        for i in erased {
            v.add(
                format!("curation.anchor.customers.customer_ids[{i}]"),
                "names a customer who was erased",
            );
        }
        Err(Error::InvalidArgument(v))
    }
}

/// Inserts a curation's items and anchors.
async fn write_parts(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    curation_id: &str,
    draft: &CurationDraft,
    groups: &HashMap<String, String>,
) -> Result<(), Error> {
    for (position, item) in draft.items.iter().enumerate() {
        sqlx::query(
            "INSERT INTO curation_items (curation_id, position, product_id, group_id, note) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(curation_id)
        .bind(position as i64)
        .bind(item.product_id.as_str())
        .bind(
            groups
                .get(item.product_id.as_str())
                .map_or("", String::as_str),
        )
        .bind(&item.note)
        .execute(&mut **tx)
        .await?;
    }
    match &draft.anchor {
        Anchor::Products(ids) => {
            for id in ids {
                sqlx::query(
                    "INSERT INTO curation_products (curation_id, product_id, group_id) \
                     VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                )
                .bind(curation_id)
                .bind(id.as_str())
                .bind(groups.get(id.as_str()).map_or("", String::as_str))
                .execute(&mut **tx)
                .await?;
            }
        }
        Anchor::Customers(ids) => {
            for id in ids {
                sqlx::query(
                    "INSERT INTO curation_customers (curation_id, customer_id) VALUES ($1, $2) \
                     ON CONFLICT DO NOTHING",
                )
                .bind(curation_id)
                .bind(id.as_str())
                .execute(&mut **tx)
                .await?;
            }
        }
        Anchor::Category(_) => {}
    }
    Ok(())
}
