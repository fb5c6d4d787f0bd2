//! Applying a stored delivery: map it, resolve whose it is, write it
//! through the import's store calls, record how it ended, and apply the
//! deliveries that waited for what it stored.

use serde_json::Value;

use super::{Connectors, Item, Mapped, Outcome, Source, Who, guest_id, helpdesk, shopify};
use crate::{
    domain::{CustomerKey, Error, Identity, IdentityKind, Product, Timestamp},
    ingest::{product_from_json, segment, write_records},
    store::{DeliveryState, Ended, Finish, StoredDelivery, Subject, identity_hash},
};

/// What applying one delivery gathered.
#[derive(Default)]
struct Run {
    records: Vec<segment::Record>,
    products: Vec<Product>,
    rejected: Vec<String>,
    /// What it waits for, and why.
    waiting: Option<(String, String)>,
    customer: Option<String>,
    /// Keys of what it stored, which waiting deliveries may need.
    unblocked: Vec<String>,
    /// Erased or forgotten: the delivery itself goes too.
    forget: bool,
}

impl Run {
    fn wait(&mut self, key: String, reason: &str) {
        self.waiting.get_or_insert((key, reason.to_owned()));
    }
}

/// The most events read from one batch (Segment sends up to 4,000).
const MAX_BATCH: usize = 5_000;

/// The most rejection reasons kept in a delivery's error.
const REASONS_KEPT: usize = 5;

impl Connectors {
    fn map(
        &self,
        source: Source,
        topic: &str,
        body: &Value,
        hash_key: &[u8; 32],
        now: Timestamp,
    ) -> Result<Mapped, String> {
        match source {
            Source::Shopify => shopify::map(topic, body, hash_key, &self.config.shop_currency),
            Source::Segment => Ok(Mapped {
                items: match body {
                    Value::Array(calls) if calls.len() > MAX_BATCH => {
                        return Err(format!(
                            "a batch has {} events; at most {MAX_BATCH} are read",
                            calls.len()
                        ));
                    }
                    Value::Array(calls) => calls.iter().cloned().map(Item::Call).collect(),
                    call => vec![Item::Call(call.clone())],
                },
                subject: None,
            }),
            Source::Zendesk => helpdesk::zendesk(body, now),
            Source::Chatwoot => helpdesk::chatwoot(body, now),
            Source::Gorgias | Source::Freshdesk => helpdesk::templated(source.as_str(), body, now),
        }
    }

    /// Maps and writes one delivery and records how it ended; with
    /// `cascade`, then applies the deliveries that waited for it.
    pub(super) async fn apply(&self, d: &StoredDelivery, cascade: bool) -> Result<Outcome, Error> {
        let source = Source::parse(&d.source)
            .ok_or_else(|| Error::Internal(anyhow::anyhow!("a delivery of an unknown source")))?;
        let hash_key = self.store.hash_key().await?;
        let now = Timestamp::now();
        let mapped = serde_json::from_str::<Value>(&d.body)
            .map_err(|_| "the stored body is not JSON".to_owned())
            .and_then(|v| self.map(source, &d.topic, &v, &hash_key, now));
        let mapped = match mapped {
            Ok(m) => m,
            Err(reason) => {
                let finish = Finish {
                    error: Some(reason.clone()),
                    ..Default::default()
                };
                self.store
                    .finish_delivery(&d.key, DeliveryState::Failed, &finish, false)
                    .await?;
                return Ok(Outcome::Failed(reason));
            }
        };
        let subject = mapped.subject.as_ref().map(|i| identity_hash(&hash_key, i));
        let mut run = self.run(source, mapped.items, &hash_key, now).await?;
        let (state, outcome, error) = if let Some((_, reason)) = &run.waiting {
            let outcome = Outcome::Waiting(reason.clone());
            (DeliveryState::Waiting, outcome, Some(reason.clone()))
        } else if !run.rejected.is_empty() {
            let n = run.rejected.len();
            run.rejected.truncate(REASONS_KEPT);
            let reason = format!("{n} rejected: {}", run.rejected.join("; "));
            (
                DeliveryState::Failed,
                Outcome::Failed(reason.clone()),
                Some(reason),
            )
        } else {
            (DeliveryState::Applied, Outcome::Applied, None)
        };
        let finish = Finish {
            customer_id: run.customer.clone(),
            subject,
            awaiting: run.waiting.as_ref().map(|(k, _)| k.clone()),
            error,
        };
        // An applied delivery of no versioned resource is not needed again:
        // its body (personal data) goes; its key stays for deduplication.
        let drop_body = state == DeliveryState::Applied && d.resource.is_none();
        let ended = Ended {
            key: d.key.clone(),
            state,
            finish,
            drop_body,
        };
        self.finisher.finish(ended).await?;
        if run.forget {
            self.store.delete_delivery(&d.key).await?;
        }
        if cascade && !run.unblocked.is_empty() && self.store.any_waiting().await? {
            for w in self.store.deliveries_awaiting(&run.unblocked).await? {
                Box::pin(self.apply(&w, false)).await?;
            }
        }
        Ok(outcome)
    }

    /// Applies items (of one delivery, or of many backfilled resources)
    /// and writes what they carry.
    async fn run(
        &self,
        source: Source,
        items: Vec<Item>,
        hash_key: &[u8; 32],
        now: Timestamp,
    ) -> Result<Run, Error> {
        let mut run = Run::default();
        for item in items {
            self.item(source, item, hash_key, now, &mut run).await?;
        }
        self.write(source, hash_key, &mut run).await?;
        Ok(run)
    }

    /// Backfills Shopify resources (one REST resource per JSON line:
    /// orders, refunds, customers, products), mapped as their webhooks
    /// are but written without storing a delivery. Returns (applied, and
    /// each rejected or waiting line with its reason).
    pub async fn backfill_shopify(
        &self,
        lines: &[(u64, String)],
    ) -> Result<(u64, Vec<(u64, String)>), Error> {
        let hash_key = self.store.hash_key().await?;
        let now = Timestamp::now();
        let mut problems = Vec::new();
        let mut applied = 0;
        let mut items = Vec::new();
        for (n, line) in lines {
            let mapped = serde_json::from_str::<Value>(line)
                .map_err(|e| format!("not JSON: {e}"))
                .and_then(|v| {
                    let topic = shopify::topic_of_resource(&v)?;
                    shopify::map(topic, &v, &hash_key, &self.config.shop_currency)
                });
            match mapped {
                Ok(m) => items.extend(m.items),
                Err(reason) => problems.push((*n, reason)),
            }
        }
        let run = self.run(Source::Shopify, items, &hash_key, now).await?;
        applied += (lines.len() - problems.len()) as u64;
        problems.extend(run.rejected.into_iter().map(|r| (0, r)));
        if let Some((_, why)) = run.waiting {
            problems.push((0, why));
        }
        Ok((applied, problems))
    }

    /// Whose a ticket (or a helpdesk user) is: a customer id, or what to
    /// wait for and why.
    async fn whose(
        &self,
        source: Source,
        who: &Who,
        hash_key: &[u8; 32],
    ) -> Result<Result<String, (String, &'static str)>, Error> {
        Ok(match who {
            Who::Customer(c) => Ok(c.as_str().to_owned()),
            Who::Identity(i) => match self.resolve(i).await? {
                Some(c) => Ok(c),
                None => Err((
                    identity_hash(hash_key, i),
                    "no customer has this email or phone yet; applied when one does",
                )),
            },
            Who::External(x) => match self.store.link_of(source.as_str(), "user", x).await? {
                Some(c) => Ok(c),
                None => Err((
                    format!("{}:user:{x}", source.as_str()),
                    "the helpdesk user is not known yet (a user event or the template's email links them); applied when they are",
                )),
            },
        })
    }

    async fn resolve(&self, identity: &Identity) -> Result<Option<String>, Error> {
        let key = CustomerKey::Identity(identity.clone());
        Ok(match self.store.resolve(&key).await? {
            Some(Subject::Customer(c)) => Some(c.as_str().to_owned()),
            _ => None,
        })
    }

    /// Parses a call into the run's records, or records why not.
    fn call(call: Value, now: Timestamp, run: &mut Run) {
        match segment::parse_value(call, now) {
            Ok(record) => run.records.push(record),
            Err(reason) => run.rejected.push(reason),
        }
    }

    async fn item(
        &self,
        source: Source,
        item: Item,
        hash_key: &[u8; 32],
        now: Timestamp,
        run: &mut Run,
    ) -> Result<(), Error> {
        let s = source.as_str();
        match item {
            Item::Call(call) => Self::call(call, now, run),
            Item::Product(v) => match v.as_object().map(product_from_json) {
                Some(Ok(p)) => run.products.push(p),
                Some(Err(reason)) => run.rejected.push(reason),
                None => run.rejected.push("a product is not an object".into()),
            },
            Item::GuestOrder { mut call, email } => {
                if let Some(c) = self.resolve(&email).await? {
                    call["userId"] = c.into();
                }
                Self::call(call, now, run);
            }
            Item::Ticket { mut call, who } => match self.whose(source, &who, hash_key).await? {
                Ok(c) => {
                    call["userId"] = c.clone().into();
                    run.customer.get_or_insert(c);
                    Self::call(call, now, run);
                }
                Err((key, reason)) => run.wait(key, reason),
            },
            Item::Stock {
                item,
                location,
                available,
                at,
            } => match self.store.link_of(s, "inventory_item", &item).await? {
                Some(product) => {
                    self.store
                        .set_location_stock(&product, &item, &location, available, at)
                        .await?;
                }
                None => run.wait(
                    format!("{s}:inventory_item:{item}"),
                    "the inventory item's product has not arrived yet; applied when it does",
                ),
            },
            Item::Links { kind, links } => {
                run.unblocked
                    .extend(links.iter().map(|(ext, _)| format!("{s}:{kind}:{ext}")));
                let links: Vec<_> = links.into_iter().map(|(e, v)| (e, v, None)).collect();
                self.store.save_links(s, kind, &links).await?;
            }
            Item::Person { external, who } => match self.whose(source, &who, hash_key).await? {
                Ok(c) => {
                    let link = (external.clone(), c.clone(), Some(c.clone()));
                    self.store.save_links(s, "user", &[link]).await?;
                    run.unblocked.push(format!("{s}:user:{external}"));
                    run.customer.get_or_insert(c);
                }
                Err((key, reason)) => run.wait(key, reason),
            },
            Item::ProductGone { product } => {
                let variants = self.store.links_to(s, "variant", &product).await?;
                self.store.deactivate_products(&variants).await?;
            }
            Item::Erase {
                customer,
                identities,
            } => {
                let mut found = match &customer {
                    Some(c) => self.store.resolve(&CustomerKey::Id(c.clone())).await?,
                    None => None,
                };
                for i in &identities {
                    if found.is_none() {
                        found = self
                            .store
                            .resolve(&CustomerKey::Identity(i.clone()))
                            .await?;
                    }
                }
                if let (Some(Subject::Customer(c)), _) | (_, Some(c)) = (found, customer) {
                    // Orders they placed as a guest (under the guest id of
                    // their email) become theirs first, so they go too.
                    for i in identities
                        .iter()
                        .filter(|i| i.kind() == IdentityKind::Email)
                    {
                        let guest =
                            Identity::parse(IdentityKind::AnonymousId, &guest_id(hash_key, i));
                        if let Ok(guest) = guest {
                            // A guest id linked to someone else stays theirs.
                            let _ = self.store.link_identity(&c, &guest).await;
                        }
                    }
                    self.store.erase_customer(&c).await?;
                }
                let hashes: Vec<String> = identities
                    .iter()
                    .map(|i| identity_hash(hash_key, i))
                    .collect();
                self.store.forget_deliveries_about(&hashes).await?;
                run.forget = true;
            }
            Item::DataRequest {
                customer,
                identities,
            } => {
                let mut found = customer.map(|c| c.as_str().to_owned());
                for i in &identities {
                    if found.is_none() {
                        found = self.resolve(i).await?;
                    }
                }
                run.customer = found;
            }
            Item::ForgetSource => {
                self.store.forget_source(s).await?;
                run.forget = true;
            }
        }
        Ok(())
    }

    /// Writes the run's products and records; a return whose order has
    /// not arrived waits for it; what was stored unblocks its waiters.
    async fn write(&self, source: Source, hash_key: &[u8; 32], run: &mut Run) -> Result<(), Error> {
        if !run.products.is_empty() {
            self.store.upsert_products(&run.products).await?;
        }
        let records = std::mem::take(&mut run.records);
        if records.is_empty() {
            return Ok(());
        }
        let results = write_records(&self.store, records.clone()).await?;
        let s = source.as_str();
        for (record, result) in records.iter().zip(results) {
            match (record, result) {
                (segment::Record::Return(r), Err(v)) if v.to_string().contains("customer_id") => {
                    run.wait(
                        format!("{s}:order:{}", r.order_id.as_str()),
                        "the refunded order has not arrived yet; applied when it does",
                    );
                }
                (_, Err(v)) => run.rejected.push(v.to_string()),
                (segment::Record::Customer(c), Ok(_)) => {
                    run.customer
                        .get_or_insert(c.customer_id.as_str().to_owned());
                    run.unblocked
                        .extend(c.identities().iter().map(|i| identity_hash(hash_key, i)));
                }
                (segment::Record::Order(o), Ok(_)) => {
                    if let Some(c) = o.actor.customer_id() {
                        run.customer.get_or_insert(c.as_str().to_owned());
                    }
                    run.unblocked
                        .push(format!("{s}:order:{}", o.order_id.as_str()));
                }
                (segment::Record::Ticket(t), Ok(_)) => {
                    run.customer
                        .get_or_insert(t.customer_id.as_str().to_owned());
                }
                _ => {}
            }
        }
        Ok(())
    }
}
