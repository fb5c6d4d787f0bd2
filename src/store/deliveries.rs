//! Webhook deliveries as received (the raw, signed body), their state, the
//! senders' ids mapped onto ours, and Shopify stock per location. The
//! connectors (`crate::connect`) decide; this file only stores.

use sqlx::{Row, any::AnyRow};
use tracing::instrument;

use super::Store;
use crate::domain::{Change, CustomerId, Error, Timestamp};

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryState {
    /// Stored, not applied yet (or applying failed on a database error).
    Received,
    /// Its records are stored.
    Applied,
    /// A newer version of the same resource was applied instead.
    Superseded,
    /// Valid, but needs something not stored yet (the order a refund is
    /// for, the customer a ticket's email belongs to); applied when it is.
    Waiting,
    /// Could not be mapped; kept with its error for a replay after a fix.
    Failed,
}

impl DeliveryState {
    /// Every state.
    pub const ALL: [DeliveryState; 5] = [
        DeliveryState::Received,
        DeliveryState::Applied,
        DeliveryState::Superseded,
        DeliveryState::Waiting,
        DeliveryState::Failed,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Received => "received",
            DeliveryState::Applied => "applied",
            DeliveryState::Superseded => "superseded",
            DeliveryState::Waiting => "waiting",
            DeliveryState::Failed => "failed",
        }
    }

    fn from_stored(s: &str) -> Self {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .unwrap_or(DeliveryState::Received)
    }
}

/// A delivery to store.
#[derive(Debug, Clone)]
pub struct NewDelivery {
    /// The sender (`shopify`, `segment`, ...).
    pub source: &'static str,
    /// The sender's id of this delivery (the same on its retries), if any.
    pub delivery_id: Option<String>,
    /// The sender's id of what happened (shared by deliveries of one
    /// action), or a hash of the body for senders without ids.
    pub event_key: String,
    /// The topic or event type.
    pub topic: String,
    /// The resource it carries a version of (`order:123`), if versioned.
    pub resource: Option<String>,
    /// That version (the resource's `updated_at`), 0 when unversioned.
    pub version: i64,
    /// The body exactly as received.
    pub body: String,
}

/// A stored delivery.
#[derive(Debug, Clone)]
pub struct StoredDelivery {
    /// Primary key.
    pub key: String,
    /// The sender.
    pub source: String,
    /// The topic.
    pub topic: String,
    /// The resource, if versioned.
    pub resource: Option<String>,
    /// When it was first received.
    pub received_at: Timestamp,
    /// The body.
    pub body: String,
    /// Its state.
    pub state: DeliveryState,
    /// Why it failed or waits.
    pub error: Option<String>,
    /// How often it was applied (or tried).
    pub attempts: i64,
}

/// What storing a delivery found.
#[derive(Debug, Clone)]
pub enum Saved {
    /// Stored now.
    New(StoredDelivery),
    /// Stored before (a retry or a duplicate): the earlier one.
    Existing(StoredDelivery),
}

/// How a delivery ended, to record.
#[derive(Debug, Clone, Default)]
pub struct Finish {
    /// The customer it concerns, once known.
    pub customer_id: Option<String>,
    /// Keyed hash of the identity it concerns (erasure reaches it).
    pub subject: Option<String>,
    /// What a waiting delivery waits for.
    pub awaiting: Option<String>,
    /// Why it failed or waits.
    pub error: Option<String>,
}

/// How one delivery ended, to record.
#[derive(Debug, Clone)]
pub struct Ended {
    /// The delivery.
    pub key: String,
    /// Its state now.
    pub state: DeliveryState,
    /// What to record with it.
    pub finish: Finish,
    /// Whether its body goes.
    pub drop_body: bool,
}

/// One source's deliveries, for the status page.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceStatus {
    /// The sender.
    pub source: String,
    /// Deliveries per state, in [`DeliveryState::ALL`] order.
    pub counts: [i64; 5],
    /// When the newest delivery was received.
    pub last_received: Option<Timestamp>,
    /// The newest failed or waiting delivery: when, topic, why.
    pub last_problem: Option<(Timestamp, String, String)>,
}

/// A statement selecting a delivery's columns (as [`delivery`] reads
/// them) from `webhook_deliveries`, followed by `$rest`.
macro_rules! select_deliveries {
    ($rest:literal) => {
        concat!(
            "SELECT delivery_key, source, topic, resource, received_at, body, state, error, attempts \
             FROM webhook_deliveries ",
            $rest
        )
    };
}

fn delivery(row: &AnyRow) -> Result<StoredDelivery, Error> {
    Ok(StoredDelivery {
        key: row.try_get(0)?,
        source: row.try_get(1)?,
        topic: row.try_get(2)?,
        resource: row.try_get(3)?,
        received_at: Timestamp::from_millis(row.try_get(4)?).unwrap_or(Timestamp::MIN),
        body: row.try_get(5)?,
        state: DeliveryState::from_stored(&row.try_get::<String, _>(6)?),
        error: row.try_get(7)?,
        attempts: row.try_get(8)?,
    })
}

impl Store {
    /// Stores a delivery once: a second one with the same delivery id or
    /// event key finds the first. Committed before it returns, so an
    /// acknowledgement after it is never a lie.
    #[instrument(skip_all, fields(source = d.source))]
    pub async fn save_delivery(&self, d: &NewDelivery) -> Result<Saved, Error> {
        let now = Timestamp::now().millis();
        let key = format!(
            "{}:{}",
            d.source,
            d.delivery_id.as_deref().unwrap_or(&d.event_key)
        );
        let inserted = sqlx::query(
            "INSERT INTO webhook_deliveries (delivery_key, source, delivery_id, event_key, topic, resource, \
             version, received_at, body, state, attempts, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'received', 0, $8) ON CONFLICT DO NOTHING",
        )
        .bind(&key)
        .bind(d.source)
        .bind(d.delivery_id.as_deref())
        .bind(&d.event_key)
        .bind(&d.topic)
        .bind(d.resource.as_deref())
        .bind(d.version)
        .bind(now)
        .bind(&d.body)
        .execute(&self.writer)
        .await?
        .rows_affected();
        if inserted == 1 {
            return Ok(Saved::New(StoredDelivery {
                key,
                source: d.source.to_owned(),
                topic: d.topic.clone(),
                resource: d.resource.clone(),
                received_at: Timestamp::from_millis(now).unwrap_or(Timestamp::MIN),
                body: d.body.clone(),
                state: DeliveryState::Received,
                error: None,
                attempts: 0,
            }));
        }
        let found = sqlx::query(select_deliveries!(
            "WHERE delivery_key = $1 \
             OR (source = $2 AND (delivery_id = $3 OR event_key = $4)) LIMIT 1"
        ))
        .bind(&key)
        .bind(d.source)
        .bind(d.delivery_id.as_deref().unwrap_or(""))
        .bind(&d.event_key)
        .fetch_one(&self.writer)
        .await?;
        Ok(Saved::Existing(delivery(&found)?))
    }

    /// Whether any delivery waits for something (one indexed probe, so a
    /// delivery that unblocks nothing looks no further).
    pub async fn any_waiting(&self) -> Result<bool, Error> {
        let row = sqlx::query("SELECT 1 FROM webhook_deliveries WHERE state = 'waiting' LIMIT 1")
            .fetch_optional(&self.writer)
            .await?;
        Ok(row.is_some())
    }

    /// The newest applicable delivery of a resource (highest version, then
    /// latest received; failed ones do not count), and how many applicable
    /// deliveries it has.
    pub async fn newest_delivery(
        &self,
        source: &str,
        resource: &str,
    ) -> Result<(Option<StoredDelivery>, i64), Error> {
        let row = sqlx::query(
            "SELECT delivery_key, source, topic, resource, received_at, body, state, error, attempts, \
             COUNT(*) OVER () FROM webhook_deliveries WHERE source = $1 AND resource = $2 \
             AND state <> 'failed' ORDER BY version DESC, received_at DESC, delivery_key DESC LIMIT 1",
        )
        .bind(source)
        .bind(resource)
        .fetch_optional(&self.writer)
        .await?;
        let Some(row) = row else {
            return Ok((None, 0));
        };
        Ok((Some(delivery(&row)?), row.try_get(9)?))
    }

    /// Records how applying a delivery ended; `drop_body` empties its body
    /// (one that will not be needed again holds personal data for nothing).
    pub async fn finish_delivery(
        &self,
        key: &str,
        state: DeliveryState,
        finish: &Finish,
        drop_body: bool,
    ) -> Result<(), Error> {
        let ended = Ended {
            key: key.to_owned(),
            state,
            finish: finish.clone(),
            drop_body,
        };
        self.finish_deliveries(std::slice::from_ref(&ended)).await
    }

    /// Records how several deliveries ended, in one transaction (one
    /// commit for a group of deliveries answered together).
    pub async fn finish_deliveries(&self, ended: &[Ended]) -> Result<(), Error> {
        let now = Timestamp::now().millis();
        let mut tx = self.begin_write().await?;
        for e in ended {
            sqlx::query(
                "UPDATE webhook_deliveries SET state = $2, error = $3, customer_id = COALESCE($4, customer_id), \
                 subject = COALESCE($5, subject), awaiting = $6, attempts = attempts + 1, updated_at = $7, \
                 body = CASE WHEN $8 = 1 THEN '' ELSE body END WHERE delivery_key = $1",
            )
            .bind(&e.key)
            .bind(e.state.as_str())
            .bind(e.finish.error.as_deref())
            .bind(e.finish.customer_id.as_deref())
            .bind(e.finish.subject.as_deref())
            .bind(e.finish.awaiting.as_deref())
            .bind(now)
            .bind(super::flag(e.drop_body))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Deletes one delivery (an erasure request, once carried out).
    pub async fn delete_delivery(&self, key: &str) -> Result<(), Error> {
        sqlx::query("DELETE FROM webhook_deliveries WHERE delivery_key = $1")
            .bind(key)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    /// Deletes the deliveries about any of these identities (keyed hashes)
    /// not yet tied to a customer.
    pub async fn forget_deliveries_about(&self, hashes: &[String]) -> Result<u64, Error> {
        let mut n = 0;
        for h in hashes {
            n += sqlx::query("DELETE FROM webhook_deliveries WHERE subject = $1 OR awaiting = $1")
                .bind(h)
                .execute(&self.writer)
                .await?
                .rows_affected();
        }
        Ok(n)
    }

    /// Marks products as no longer sold (a deleted Shopify product's
    /// variants), with a change for every replica.
    pub async fn deactivate_products(&self, ids: &[String]) -> Result<(), Error> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin_write().await?;
        let mut changes = Vec::new();
        for id in ids {
            let n = sqlx::query(
                "UPDATE products SET active = 0, content_hash = 0, updated_at = $2 WHERE product_id = $1 AND active <> 0",
            )
            .bind(id)
            .bind(Timestamp::now().millis())
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if n > 0 {
                changes.push(Change::product(id));
            }
        }
        super::feed::append(&mut tx, &changes).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Marks the other applicable deliveries of a resource superseded once
    /// `newest` was applied.
    pub async fn supersede_older(
        &self,
        source: &str,
        resource: &str,
        newest: &str,
    ) -> Result<(), Error> {
        sqlx::query(
            "UPDATE webhook_deliveries SET state = 'superseded', awaiting = NULL WHERE source = $1 \
             AND resource = $2 AND delivery_key <> $3 AND state IN ('received', 'waiting', 'applied')",
        )
        .bind(source)
        .bind(resource)
        .bind(newest)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// Waiting deliveries that wait for any of `keys`, oldest first.
    pub async fn deliveries_awaiting(&self, keys: &[String]) -> Result<Vec<StoredDelivery>, Error> {
        let mut out = Vec::new();
        for key in keys {
            let rows = sqlx::query(select_deliveries!(
                "WHERE awaiting = $1 AND state = 'waiting' \
                 ORDER BY received_at LIMIT 1000"
            ))
            .bind(key)
            .fetch_all(&self.writer)
            .await?;
            for r in &rows {
                out.push(delivery(r)?);
            }
        }
        out.sort_by_key(|d| d.received_at);
        out.dedup_by(|a, b| a.key == b.key);
        Ok(out)
    }

    /// Deliveries of a source (any when `None`) in a state, oldest first.
    pub async fn deliveries_in(
        &self,
        source: Option<&str>,
        state: DeliveryState,
        limit: i64,
    ) -> Result<Vec<StoredDelivery>, Error> {
        let rows = sqlx::query(select_deliveries!(
            "WHERE state = $1 AND ($2 = '' OR source = $2) \
             ORDER BY received_at, delivery_key LIMIT $3"
        ))
        .bind(state.as_str())
        .bind(source.unwrap_or(""))
        .bind(limit)
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(delivery).collect()
    }

    /// One delivery by key.
    pub async fn delivery(&self, key: &str) -> Result<Option<StoredDelivery>, Error> {
        let row = sqlx::query(select_deliveries!("WHERE delivery_key = $1"))
            .bind(key)
            .fetch_optional(&self.writer)
            .await?;
        row.as_ref().map(delivery).transpose()
    }

    /// Per source: deliveries per state, the newest, the newest problem.
    pub async fn delivery_status(&self) -> Result<Vec<SourceStatus>, Error> {
        let rows = sqlx::query(
            "SELECT source, state, COUNT(*), MAX(received_at) FROM webhook_deliveries \
             GROUP BY source, state ORDER BY source",
        )
        .fetch_all(&self.reader)
        .await?;
        let mut out: Vec<SourceStatus> = Vec::new();
        for r in &rows {
            let source: String = r.try_get(0)?;
            let state = DeliveryState::from_stored(&r.try_get::<String, _>(1)?);
            let (count, last): (i64, i64) = (r.try_get(2)?, r.try_get(3)?);
            if out.last().is_none_or(|s| s.source != source) {
                out.push(SourceStatus {
                    source: source.clone(),
                    ..Default::default()
                });
            }
            let s = out.last_mut().expect("pushed above");
            let at = DeliveryState::ALL.iter().position(|k| *k == state);
            s.counts[at.unwrap_or(0)] += count;
            let last = Timestamp::from_millis(last).ok();
            s.last_received = s.last_received.max(last);
        }
        for s in &mut out {
            let problem = sqlx::query(
                "SELECT updated_at, topic, error FROM webhook_deliveries WHERE source = $1 \
                 AND state IN ('failed', 'waiting') ORDER BY updated_at DESC LIMIT 1",
            )
            .bind(&s.source)
            .fetch_optional(&self.reader)
            .await?;
            if let Some(p) = problem {
                let at = Timestamp::from_millis(p.try_get(0)?).unwrap_or(Timestamp::MIN);
                let error: Option<String> = p.try_get(2)?;
                s.last_problem = Some((at, p.try_get(1)?, error.unwrap_or_default()));
            }
        }
        Ok(out)
    }

    /// Deletes applied, superseded and failed deliveries received before
    /// `before` (at most `limit` at a time, so the pruner never holds a
    /// long lock). Returns how many went.
    pub async fn prune_deliveries(&self, before: Timestamp, limit: i64) -> Result<u64, Error> {
        let n = sqlx::query(
            "DELETE FROM webhook_deliveries WHERE delivery_key IN (SELECT delivery_key FROM webhook_deliveries \
             WHERE received_at < $1 ORDER BY received_at LIMIT $2)",
        )
        .bind(before.millis())
        .bind(limit)
        .execute(&self.writer)
        .await?
        .rows_affected();
        Ok(n)
    }

    /// Deletes every delivery, link and stock row of a source (Shopify's
    /// `shop/redact`). Returns the deliveries deleted.
    pub async fn forget_source(&self, source: &str) -> Result<u64, Error> {
        let mut tx = self.begin_write().await?;
        let n = sqlx::query("DELETE FROM webhook_deliveries WHERE source = $1")
            .bind(source)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        sqlx::query("DELETE FROM webhook_links WHERE source = $1")
            .bind(source)
            .execute(&mut *tx)
            .await?;
        if source == "shopify" {
            sqlx::query("DELETE FROM webhook_stock")
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(n)
    }

    /// Maps a sender's ids onto ours (`kind` says what they are). A link
    /// to a customer who was erased (even while it was being resolved) is
    /// not kept: it would name them again.
    pub async fn save_links(
        &self,
        source: &str,
        kind: &str,
        links: &[(String, String, Option<String>)],
    ) -> Result<(), Error> {
        if links.is_empty() {
            return Ok(());
        }
        let hash_key = self.hash_key().await?;
        let mut tx = self.begin_write().await?;
        self.hold_off_erasures(&mut tx).await?;
        let customers: Vec<CustomerId> = links
            .iter()
            .filter_map(|(_, _, c)| c.as_deref())
            .filter_map(|c| CustomerId::parse(c).ok())
            .collect();
        let erased: Vec<&str> = super::trust::erased_among(&mut tx, &hash_key, &customers)
            .await?
            .into_iter()
            .map(|i| customers[i].as_str())
            .collect();
        let kept = links
            .iter()
            .filter(|(_, _, c)| c.as_deref().is_none_or(|c| !erased.contains(&c)));
        for (external, value, customer) in kept {
            sqlx::query(
                "INSERT INTO webhook_links (source, kind, external_id, value, customer_id) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (source, kind, external_id) DO UPDATE SET value = excluded.value, customer_id = excluded.customer_id",
            )
            .bind(source)
            .bind(kind)
            .bind(external)
            .bind(value)
            .bind(customer.as_deref())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Our id for a sender's id, if linked.
    pub async fn link_of(
        &self,
        source: &str,
        kind: &str,
        external: &str,
    ) -> Result<Option<String>, Error> {
        let row = sqlx::query(
            "SELECT value FROM webhook_links WHERE source = $1 AND kind = $2 AND external_id = $3",
        )
        .bind(source)
        .bind(kind)
        .bind(external)
        .fetch_optional(&self.writer)
        .await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }

    /// The senders' ids linked to one of ours.
    pub async fn links_to(
        &self,
        source: &str,
        kind: &str,
        value: &str,
    ) -> Result<Vec<String>, Error> {
        let rows = sqlx::query(
            "SELECT external_id FROM webhook_links WHERE source = $1 AND kind = $2 AND value = $3 \
             ORDER BY external_id",
        )
        .bind(source)
        .bind(kind)
        .bind(value)
        .fetch_all(&self.writer)
        .await?;
        rows.iter()
            .map(|r| r.try_get(0).map_err(Error::from))
            .collect()
    }

    /// Records an inventory item's level at one location (unless a newer
    /// one is stored) and sets the product's stock to the sum over its
    /// locations. Returns that sum, or `None` when the level was older.
    pub async fn set_location_stock(
        &self,
        product_id: &str,
        inventory_item: &str,
        location: &str,
        available: i64,
        updated_at: Timestamp,
    ) -> Result<Option<i64>, Error> {
        let mut tx = self.begin_write().await?;
        let written = sqlx::query(
            "INSERT INTO webhook_stock (inventory_item_id, location_id, available, updated_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (inventory_item_id, location_id) DO UPDATE SET available = excluded.available, \
             updated_at = excluded.updated_at WHERE webhook_stock.updated_at <= excluded.updated_at",
        )
        .bind(inventory_item)
        .bind(location)
        .bind(available)
        .bind(updated_at.millis())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if written == 0 {
            return Ok(None);
        }
        let total: i64 = sqlx::query_scalar(
            "SELECT CAST(COALESCE(SUM(available), 0) AS BIGINT) FROM webhook_stock WHERE inventory_item_id = $1",
        )
        .bind(inventory_item)
        .fetch_one(&mut *tx)
        .await?;
        let changed = sqlx::query(
            "UPDATE products SET stock_quantity = $2, in_stock = $3, content_hash = 0, updated_at = $4 \
             WHERE product_id = $1",
        )
        .bind(product_id)
        .bind(total)
        .bind(super::flag(total > 0))
        .bind(Timestamp::now().millis())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if changed > 0 {
            super::feed::append(&mut tx, &[Change::product(product_id)]).await?;
        }
        tx.commit().await?;
        Ok(Some(total))
    }
}
