//! Connectors: the shop's own systems (Shopify, Segment and RudderStack,
//! Zendesk, Chatwoot, Gorgias, Freshdesk) deliver through their webhooks,
//! and each delivery is verified on its raw bytes, stored once, then
//! mapped onto the import's own forms and written through the same store
//! calls (validation, bounds, identity linking, change feed, suppression of
//! erased customers). Knows nothing of HTTP: the face hands it a source,
//! the credentials it read and the body, and maps the receipt onto a
//! status code.
//!
//! Exactly-once effect: a delivery is stored under the sender's delivery
//! id and event id (or the body's hash), so a retry or a duplicate finds
//! the first; every write is an idempotent upsert; a versioned resource
//! (a Shopify order, product, customer, inventory level) is applied from
//! its newest stored version, so an older one arriving late never wins.

mod apply;
mod backfill;
mod config;
mod finish;
mod helpdesk;
mod shopify;
mod verify;

use serde_json::{Map, Value};

pub use config::{ConnectorConfig, Source, SourceValue};
pub use verify::{
    Credentials, MAX_SIGNATURE_AGE_SECS, Refusal, Secrets, TOKEN_HEADER, hmac_sha1, hmac_sha256,
    to_hex,
};

use crate::{
    domain::{CustomerId, Error, Identity, Timestamp},
    store::{DeliveryState, NewDelivery, Saved, SourceStatus, Store, StoredDelivery},
};

/// Largest body accepted (Segment's batches of 4,000 events fit).
pub const MAX_BODY_BYTES: usize = 8 << 20;

/// Who a ticket or a helpdesk user is, as the sender names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Who {
    /// The shop's customer id.
    Customer(CustomerId),
    /// An email or phone, resolved to the customer it is linked to.
    Identity(Identity),
    /// The sender's own user id, resolved through a link learned earlier.
    External(String),
}

/// One thing a delivery asks of the core.
#[derive(Debug, Clone)]
pub enum Item {
    /// A Segment-spec call, read by the import's parser.
    Call(Value),
    /// A catalogue product, in the catalogue file's JSON form.
    Product(Value),
    /// A guest's order (the call names their guest id): theirs when the
    /// email belongs to a known customer.
    GuestOrder {
        /// The call.
        call: Value,
        /// The email on the order.
        email: Identity,
    },
    /// A ticket call without its customer, who is resolved first.
    Ticket {
        /// The call.
        call: Value,
        /// Whose it is.
        who: Who,
    },
    /// An inventory level at one location.
    Stock {
        /// Shopify's inventory item id.
        item: String,
        /// The location.
        location: String,
        /// Units available there.
        available: i64,
        /// When it was set.
        at: Timestamp,
    },
    /// The sender's ids mapped onto ours.
    Links {
        /// What they are (`inventory_item` → variant, `variant` → style).
        kind: &'static str,
        /// (theirs, ours).
        links: Vec<(String, String)>,
    },
    /// A helpdesk user known by an email or phone.
    Person {
        /// The helpdesk's user id.
        external: String,
        /// Who they are.
        who: Who,
    },
    /// Every variant of a deleted product is no longer sold.
    ProductGone {
        /// The product (style) id.
        product: String,
    },
    /// Erase a customer (Shopify's `customers/redact`).
    Erase {
        /// Their id, when given.
        customer: Option<CustomerId>,
        /// Their email and phone, when given.
        identities: Vec<Identity>,
    },
    /// A customer asked for their data (Shopify's `customers/data_request`).
    DataRequest {
        /// Their id, when given.
        customer: Option<CustomerId>,
        /// Their email and phone, when given.
        identities: Vec<Identity>,
    },
    /// Forget everything the connector holds from this source
    /// (Shopify's `shop/redact`).
    ForgetSource,
}

/// What one delivery maps to.
#[derive(Debug, Clone, Default)]
pub struct Mapped {
    /// What to do, in order.
    pub items: Vec<Item>,
    /// The identity the delivery is about, so erasure finds it before it
    /// is tied to a customer.
    pub subject: Option<Identity>,
}

/// A delivery's identity and version.
#[derive(Debug, Clone)]
pub struct Meta {
    /// Topic or event type.
    pub topic: String,
    /// The sender's event id (with the topic), or the body's hash.
    pub event_key: String,
    /// The resource it versions.
    pub resource: Option<String>,
    /// The version.
    pub version: i64,
}

/// What became of an accepted delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Its records are stored.
    Applied,
    /// The same delivery was received before.
    Duplicate,
    /// A newer version of the same resource was applied.
    Superseded,
    /// Stored; applied once what it needs arrives.
    Waiting(String),
    /// Stored with the reason it could not be (wholly) mapped; replayable.
    Failed(String),
}

impl Outcome {
    /// A word for metrics and the answer.
    pub fn as_str(&self) -> &'static str {
        match self {
            Outcome::Applied => "applied",
            Outcome::Duplicate => "duplicate",
            Outcome::Superseded => "superseded",
            Outcome::Waiting(_) => "waiting",
            Outcome::Failed(_) => "failed",
        }
    }
}

/// Why a delivery was not accepted.
#[derive(Debug)]
pub enum Refused {
    /// No secret is configured for the source.
    NotConfigured,
    /// The signature or token did not verify.
    Unauthorized(Refusal),
    /// Not JSON, or missing what identifies it (never retried).
    Malformed(String),
    /// Larger than [`MAX_BODY_BYTES`].
    TooLarge,
    /// It could not be stored (the sender should retry).
    Unavailable(Error),
}

impl Refused {
    /// A word for metrics.
    pub fn as_str(&self) -> &'static str {
        match self {
            Refused::NotConfigured => "not_configured",
            Refused::Unauthorized(_) => "unauthorized",
            Refused::Malformed(_) => "malformed",
            Refused::TooLarge => "too_large",
            Refused::Unavailable(_) => "unavailable",
        }
    }
}

/// The answer to an accepted delivery.
#[derive(Debug, Clone)]
pub struct Receipt {
    /// The stored delivery's key.
    pub key: String,
    /// Its topic.
    pub topic: String,
    /// What became of it.
    pub outcome: Outcome,
}

/// The connectors of one replica.
#[derive(Clone)]
pub struct Connectors {
    store: Store,
    config: std::sync::Arc<ConnectorConfig>,
    finisher: finish::Finisher,
}

/// A text field (strings, numbers and booleans as text; blank is none).
pub(crate) fn text(o: &Map<String, Value>, key: &str) -> Option<String> {
    match o.get(key) {
        Some(Value::String(v)) if !v.trim().is_empty() => Some(v.trim().to_owned()),
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(Value::Bool(b)) => Some(b.to_string()),
        _ => None,
    }
}

/// An id field: a number or a non-blank string.
pub(crate) fn num_text(o: &Map<String, Value>, key: &str) -> Option<String> {
    match o.get(key) {
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(Value::String(v)) if !v.trim().is_empty() => Some(v.trim().to_owned()),
        _ => None,
    }
}

/// The anonymous id a guest's orders are stored under: a keyed hash of
/// their email, so it links (and their guest orders attach) when a
/// customer with that email arrives, and says nothing of the email.
pub(crate) fn guest_id(hash_key: &[u8; 32], email: &Identity) -> String {
    let hash = crate::store::identity_hash(hash_key, email);
    format!("guest-{}", &hash[..32.min(hash.len())])
}

fn body_hash(body: &[u8]) -> String {
    blake3::hash(body).to_hex()[..32].to_owned()
}

impl Connectors {
    /// Connectors over `store` with `config`'s secrets.
    /// Starts the task that records deliveries' states, so it needs a
    /// Tokio runtime.
    pub fn new(store: Store, config: ConnectorConfig) -> Self {
        Self {
            finisher: finish::Finisher::spawn(store.clone()),
            store,
            config: std::sync::Arc::new(config),
        }
    }

    /// The configuration (never logged: it holds secrets).
    pub fn config(&self) -> &ConnectorConfig {
        &self.config
    }

    /// Receives one delivery: verifies it, stores it once, applies it.
    /// `Ok` means it is stored (whatever became of it); the sender may be
    /// told so.
    pub async fn receive(
        &self,
        source: Source,
        creds: &Credentials,
        body: &[u8],
    ) -> Result<Receipt, Refused> {
        let secrets = self.config.secrets(source).ok_or(Refused::NotConfigured)?;
        if body.len() > MAX_BODY_BYTES {
            return Err(Refused::TooLarge);
        }
        verify::check(source.scheme(), secrets, creds, body, Timestamp::now())
            .map_err(Refused::Unauthorized)?;
        let json: Value = serde_json::from_slice(body)
            .map_err(|e| Refused::Malformed(format!("the body is not JSON ({e})")))?;
        let text = std::str::from_utf8(body).map_err(|_| Refused::Malformed("not UTF-8".into()))?;
        let (delivery_id, meta) = self.meta(source, creds, &json, body)?;
        let saved = self
            .store
            .save_delivery(&NewDelivery {
                source: source.as_str(),
                delivery_id,
                event_key: meta.event_key,
                topic: meta.topic.clone(),
                resource: meta.resource,
                version: meta.version,
                body: text.to_owned(),
            })
            .await
            .map_err(Refused::Unavailable)?;
        let delivery = match saved {
            Saved::New(d) => d,
            Saved::Existing(d) if d.state == DeliveryState::Received => d,
            Saved::Existing(d) => {
                return Ok(Receipt {
                    key: d.key,
                    topic: d.topic,
                    outcome: Outcome::Duplicate,
                });
            }
        };
        let outcome = self
            .process(&delivery)
            .await
            .map_err(Refused::Unavailable)?;
        Ok(Receipt {
            key: delivery.key,
            topic: meta.topic,
            outcome,
        })
    }

    /// The delivery id and the meta of a delivery, from its headers and body.
    fn meta(
        &self,
        source: Source,
        creds: &Credentials,
        json: &Value,
        body: &[u8],
    ) -> Result<(Option<String>, Meta), Refused> {
        let hash = body_hash(body);
        let unversioned = |topic: String, event: Option<String>| Meta {
            event_key: format!("{topic}|{}", event.unwrap_or_else(|| hash.clone())),
            topic,
            resource: None,
            version: 0,
        };
        let header = |name: &str| {
            creds
                .header(name)
                .filter(|v| !v.is_empty())
                .map(|v| crate::domain::clip(v, 128).into_owned())
        };
        let field = |key: &str| json.as_object().and_then(|o| text(o, key));
        Ok(match source {
            Source::Shopify => {
                let topic = header("x-shopify-topic").ok_or_else(|| {
                    Refused::Malformed("the X-Shopify-Topic header is missing".into())
                })?;
                let event = header("x-shopify-event-id");
                (
                    header("x-shopify-webhook-id"),
                    shopify::meta(&topic, event.as_deref(), json, &hash),
                )
            }
            Source::Segment => {
                let topic = if json.is_array() {
                    "batch".to_owned()
                } else {
                    field("type").unwrap_or_else(|| "track".into())
                };
                (None, unversioned(topic, None))
            }
            Source::Zendesk => {
                let topic = field("type").unwrap_or_else(|| "trigger".into());
                (None, unversioned(topic, field("id")))
            }
            Source::Chatwoot => {
                let topic = field("event").unwrap_or_else(|| "unknown".into());
                (header("x-chatwoot-delivery"), unversioned(topic, None))
            }
            Source::Gorgias | Source::Freshdesk => (None, unversioned("ticket".into(), None)),
        })
    }

    /// Applies a stored delivery; for a versioned resource, its newest
    /// stored version (checked again after writing, so two deliveries
    /// racing on two replicas still end with the newest applied).
    async fn process(&self, d: &StoredDelivery) -> Result<Outcome, Error> {
        let Some(resource) = &d.resource else {
            return self.apply(d, true).await;
        };
        let mut own = None;
        for _ in 0..4 {
            let (newest, versions) = self.store.newest_delivery(&d.source, resource).await?;
            let Some(newest) = newest else {
                break;
            };
            let outcome = self.apply(&newest, true).await?;
            if newest.key == d.key {
                own = Some(outcome);
            }
            let (after, _) = self.store.newest_delivery(&d.source, resource).await?;
            if after.as_ref().map(|a| &a.key) == Some(&newest.key) {
                // Older versions (when there are any) are done with.
                if versions > 1 {
                    self.store
                        .supersede_older(&d.source, resource, &newest.key)
                        .await?;
                }
                break;
            }
        }
        match own {
            Some(o) => Ok(o),
            None => {
                let state = DeliveryState::Superseded;
                self.store
                    .finish_delivery(&d.key, state, &Default::default(), false)
                    .await?;
                Ok(Outcome::Superseded)
            }
        }
    }

    /// Applies again every delivery that failed or waits (after a fix, or
    /// once what they need was sent some other way), oldest first, at most
    /// `limit`. Returns each one's key and new outcome.
    pub async fn replay(
        &self,
        source: Option<Source>,
        limit: i64,
    ) -> Result<Vec<(String, Outcome)>, Error> {
        let mut out = Vec::new();
        for state in [
            DeliveryState::Failed,
            DeliveryState::Waiting,
            DeliveryState::Received,
        ] {
            let left = limit - out.len() as i64;
            if left <= 0 {
                break;
            }
            let found = self
                .store
                .deliveries_in(source.map(Source::as_str), state, left)
                .await?;
            for d in found {
                // Back to `received`, so it counts again as a version.
                self.store
                    .finish_delivery(&d.key, DeliveryState::Received, &Default::default(), false)
                    .await?;
                let outcome = self.process(&d).await?;
                out.push((d.key, outcome));
            }
        }
        Ok(out)
    }

    /// Per source: deliveries per state, the newest, the newest problem.
    pub async fn status(&self) -> Result<Vec<SourceStatus>, Error> {
        self.store.delivery_status().await
    }

    /// The retention pass: applies deliveries left `received` by a crash
    /// (older than a minute), then deletes deliveries older than the
    /// retention, a bounded batch at a time. Returns (re-applied, deleted).
    pub async fn maintain(&self) -> Result<(usize, u64), Error> {
        let stale = self
            .store
            .deliveries_in(None, DeliveryState::Received, 100)
            .await?;
        let minute_ago = Timestamp::now().plus_millis(-60_000);
        let mut reapplied = 0;
        for d in stale.iter().filter(|d| d.received_at < minute_ago) {
            self.process(d).await?;
            reapplied += 1;
        }
        let before = Timestamp::now().minus_days(self.config.retention_days);
        let mut deleted = 0;
        loop {
            let n = self.store.prune_deliveries(before, 500).await?;
            deleted += n;
            if n < 500 {
                break;
            }
            tokio::task::yield_now().await;
        }
        Ok((reapplied, deleted))
    }
}

/// A topic as a bounded metrics label: a known topic, or `other`.
pub fn topic_label(source: Source, topic: &str) -> &'static str {
    const SEGMENT: &[&str] = &["batch", "track", "identify", "page", "screen"];
    const CHATWOOT: &[&str] = &[
        "conversation_created",
        "conversation_updated",
        "conversation_status_changed",
    ];
    let known: &[&'static str] = match source {
        Source::Shopify => shopify::TOPICS,
        Source::Segment => SEGMENT,
        Source::Chatwoot => CHATWOOT,
        Source::Zendesk if topic.starts_with("zen:event-type:ticket.") => return "ticket_event",
        Source::Zendesk if topic.starts_with("zen:event-type:user.") => return "user_event",
        Source::Zendesk => &["trigger"],
        Source::Gorgias | Source::Freshdesk => &["ticket"],
    };
    known
        .iter()
        .find(|k| **k == topic)
        .copied()
        .unwrap_or("other")
}
