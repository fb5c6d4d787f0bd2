//! The change feed, the readers' positions in it, and the stored model
//! snapshots.
//!
//! Writers collect their [`Change`]s while they work and append them with
//! [`append`] as the transaction's last statements: the sequence number is
//! taken from one counter row, so entries commit in `seq` order with no
//! gaps on both backends (a reader that saw `seq` has seen everything
//! before it). Taking the counter last keeps it out of any lock cycle: a
//! transaction holding it waits for nothing but its own commit.

use sqlx::{AnyConnection, Row};
use tracing::instrument;

use super::{Backend, CatalogRow, PurchaseRow, Store};
use crate::domain::{BasketChange, Change, ChangeKind, Error, FeedEntry, Timestamp};

/// Separates the products of a basket payload (never in an id).
const SEP: char = '\u{1f}';

/// A model snapshot as stored.
#[derive(Debug, Clone)]
pub struct StoredSnapshot {
    /// Version (increasing).
    pub version: i64,
    /// When it was built.
    pub built_at: Timestamp,
    /// The last feed entry the build had seen.
    pub as_of_seq: i64,
    /// Encoding format of `body`.
    pub format: i64,
    /// The encoded model.
    pub body: Vec<u8>,
}

/// One product view, for the co-view model.
#[derive(Debug, Clone)]
pub struct ViewRow {
    /// Customer id or anonymous id.
    pub visitor: String,
    /// Product viewed.
    pub product_id: String,
    /// When.
    pub occurred_at: i64,
}

/// Everything a model build reads, from one consistent read.
#[derive(Debug, Clone, Default)]
pub struct ModelInputs {
    /// The feed position the read saw.
    pub as_of_seq: i64,
    /// The catalog.
    pub catalog: Vec<CatalogRow>,
    /// Every counted purchase line (see [`Store::purchase_rows`]).
    pub purchases: Vec<PurchaseRow>,
    /// Product views since `views_since`, by visitor and time.
    pub views: Vec<ViewRow>,
}

fn payload(change: &Change) -> String {
    match &change.basket {
        Some(b) => {
            let mut s = format!("{}{}", if b.added { "+" } else { "-" }, b.placed_at);
            for p in &b.products {
                s.push(SEP);
                s.push_str(p);
            }
            s
        }
        None => String::new(),
    }
}

fn basket_of(payload: &str) -> Option<BasketChange> {
    let added = match payload.chars().next()? {
        '+' => true,
        '-' => false,
        _ => return None,
    };
    let mut parts = payload[1..].split(SEP);
    let placed_at = parts.next()?.parse().ok()?;
    Some(BasketChange {
        added,
        placed_at,
        products: parts.map(str::to_owned).collect(),
    })
}

/// Appends `changes` to the feed. Call it as the last statement of the
/// writing transaction (see the module comment).
pub(super) async fn append(conn: &mut AnyConnection, changes: &[Change]) -> Result<(), Error> {
    if changes.is_empty() {
        return Ok(());
    }
    let last: i64 =
        sqlx::query_scalar("UPDATE change_feed_head SET seq = seq + $1 WHERE id = 1 RETURNING seq")
            .bind(changes.len() as i64)
            .fetch_one(&mut *conn)
            .await?;
    let first = last - changes.len() as i64 + 1;
    let now = Timestamp::now().millis();
    for (n, chunk) in changes.chunks(super::ROWS_PER_STATEMENT).enumerate() {
        let sql = format!(
            "INSERT INTO change_feed (seq, at, kind, customer_id, product_id, payload) VALUES {}",
            super::values_rows(conn, chunk.len(), 6)
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (i, c) in chunk.iter().enumerate() {
            q = q
                .bind(first + (n * super::ROWS_PER_STATEMENT + i) as i64)
                .bind(now)
                .bind(c.kind.as_str())
                .bind(c.customer_id.as_deref())
                .bind(c.product_id.as_deref())
                .bind(payload(c));
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

/// Feed entries deleted per transaction by [`Store::trim_feed`].
const TRIM_CHUNK: i64 = 20_000;

impl Store {
    /// The newest feed position (0 when nothing was ever written).
    pub async fn feed_head(&self) -> Result<i64, Error> {
        Ok(
            sqlx::query_scalar("SELECT seq FROM change_feed_head WHERE id = 1")
                .fetch_one(&self.reader)
                .await?,
        )
    }

    /// Feed entries after `seq`, oldest first, at most `limit`.
    #[instrument(skip_all, fields(after = seq))]
    pub async fn changes_since(&self, seq: i64, limit: i64) -> Result<Vec<FeedEntry>, Error> {
        let rows = sqlx::query(
            "SELECT seq, kind, customer_id, product_id, payload FROM change_feed \
             WHERE seq > $1 ORDER BY seq LIMIT $2",
        )
        .bind(seq)
        .bind(limit)
        .fetch_all(&self.reader)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let kind: String = r.try_get(1)?;
            let Some(kind) = ChangeKind::parse(&kind) else {
                // Written by a newer version: not for us.
                continue;
            };
            let payload: String = r.try_get(4)?;
            out.push(FeedEntry {
                seq: r.try_get(0)?,
                change: Change {
                    kind,
                    customer_id: r.try_get(2)?,
                    product_id: r.try_get(3)?,
                    basket: (kind == ChangeKind::Basket)
                        .then(|| basket_of(&payload))
                        .flatten(),
                },
            });
        }
        Ok(out)
    }

    /// Records how far a replica has applied the feed.
    pub async fn report_reader(&self, reader_id: &str, seq: i64) -> Result<(), Error> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO change_readers (reader_id, seq, seen_at) VALUES ($1, $2, $3) \
             ON CONFLICT (reader_id) DO UPDATE SET seq = excluded.seq, seen_at = excluded.seen_at",
        )
        .bind(reader_id)
        .bind(seq)
        .bind(Timestamp::now().millis())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Deletes feed entries that every replica seen in the last
    /// `live_ms` has applied and that the newest snapshot includes, and
    /// forgets replicas not seen for that long. Returns entries deleted.
    /// Entries go [`TRIM_CHUNK`] per transaction: after a large import the
    /// feed holds millions, and one transaction deleting them all would
    /// hold SQLite's single writer (ingestion, the access log) for minutes.
    pub async fn trim_feed(&self, live_ms: i64) -> Result<u64, Error> {
        let since = Timestamp::now().millis() - live_ms;
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM change_readers WHERE seen_at < $1")
            .bind(since)
            .execute(&mut *tx)
            .await?;
        let readers: Option<i64> = sqlx::query_scalar("SELECT MIN(seq) FROM change_readers")
            .fetch_one(&mut *tx)
            .await?;
        let snapshot: Option<i64> =
            sqlx::query_scalar("SELECT MAX(as_of_seq) FROM model_snapshots")
                .fetch_one(&mut *tx)
                .await?;
        let oldest: Option<i64> = sqlx::query_scalar("SELECT MIN(seq) FROM change_feed")
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        let upto = match (readers, snapshot) {
            (Some(r), Some(s)) => r.min(s),
            (None, Some(s)) => s,
            _ => 0,
        };
        let mut deleted = 0;
        let mut from = oldest.unwrap_or(upto + 1);
        while from <= upto {
            let to = upto.min(from.saturating_add(TRIM_CHUNK - 1));
            let mut tx = self.begin_write().await?;
            deleted += sqlx::query("DELETE FROM change_feed WHERE seq <= $1")
                .bind(to)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            tx.commit().await?;
            from = to + 1;
        }
        Ok(deleted)
    }

    /// Stores a built model as the next version, keeping the previous one.
    #[instrument(skip_all, fields(bytes = body.len()))]
    pub async fn save_snapshot(
        &self,
        built_at: Timestamp,
        as_of_seq: i64,
        format: i64,
        body: &[u8],
    ) -> Result<i64, Error> {
        let mut tx = self.begin_write().await?;
        let newest: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM model_snapshots")
            .fetch_one(&mut *tx)
            .await?;
        let version = newest.unwrap_or(0) + 1;
        sqlx::query(
            "INSERT INTO model_snapshots (version, built_at, as_of_seq, format, body) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(version)
        .bind(built_at.millis())
        .bind(as_of_seq)
        .bind(format)
        .bind(body)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM model_snapshots WHERE version < $1")
            .bind(version - 1)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO model_state (name, value) VALUES ('rebuilt_at', $1) \
             ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        )
        .bind(built_at.millis())
        .execute(&mut *tx)
        .await?;
        // Moves the feed on, so every replica's next request loads it.
        append(&mut tx, &[Change::of(ChangeKind::Model)]).await?;
        tx.commit().await?;
        Ok(version)
    }

    /// The newest stored snapshot when its version is above `above`.
    #[instrument(skip_all)]
    pub async fn newest_snapshot(&self, above: i64) -> Result<Option<StoredSnapshot>, Error> {
        let row = sqlx::query(
            "SELECT version, built_at, as_of_seq, format, body FROM model_snapshots \
             WHERE version > $1 ORDER BY version DESC LIMIT 1",
        )
        .bind(above)
        .fetch_optional(&self.reader)
        .await?;
        row.map(|r| {
            Ok(StoredSnapshot {
                version: r.try_get(0)?,
                built_at: super::instant(r.try_get(1)?)?,
                as_of_seq: r.try_get(2)?,
                format: r.try_get(3)?,
                body: r.try_get(4)?,
            })
        })
        .transpose()
    }

    /// The newest snapshot's version (0 when none).
    pub async fn snapshot_version(&self) -> Result<i64, Error> {
        let v: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM model_snapshots")
            .fetch_one(&self.reader)
            .await?;
        Ok(v.unwrap_or(0))
    }
}

/// A model build's read of the database, pinned to one snapshot: writers go
/// on committing while it is open (it holds no write lock), and nothing
/// they commit afterwards is in it; `as_of_seq` says exactly which feed
/// entries it holds.
pub struct ModelRead {
    tx: sqlx::Transaction<'static, sqlx::Any>,
    as_of_seq: i64,
}

impl ModelRead {
    /// The feed position the read is pinned at.
    pub fn as_of_seq(&self) -> i64 {
        self.as_of_seq
    }

    /// Reads everything the build needs (the whole catalogue and order
    /// history, and product views since `views_since`) from the pinned
    /// snapshot.
    #[instrument(skip_all)]
    pub async fn finish(mut self, views_since: Timestamp) -> Result<ModelInputs, Error> {
        let catalog = super::reads::catalog_rows_in(&mut self.tx).await?;
        let purchases = super::reads::purchase_rows_in(&mut self.tx).await?;
        let rows = sqlx::query(
            "SELECT COALESCE(customer_id, anonymous_id), product_id, occurred_at FROM events \
             WHERE event_type = 'product_viewed' AND product_id IS NOT NULL AND occurred_at >= $1 \
             ORDER BY 1, 3",
        )
        .bind(views_since.millis())
        .fetch_all(&mut *self.tx)
        .await?;
        let views = rows
            .iter()
            .map(|r| {
                Ok(ViewRow {
                    visitor: r.try_get(0)?,
                    product_id: r.try_get(1)?,
                    occurred_at: r.try_get(2)?,
                })
            })
            .collect::<Result<_, Error>>()?;
        self.tx.commit().await?;
        Ok(ModelInputs {
            as_of_seq: self.as_of_seq,
            catalog,
            purchases,
            views,
        })
    }
}

impl Store {
    /// Starts a model build's read: one read-only transaction whose
    /// snapshot is pinned by its first statement (the feed position).
    pub async fn begin_model_read(&self) -> Result<ModelRead, Error> {
        let mut tx = match self.backend {
            Backend::Sqlite => self.reader.begin().await?,
            Backend::Postgres => {
                self.reader
                    .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                    .await?
            }
        };
        let as_of_seq: i64 = sqlx::query_scalar("SELECT seq FROM change_feed_head WHERE id = 1")
            .fetch_one(&mut *tx)
            .await?;
        Ok(ModelRead { tx, as_of_seq })
    }

    /// Everything a model build needs, from one consistent snapshot.
    pub async fn model_inputs(&self, views_since: Timestamp) -> Result<ModelInputs, Error> {
        self.begin_model_read().await?.finish(views_since).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basket_payloads_round_trip() {
        for (added, products) in [
            (true, vec!["a".to_owned(), "b c".to_owned()]),
            (false, vec!["x".to_owned()]),
            (true, vec![]),
        ] {
            let c = Change::basket(added, 1_700_000_000_000, products.clone());
            let placed_at = 1_700_000_000_000;
            assert_eq!(
                basket_of(&payload(&c)),
                Some(BasketChange {
                    added,
                    placed_at,
                    products
                })
            );
        }
        assert_eq!(basket_of(""), None);
    }

    #[tokio::test]
    async fn a_long_feed_is_trimmed_in_chunks_up_to_the_snapshot() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let store = Store::connect(
            &crate::store::sqlite_url(&dir.path().join("cc.db")),
            &crate::store::StoreOptions::default(),
        )
        .await
        .expect("opened");
        store.migrate().await.expect("migrated");
        let n = 2 * TRIM_CHUNK as usize + 5;
        let changes: Vec<Change> = (0..n)
            .map(|i| Change::customer(ChangeKind::Event, &format!("c{i}")))
            .collect();
        let mut tx = store.begin_write().await.expect("a transaction");
        for chunk in changes.chunks(super::super::ROWS_PER_STATEMENT) {
            append(&mut tx, chunk).await.expect("appended");
        }
        tx.commit().await.expect("committed");
        // The newest model includes all but the last 3 entries.
        let as_of = n as i64 - 3;
        store
            .save_snapshot(Timestamp::now(), as_of, 2, b"model")
            .await
            .expect("a snapshot");
        assert_eq!(
            store.trim_feed(60_000).await.expect("trimmed"),
            as_of as u64
        );
        let left: Vec<i64> = sqlx::query_scalar("SELECT seq FROM change_feed ORDER BY seq")
            .fetch_all(&store.reader)
            .await
            .expect("read");
        // What the snapshot does not include stays (saving it added one).
        assert_eq!(left[..3], [as_of + 1, as_of + 2, as_of + 3]);
        assert!(left.iter().all(|&seq| seq > as_of), "{left:?}");
        assert_eq!(store.trim_feed(60_000).await.expect("trimmed again"), 0);
    }
}
