//! Catalogue search (`SearchProducts`): the replica's word index finds the
//! products, the customer's own data (within their consents, as for
//! suggestions) sizes and marks them, and one catalogue read gives each
//! result the product as it is now.
//!
//! A recipe: catch up and resolve the customer → their history (remembered
//! per replica) → the index's hits → [`place::place`] (pure) → the
//! catalogue rows → signed results.

mod personal_memo;
pub mod place;
#[cfg(test)]
mod tests;

use std::{collections::HashSet, sync::Arc};

use personal_memo::PersonalMemo;

use crate::{
    domain::{CustomerId, CustomerKey, Error, Timestamp},
    reads::ProductView,
    store::{Store, Subject},
    suggest::{
        FitView, SuggestService, recipient,
        signals::{self, Ask, History},
        token::SuggestionToken,
        unknown_subject,
    },
    text_index::{Filters, Hit, Words},
};

pub use place::{Personal, Placed};

/// Limits of a search request.
pub mod limits {
    /// Longest query, in characters.
    pub const QUERY_CHARS: usize = 200;
    /// Results: (default, maximum).
    pub const RESULTS: (u32, u32) = (10, 50);
    /// Levels of a category filter.
    pub const CATEGORY_LEVELS: usize = 8;
    /// Hits read from the index per result asked for: variants of one
    /// style, look-alikes, non-merchandise and sold-out sizes fall away.
    pub const HITS_PER_RESULT: usize = 5;
    /// Most hits read for one search (when that many fall away).
    pub const MAX_HITS: usize = 2_000;
    /// Results placed beyond the limit, for those the catalogue read finds
    /// gone.
    pub const SPARE: usize = 5;
}

/// The reason code and variant a search result's id carries (feedback on
/// it is counted apart from suggestions').
pub const SEARCH: &str = "search";

/// A validated SearchProducts request.
#[derive(Debug, Clone)]
pub struct SearchQuery {
    /// The words.
    pub words: Words,
    /// Whom for, when given.
    pub customer: Option<CustomerKey>,
    /// What results must be.
    pub filters: Filters,
    /// The currency of the price filters, when any is set.
    pub currency: Option<String>,
    /// Most results.
    pub limit: u32,
}

/// One product found.
#[derive(Debug, Clone)]
pub struct Found {
    /// Signed id for feedback.
    pub suggestion_id: String,
    /// The product as the catalogue has it now.
    pub product: ProductView,
    /// Position from 1.
    pub rank: u32,
    /// Relevance.
    pub score: f64,
    /// Its size.
    pub fit: FitView,
    /// Can be sold now (in the size shown).
    pub available: bool,
    /// The customer bought the style.
    pub owned: bool,
    /// The customer returned the style within the window.
    pub returned: bool,
}

/// The answer of SearchProducts.
#[derive(Debug, Clone)]
pub struct SearchOutcome {
    /// The customer, when named and known.
    pub customer_id: Option<CustomerId>,
    /// The visitor, when an anonymous id was named and known.
    pub anonymous_id: Option<String>,
    /// When.
    pub as_of: Timestamp,
    /// Best first.
    pub results: Vec<Found>,
    /// Shaped by the customer's own data.
    pub personalised: bool,
    /// Why not, when a customer was named.
    pub note: String,
}

/// Search over a store and the replica's model and word index.
#[derive(Debug, Clone)]
pub struct SearchService {
    store: Store,
    suggest: SuggestService,
    /// Customers' signals for search, remembered on this replica.
    personal: Arc<PersonalMemo>,
}

impl SearchService {
    /// A service over `store`, sizing with `suggest`'s model and memory.
    pub fn new(store: Store, suggest: SuggestService) -> Self {
        Self {
            store,
            suggest,
            personal: Arc::default(),
        }
    }

    /// Answers SearchProducts.
    #[tracing::instrument(skip_all, fields(words = q.words.len(), personal = q.customer.is_some()))]
    pub async fn search(&self, q: &SearchQuery) -> Result<SearchOutcome, Error> {
        let now = Timestamp::now();
        let live = self.suggest.live().clone();
        let (subject, known) = self.subject(q.customer.as_ref()).await?;
        let history = self.suggest.personal_history(subject.as_ref(), now).await?;
        live.text().wait_ready().await;
        let personal = history
            .as_ref()
            .ok()
            .map(|h| self.personal(subject.as_ref(), h, now));
        // Placed beyond the limit: the catalogue read may find some gone.
        let spare = q.limit as usize + limits::SPARE;
        let place = |hits: &[Hit]| {
            live.read(|m| place::place(m, personal.as_deref(), hits, q.filters.in_stock, spare))
        };
        // Products naming every word. Variants and look-alikes fall away
        // when placed: read deeper until the results fill up or the index
        // has no more.
        let mut want = q.limit as usize * limits::HITS_PER_RESULT;
        let mut hits = self.hits(q, want, true).await?;
        let mut placed = place(&hits);
        while placed.len() < spare && hits.len() == want && want < limits::MAX_HITS {
            want = (want * 8).min(limits::MAX_HITS);
            hits = self.hits(q, want, true).await?;
            placed = place(&hits);
        }
        // Then those naming some of the words, after them.
        if placed.len() < spare && q.words.len() > 1 {
            let want = (q.limit as usize * limits::HITS_PER_RESULT * 8).min(limits::MAX_HITS);
            let some = self.hits(q, want, false).await?;
            let seen: HashSet<&str> = hits.iter().map(|h| h.product_id.as_str()).collect();
            let mut both = hits.to_vec();
            both.extend(
                some.iter()
                    .filter(|h| !seen.contains(h.product_id.as_str()))
                    .cloned(),
            );
            placed = place(&both);
        }
        let results = self.finish(q, subject.as_ref(), placed, now).await?;
        let (customer_id, anonymous_id) = match (&subject, known) {
            (Some(Subject::Customer(c)), true) => (Some(c.clone()), None),
            (Some(Subject::Anonymous(a)), true) => (None, Some(a.as_str().to_owned())),
            _ => (None, None),
        };
        Ok(SearchOutcome {
            customer_id,
            anonymous_id,
            as_of: now,
            results,
            personalised: history.is_ok(),
            note: history.err().unwrap_or_default().to_owned(),
        })
    }

    /// The word index's hits for `q`: at most `want`, naming every word or
    /// any (on a blocking thread: it is CPU work).
    async fn hits(
        &self,
        q: &SearchQuery,
        want: usize,
        all_words: bool,
    ) -> Result<Arc<Vec<Hit>>, Error> {
        let text = self.suggest.live().text().clone();
        if let Some(hits) = text.remembered(&q.words, &q.filters, want, all_words) {
            return Ok(hits);
        }
        let (words, filters) = (q.words.clone(), q.filters.clone());
        tokio::task::spawn_blocking(move || text.search(&words, &filters, want, all_words))
            .await
            .map_err(|e| Error::Internal(e.into()))?
            .map_err(|e| Error::Internal(e.into()))
    }

    /// What the customer's own data adds to their searches: remembered
    /// per customer while their history and the model are unchanged.
    fn personal(
        &self,
        subject: Option<&Subject>,
        history: &Arc<History>,
        now: Timestamp,
    ) -> Arc<Personal> {
        let live = self.suggest.live();
        let make = || {
            live.read(|m| {
                let ask = Ask {
                    personal: true,
                    now,
                    ..Ask::default()
                };
                let bought: Vec<&str> = history.bought_groups.keys().map(String::as_str).collect();
                Personal::new(m, signals::signals(m, history, &ask), &bought)
            })
        };
        match subject {
            Some(Subject::Customer(c)) => {
                self.personal
                    .get_or(c.as_str(), history, live.generation(), now, make)
            }
            _ => Arc::new(make()),
        }
    }

    /// The subject named (after the replica caught up with the feed), and
    /// whether we know them; an unknown customer or visitor id is still
    /// someone feedback can be tied to. A customer id this replica found
    /// before, unchanged since, needs no lookup.
    async fn subject(&self, key: Option<&CustomerKey>) -> Result<(Option<Subject>, bool), Error> {
        let live = self.suggest.live();
        let Some(key) = key else {
            live.ensure_current(&self.store).await?;
            return Ok((None, false));
        };
        let subject = match key {
            CustomerKey::Id(c) => {
                live.ensure_current(&self.store).await?;
                if live.memo().known(c.as_str()) {
                    return Ok((Some(Subject::Customer(c.clone())), true));
                }
                let since = live.applied();
                let subject = self.store.resolve(key).await?;
                if subject.is_some() {
                    live.memo().put_known(c.as_str(), since);
                }
                subject
            }
            _ => {
                let ((), subject) =
                    tokio::try_join!(live.ensure_current(&self.store), self.store.resolve(key))?;
                subject
            }
        };
        let known = subject.is_some();
        let subject = subject.or_else(|| unknown_subject(key));
        Ok((subject, known))
    }

    /// The placed results as served: the catalogue rows of the variants
    /// shown (the model may be a moment behind; the database is not), the
    /// filters checked again on them, each with its signed id.
    async fn finish(
        &self,
        q: &SearchQuery,
        subject: Option<&Subject>,
        placed: Vec<Placed>,
        now: Timestamp,
    ) -> Result<Vec<Found>, Error> {
        let mut ids: Vec<&str> = placed.iter().map(|p| p.product_id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        let (rows, key) = tokio::try_join!(self.suggest.product_rows(&ids), self.store.hash_key())?;
        let recipient = recipient(subject);
        let f = &q.filters;
        let mut out = Vec::with_capacity(q.limit as usize);
        for p in placed {
            let Some(row) = rows.get(&p.product_id) else {
                continue;
            };
            let available = row.active && row.in_stock;
            let priced = |bound: Option<i64>, ok: fn(i64, i64) -> bool| {
                bound.is_none_or(|b| {
                    q.currency.as_deref() == Some(row.currency.as_str()) && ok(row.price_minor, b)
                })
            };
            if (f.in_stock && !available)
                || !priced(f.min_price, |p, b| p >= b)
                || !priced(f.max_price, |p, b| p <= b)
            {
                continue;
            }
            let token = SuggestionToken {
                recipient: recipient.clone(),
                product_id: row.product_id.clone(),
                group_id: row.group_id.clone(),
                experiment: String::new(),
                variant: SEARCH.to_owned(),
                reason_code: SEARCH.to_owned(),
                issued_at: now,
                curation_id: None,
            };
            out.push(Found {
                suggestion_id: token.encode(&key),
                product: ProductView::from_catalog(row),
                rank: out.len() as u32 + 1,
                score: f64::from(p.score),
                fit: p.fit,
                available,
                owned: p.owned,
                returned: p.returned,
            });
            if out.len() == q.limit as usize {
                break;
            }
        }
        Ok(out)
    }
}
