//! Serving suggestions: reads a customer's signals and the relevant slice
//! of the model from the store (bounded reads), ranks with
//! [`super::suggest`] (whose filters every candidate passes), and says why
//! each item is there. Also feedback, experiments and their statistics.
//! Knows nothing of gRPC.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
};

use super::{
    LiveModel,
    experiment::{Assignment, Experiment, Variant, wilson},
    memo::Ranking,
    reasons::{self, Ranked, ReasonView},
    signals::{self, Ask, History},
    suggest,
    token::{Recipient, SuggestionToken},
};
use crate::{
    domain::{
        ConsentRecord, Curation, CurationState, CustomerId, CustomerKey, Error, IdentityKind,
        ItemResult, ProductId, Purpose, Timestamp, Violations, withdrawn,
    },
    reads::ProductView,
    store::{FeedbackRow, ProductRows, PurchasedLine, ReturnedLine, Store, Subject},
};

/// Defaults and maxima of the request's knobs (documented in the proto).
pub mod limits {
    /// Default and maximum items of SuggestCrossSells.
    pub const ITEMS: (u32, u32) = (10, 50);
    /// Default and maximum items of the context's suggestions section.
    pub const CONTEXT_ITEMS: (u32, u32) = (5, 50);
    /// Most anchor products.
    pub const ANCHORS: usize = 20;
    /// Most excluded products.
    pub const EXCLUDED: usize = 200;
    /// Purchased lines read (newest first) for seeds, categories and the
    /// price band.
    pub const PURCHASE_LINES: i64 = 500;
    /// Browsing events read for the viewed products.
    pub const EVENTS: i64 = 500;
    /// Items ranked beyond the limit, so that items found unavailable by
    /// the final catalog read can be replaced.
    pub const SPARE: usize = 10;
    /// Catalogue rows a replica reads into memory when it starts (the
    /// items bought by the most customers): half of what it remembers, so
    /// that the rows asked for afterwards fit beside them.
    pub const WARM_PRODUCTS: usize = crate::suggest::memo::PRODUCTS / 2;
}

/// Catalogue rows read per statement when warming.
const WARM_CHUNK: usize = 512;

/// Configuration of the service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SuggestConfig {
    /// Styles returned within this many days are never suggested.
    pub return_window_days: u32,
    /// Whether a customer with no `personalised_suggestions` consent on
    /// file gets personalised suggestions (opt-out, the default) or not
    /// until they grant it (opt-in).
    pub personalise_without_consent: bool,
}

impl Default for SuggestConfig {
    fn default() -> Self {
        Self {
            return_window_days: 730,
            personalise_without_consent: true,
        }
    }
}

/// A validated SuggestCrossSells request.
#[derive(Debug, Clone)]
pub struct SuggestQuery {
    /// Who.
    pub key: CustomerKey,
    /// Products asked about now.
    pub anchors: Vec<ProductId>,
    /// Products not to suggest.
    pub exclude: Vec<ProductId>,
    /// Most items.
    pub limit: u32,
}

/// One suggested item.
#[derive(Debug, Clone, PartialEq)]
pub struct SuggestedItem {
    /// Signed id for feedback.
    pub suggestion_id: String,
    /// The product.
    pub product: ProductView,
    /// Position from 1.
    pub rank: u32,
    /// Score.
    pub score: f64,
    /// Why.
    pub reason: ReasonView,
    /// Its size.
    pub fit: reasons::FitView,
    /// The curation, for a curated item.
    pub curated: Option<reasons::CuratedView>,
}

/// A ranked list with the strategy that made it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SuggestionList {
    /// Items, best first.
    pub items: Vec<SuggestedItem>,
    /// Experiment ("" for none).
    pub experiment: String,
    /// Variant.
    pub variant: String,
    /// Shaped by the customer's own history.
    pub personalised: bool,
    /// Why not personalised ("" when it is).
    pub note: String,
}

/// The answer of SuggestCrossSells.
#[derive(Debug, Clone)]
pub struct SuggestOutcome {
    /// The customer, when known.
    pub customer_id: Option<CustomerId>,
    /// The anonymous visitor, when the lookup found one (and no customer).
    pub anonymous_id: Option<String>,
    /// When computed.
    pub as_of: Timestamp,
    /// The suggestions.
    pub list: SuggestionList,
}

/// Kinds of feedback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FeedbackKind {
    /// Displayed.
    Shown,
    /// Liked.
    ThumbsUp,
    /// Rejected: never again for this customer.
    ThumbsDown,
    /// Sent to the customer.
    SentToCustomer,
    /// Added to the cart.
    AddedToCart,
    /// Bought.
    Purchased,
}

impl FeedbackKind {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            FeedbackKind::Shown => "shown",
            FeedbackKind::ThumbsUp => "thumbs_up",
            FeedbackKind::ThumbsDown => "thumbs_down",
            FeedbackKind::SentToCustomer => "sent_to_customer",
            FeedbackKind::AddedToCart => "added_to_cart",
            FeedbackKind::Purchased => "purchased",
        }
    }
}

/// One piece of feedback as received (the id not yet verified).
#[derive(Debug, Clone)]
pub struct FeedbackInput {
    /// The suggestion id.
    pub suggestion_id: String,
    /// What happened.
    pub kind: FeedbackKind,
    /// When (defaults to now).
    pub occurred_at: Option<Timestamp>,
}

/// Whose numbers [`SuggestService::stats`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatsOf<'a> {
    /// The running experiment (or, with none, suggestions outside any).
    Running,
    /// An experiment by name.
    Named(&'a str),
    /// Suggestions served outside any experiment.
    OutsideExperiments,
}

/// One variant's numbers.
#[derive(Debug, Clone, PartialEq)]
pub struct VariantReport {
    /// Name.
    pub variant: String,
    /// Suggestions with any feedback.
    pub shown: u64,
    /// Thumbs up or sent.
    pub accepted: u64,
    /// Bought.
    pub purchased: u64,
    /// Thumbs down.
    pub rejected: u64,
    /// accepted / shown with its 95% interval.
    pub acceptance: (f64, f64, f64),
    /// purchased / shown with its 95% interval.
    pub conversion: (f64, f64, f64),
}

/// The running experiment (if any), and the feed's experiments epoch it was
/// read at.
type RunningAt = (u64, Option<Experiment>);

/// Suggestions, feedback and experiments over a store and a live model.
#[derive(Debug, Clone)]
pub struct SuggestService {
    pub(super) store: Store,
    pub(super) config: SuggestConfig,
    pub(super) live: Arc<LiveModel>,
    /// The running experiment as last read, with the experiments epoch of
    /// the change feed it was read at.
    running: Arc<std::sync::Mutex<Option<RunningAt>>>,
    /// The curations not archived or ended as last read, with the
    /// curations epoch of the change feed they were read at.
    curations: Arc<std::sync::Mutex<Option<CurationsAt>>>,
}

/// The live curations, and the feed's curations epoch they were read at.
type CurationsAt = (u64, Arc<Vec<Curation>>);

/// Who the suggestions are for and what was asked.
pub(crate) struct Request<'a> {
    /// The subject, when known (or the id given, for an unknown one).
    pub subject: Option<&'a Subject>,
    /// The assignment key (customer, visitor or identity).
    pub who: &'a str,
    /// The customer's consents.
    pub consents: &'a [ConsentRecord],
    /// Products asked about.
    pub anchors: &'a [ProductId],
    /// Products not to suggest.
    pub exclude: &'a [ProductId],
    /// The browsing already read (viewed, in cart), when the caller has it.
    pub browsing: Option<&'a (Vec<String>, Vec<String>)>,
    /// Most items.
    pub limit: usize,
    /// Now.
    pub now: Timestamp,
    /// Whether the live model already caught up with the feed during this
    /// request.
    pub caught_up: bool,
    /// Curated items first, then ranked ones (GetCuratedCrossSells).
    pub curated_first: bool,
    /// The history's rows, when the caller read them with its own (the
    /// context does): used instead of reading them again.
    pub rows: Option<HistoryRows>,
}

/// The rows a suggestion history is made of, read by a caller that reads
/// them anyway (see [`crate::store::CustomerRead`]). Every field is read
/// with the bounds [`SuggestService`] reads it with.
#[derive(Debug, Clone, Default)]
pub struct HistoryRows {
    /// The newest [`limits::PURCHASE_LINES`] purchase lines.
    pub lines: Vec<PurchasedLine>,
    /// Returned lines since [`SuggestService::returned_since`].
    pub returned: Vec<ReturnedLine>,
    /// Every style bought, with when last.
    pub bought_groups: HashMap<String, Timestamp>,
    /// Styles thumbed down.
    pub rejected_groups: HashSet<String>,
    /// Viewed and in-cart products of the newest [`limits::EVENTS`]
    /// browsing events, newest first.
    pub browsing: (Vec<String>, Vec<String>),
    /// The change feed's position read before these rows: what this
    /// replica remembers of them is dropped by any later change.
    pub from: i64,
}

impl SuggestService {
    /// A service over `store`, ranking on `live`.
    pub fn new(store: Store, config: SuggestConfig, live: Arc<LiveModel>) -> Self {
        Self {
            store,
            config,
            live,
            running: Default::default(),
            curations: Default::default(),
        }
    }

    /// The live model this service ranks on.
    pub fn live(&self) -> &Arc<LiveModel> {
        &self.live
    }

    /// Answers SuggestCrossSells. An identity we know nothing about gets
    /// the cold-start answer.
    #[tracing::instrument(skip_all)]
    pub async fn suggest(&self, query: &SuggestQuery) -> Result<SuggestOutcome, Error> {
        self.answer(query, false).await
    }

    /// Answers GetCuratedCrossSells: the matching curations' items first,
    /// then ranked suggestions.
    #[tracing::instrument(skip_all)]
    pub async fn curated(&self, query: &SuggestQuery) -> Result<SuggestOutcome, Error> {
        self.answer(query, true).await
    }

    async fn answer(
        &self,
        query: &SuggestQuery,
        curated_first: bool,
    ) -> Result<SuggestOutcome, Error> {
        let as_of = Timestamp::now();
        // First the feed, so what this replica remembers is current.
        let ((), subject) = tokio::try_join!(
            self.live.ensure_current(&self.store),
            self.store.resolve(&query.key)
        )?;
        let consents = match &subject {
            Some(Subject::Customer(c)) => self.consents(c).await?,
            _ => Arc::new(Vec::new()),
        };
        let known = subject.is_some();
        // A customer or visitor we have no data on yet is still someone:
        // feedback on what they are shown (a thumbs down) is tied to the id
        // the caller gave. Only an unknown email, phone or loyalty id leaves
        // nobody to tie it to.
        let subject = subject.or_else(|| unknown_subject(&query.key));
        let who = match (&subject, &query.key) {
            (Some(Subject::Customer(c)), _) => c.as_str().to_owned(),
            (Some(Subject::Anonymous(a)), _) => a.as_str().to_owned(),
            (None, CustomerKey::Id(c)) => c.as_str().to_owned(),
            (None, CustomerKey::Identity(i)) => format!("{}:{}", i.kind().as_str(), i.value()),
        };
        let list = self
            .for_subject(Request {
                subject: subject.as_ref(),
                who: &who,
                consents: &consents,
                anchors: &query.anchors,
                exclude: &query.exclude,
                browsing: None,
                limit: query.limit as usize,
                now: as_of,
                caught_up: true,
                curated_first,
                rows: None,
            })
            .await?;
        Ok(SuggestOutcome {
            customer_id: match &subject {
                Some(Subject::Customer(c)) if known => Some(c.clone()),
                _ => None,
            },
            anonymous_id: match &subject {
                Some(Subject::Anonymous(a)) if known => Some(a.as_str().to_owned()),
                _ => None,
            },
            as_of,
            list,
        })
    }

    /// Suggestions for a resolved subject: the customer's own bounded
    /// reads, ranking in memory, and one catalog read that drops anything
    /// that went unavailable.
    pub(crate) async fn for_subject(&self, r: Request<'_>) -> Result<SuggestionList, Error> {
        Ok(self.with_history(r).await?.0)
    }

    /// [`SuggestService::for_subject`], and the customer's history it read
    /// (or remembered): the context takes their sizes from it.
    pub(crate) async fn with_history(
        &self,
        r: Request<'_>,
    ) -> Result<(SuggestionList, Arc<History>), Error> {
        if !r.caught_up {
            self.live.ensure_current(&self.store).await?;
        }
        let assignment = self.assignment(r.who).await?;
        let (history_allowed, personal) = self.allowed(r.consents);
        let customer = match r.subject {
            Some(Subject::Customer(c)) if history_allowed => Some(c),
            _ => None,
        };
        // Remembered per customer when their whole history may be used.
        let memo_key = customer.filter(|_| personal).map(CustomerId::as_str);
        let browsing_key = r.browsing.as_ref().map_or(0, |b| {
            let mut h = std::hash::DefaultHasher::new();
            std::hash::Hash::hash(b, &mut h);
            std::hash::Hasher::finish(&h)
        });
        let history = self
            .remembered_history(r.subject, customer, personal, memo_key, r.now, r.rows)
            .await?;
        let anchors: Vec<&str> = r.anchors.iter().map(|a| a.as_str()).collect();
        let all_curations = self.live_curations(r.now).await?;
        let curations: Vec<&Curation> = all_curations
            .iter()
            .filter(|c| c.state(r.now) == CurationState::Active)
            .collect();
        let ask = Ask {
            anchors: anchors.clone(),
            exclude: r.exclude.iter().map(|e| e.as_str()).collect(),
            personal,
            now: r.now,
            customer: customer.map(CustomerId::as_str),
            curations,
            // Browsing the caller already read replaces the history's.
            browsing: r
                .browsing
                .map(|(viewed, in_cart)| (viewed.as_slice(), in_cart.as_slice())),
        };
        let weights = &assignment.weights;
        let want = r.limit + limits::SPARE;
        // Which curations are active is part of the answer: one starting or
        // ending changes it without any write.
        let curations_key = {
            let mut h = std::hash::DefaultHasher::new();
            for c in &ask.curations {
                std::hash::Hash::hash(&(&c.curation_id, c.updated_at.millis()), &mut h);
            }
            std::hash::Hasher::finish(&h)
        };
        let list_key = format!(
            "{}\u{1f}{}\u{1f}{}\u{1f}{want}\u{1f}{}\u{1f}{}\u{1f}{browsing_key}\u{1f}{curations_key}\u{1f}{}",
            anchors.join(","),
            ask.exclude.join(","),
            r.now.millis() / 86_400_000,
            assignment.experiment,
            assignment.variant,
            r.curated_first,
        );
        let generation = self.live.generation();
        let remembered = memo_key.and_then(|c| self.live.memo().list(c, &list_key, generation));
        let list = match remembered {
            Some(list) => list,
            None => {
                let (ranked, personalised) = self.live.read(|m| {
                    // Outside an experiment, the ranker the build picked.
                    let served;
                    let weights = if assignment.experiment.is_empty() {
                        served = m.served_weights();
                        &served
                    } else {
                        weights
                    };
                    let s = signals::signals(m, &history, &ask);
                    let ranked = if r.curated_first {
                        super::curated::curated_first(m, &s, weights, want)
                    } else {
                        suggest(m, &s, weights, want)
                    };
                    let personalised = personal
                        && (!s.bought.is_empty() || !ask.browsing_of(&history).0.is_empty());
                    (
                        reasons::to_ids(m, &ranked, &s, &ask.curations),
                        personalised,
                    )
                });
                let list = Arc::new(Ranking::new(ranked, personalised));
                if let Some(c) = memo_key {
                    self.live
                        .memo()
                        .put_list(c, list_key, generation, list.clone(), &history);
                }
                list
            }
        };
        // The items served from a remembered list are remembered with it:
        // only their signed ids are made again.
        let served = match list.served(r.limit) {
            Some(items) => items,
            None => {
                let items = self
                    .served(&history, &anchors, &list.ranked, r.limit, r.now)
                    .await?;
                let items = Arc::new(items);
                list.serve(r.limit, items.clone());
                items
            }
        };
        let items = self.signed(r.subject, &assignment, &served, r.now).await?;
        let personalised = list.personalised;
        let list = SuggestionList {
            items,
            experiment: assignment.experiment,
            variant: assignment.variant,
            personalised,
            note: note(history_allowed, personal, personalised, anchors.is_empty()).to_owned(),
        };
        Ok((list, history))
    }

    /// What consents allow: (the customer's history may be used at all,
    /// their suggestions may be personal).
    pub(super) fn allowed(&self, consents: &[ConsentRecord]) -> (bool, bool) {
        let history_allowed = !withdrawn(consents, Purpose::SupportContext);
        let personal = history_allowed
            && consents
                .iter()
                .find(|c| c.purpose == Purpose::PersonalisedSuggestions)
                .map_or(self.config.personalise_without_consent, |c| c.granted);
        (history_allowed, personal)
    }

    /// What a search may use of a subject's own data: their history (read
    /// once and remembered, as for suggestions) when they may be served
    /// personally — both consents as suggestions read them — else the
    /// sentence saying why not ("" for no subject).
    pub(crate) async fn personal_history(
        &self,
        subject: Option<&Subject>,
        now: Timestamp,
    ) -> Result<Result<Arc<History>, &'static str>, Error> {
        let Some(subject) = subject else {
            return Ok(Err(""));
        };
        let customer = match subject {
            Subject::Customer(c) => Some(c),
            Subject::Anonymous(_) => None,
        };
        let consents = match customer {
            Some(c) => self.consents(c).await?,
            None => Arc::new(Vec::new()),
        };
        let (history_allowed, personal) = self.allowed(&consents);
        if !history_allowed {
            return Ok(Err(
                "The customer withdrew consent for using their history: results are the same as for anyone.",
            ));
        }
        if !personal {
            return Ok(Err(
                "The customer has not agreed to personalised suggestions: results are the same as for anyone.",
            ));
        }
        let memo_key = customer.map(CustomerId::as_str);
        self.remembered_history(Some(subject), customer, true, memo_key, now, None)
            .await
            .map(Ok)
    }

    /// The subject's history, from this replica's memory when it holds it
    /// (`memo_key`), else read (and remembered).
    pub(super) async fn remembered_history(
        &self,
        subject: Option<&Subject>,
        customer: Option<&CustomerId>,
        personal: bool,
        memo_key: Option<&str>,
        now: Timestamp,
        rows: Option<HistoryRows>,
    ) -> Result<std::sync::Arc<History>, Error> {
        Ok(match memo_key.and_then(|c| self.live.memo().history(c)) {
            Some(h) => h,
            None => {
                let (since, h) = match rows {
                    Some(rows) => (rows.from, self.history_of(rows, customer, personal)),
                    None => {
                        let since = self.live.applied();
                        let h = self.history(subject, customer, personal, None, now).await?;
                        (since, h)
                    }
                };
                let h = std::sync::Arc::new(h);
                if let Some(c) = memo_key {
                    self.live.memo().put_history(c, h.clone(), since);
                }
                h
            }
        })
    }

    /// The subject's own data: purchases, returns, thumbs down, browsing
    /// (each read only when consent allows), concurrently.
    async fn history(
        &self,
        subject: Option<&Subject>,
        customer: Option<&CustomerId>,
        personal: bool,
        browsing: Option<(Vec<String>, Vec<String>)>,
        now: Timestamp,
    ) -> Result<History, Error> {
        let Some(subject) = subject else {
            return Ok(History::default());
        };
        let store = &self.store;
        let (rejected_groups, (viewed, in_cart), lines, returned, bought_groups) = tokio::try_join!(
            store.rejected_groups(subject),
            async {
                match (personal, browsing) {
                    (false, _) => Ok((Vec::new(), Vec::new())),
                    (true, Some(b)) => Ok(b),
                    (true, None) => self.browsing(subject).await,
                }
            },
            async {
                match customer {
                    Some(c) => store.recent_purchase_lines(c, limits::PURCHASE_LINES).await,
                    None => Ok(Vec::new()),
                }
            },
            async {
                match customer {
                    Some(c) => {
                        let since = now.minus_days(self.config.return_window_days);
                        store.returned_lines(c, since).await
                    }
                    None => Ok(Vec::new()),
                }
            },
            async {
                match customer {
                    Some(c) => store.all_bought_groups(c).await,
                    None => Ok(HashMap::new()),
                }
            },
        )?;
        Ok(self.history_of(
            HistoryRows {
                lines,
                returned,
                bought_groups,
                rejected_groups,
                browsing: (viewed, in_cart),
                from: 0,
            },
            customer,
            personal,
        ))
    }

    /// The history made of `rows`, keeping only what consent allows: the
    /// customer's purchases and returns when their history may be used
    /// (`customer`), their browsing when suggestions may be personal.
    fn history_of(
        &self,
        rows: HistoryRows,
        customer: Option<&CustomerId>,
        personal: bool,
    ) -> History {
        let HistoryRows {
            mut lines,
            mut returned,
            mut bought_groups,
            rejected_groups,
            browsing: (mut viewed, mut in_cart),
            from: _,
        } = rows;
        if customer.is_none() {
            (lines, returned, bought_groups) = Default::default();
        }
        if !personal {
            (viewed, in_cart) = Default::default();
        }
        let returned_groups: HashSet<String> =
            returned.iter().map(|r| r.group_id.clone()).collect();
        let size_evidence = self.size_evidence_of(&lines, &returned);
        History {
            lines,
            viewed,
            in_cart,
            returned_groups,
            rejected_groups,
            bought_groups,
            size_evidence,
        }
    }

    /// The ranked items as served, each with its signed id (see
    /// [`SuggestService::served`] and [`SuggestService::signed`]).
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn finish(
        &self,
        subject: Option<&Subject>,
        assignment: &Assignment,
        history: &History,
        anchors: &[&str],
        ranked: &[Ranked],
        limit: usize,
        now: Timestamp,
    ) -> Result<Vec<SuggestedItem>, Error> {
        let items = self.served(history, anchors, ranked, limit, now).await?;
        self.signed(subject, assignment, &items, now).await
    }

    /// The ranked items as served, without their signed ids: one catalog
    /// read for the items and the products their reasons name; items no
    /// longer active or in stock are dropped (the model may be a moment
    /// behind the catalog, the database is not), then each gets its
    /// sentence.
    async fn served(
        &self,
        history: &History,
        anchors: &[&str],
        ranked: &[Ranked],
        limit: usize,
        now: Timestamp,
    ) -> Result<Vec<SuggestedItem>, Error> {
        let mut ids: Vec<&str> = ranked.iter().map(|r| r.product_id.as_str()).collect();
        ids.extend(ranked.iter().filter_map(|r| r.with.as_deref()));
        ids.sort_unstable();
        ids.dedup();
        let rows = self.product_rows(&ids).await?;
        // When the customer bought what reasons refer to (newest line first).
        let referred: std::collections::HashSet<&str> =
            ranked.iter().filter_map(|r| r.with.as_deref()).collect();
        let mut bought_on: HashMap<String, Timestamp> = HashMap::new();
        for l in history
            .lines
            .iter()
            .filter(|l| referred.contains(l.product_id.as_str()))
        {
            bought_on.entry(l.product_id.clone()).or_insert(l.placed_at);
            if bought_on.len() == referred.len() {
                break;
            }
        }
        let mut out = Vec::with_capacity(limit);
        for r in ranked {
            let Some(row) = rows
                .get(&r.product_id)
                .filter(|row| row.active && row.in_stock)
            else {
                continue;
            };
            out.push(SuggestedItem {
                suggestion_id: String::new(),
                product: ProductView::from_catalog(row),
                rank: out.len() as u32 + 1,
                score: f64::from(r.score),
                reason: reasons::explain(r, &rows, &bought_on, anchors, now),
                fit: r.fit.clone(),
                curated: r.curated.clone(),
            });
            if out.len() == limit {
                break;
            }
        }
        Ok(out)
    }

    /// Served items, each with an id signed for `subject` at `now`: made
    /// for every answer (feedback and attribution count from the moment
    /// an item was shown), also when the items are remembered.
    async fn signed(
        &self,
        subject: Option<&Subject>,
        assignment: &Assignment,
        items: &[SuggestedItem],
        now: Timestamp,
    ) -> Result<Vec<SuggestedItem>, Error> {
        let key = self.store.hash_key().await?;
        let recipient = recipient(subject);
        Ok(items
            .iter()
            .map(|item| {
                let token = SuggestionToken {
                    recipient: recipient.clone(),
                    product_id: item.product.product_id.clone(),
                    group_id: item.product.group_id.clone(),
                    experiment: assignment.experiment.clone(),
                    variant: assignment.variant.clone(),
                    reason_code: item.reason.code.as_str().to_owned(),
                    issued_at: now,
                    curation_id: item.curated.as_ref().map(|c| c.curation_id.clone()),
                };
                SuggestedItem {
                    suggestion_id: token.encode(&key),
                    ..item.clone()
                }
            })
            .collect())
    }

    /// Viewed and in-cart products of the subject's recent browsing, newest
    /// first.
    async fn browsing(&self, subject: &Subject) -> Result<(Vec<String>, Vec<String>), Error> {
        let events = self
            .store
            .recent_events(subject, Timestamp::MIN, limits::EVENTS)
            .await?;
        Ok(crate::reads::viewed_and_in_cart(&events))
    }

    /// The strategy for `who`: the running experiment's variant, or the
    /// default.
    async fn assignment(&self, who: &str) -> Result<Assignment, Error> {
        Ok(match self.running_experiment().await? {
            Some(e) => e.assign(who),
            None => Assignment::default_strategy(),
        })
    }

    /// The running experiment, read again only after the change feed
    /// reported an experiment change (call after catching up).
    async fn running_experiment(&self) -> Result<Option<Experiment>, Error> {
        let epoch = self.live.experiments_epoch();
        let lock = || self.running.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((at, running)) = lock().as_ref()
            && *at == epoch
        {
            return Ok(running.clone());
        }
        let running = self
            .store
            .running_experiment()
            .await?
            .map(|row| experiment_of(&row))
            .transpose()?;
        *lock() = Some((epoch, running.clone()));
        Ok(running)
    }

    /// What a customer kept and sent back for its size, in the purchase
    /// lines and returns of their history (no read of its own).
    pub(crate) fn size_evidence_of(
        &self,
        lines: &[PurchasedLine],
        returned: &[ReturnedLine],
    ) -> Vec<crate::fit::Evidence> {
        self.live
            .read(|m| signals::size_evidence(m, lines, returned))
    }

    /// Returns requested since then count against suggestions at `now`.
    pub fn returned_since(&self, now: Timestamp) -> Timestamp {
        now.minus_days(self.config.return_window_days)
    }

    /// The curations not archived or ended, read again only after the
    /// change feed reported a curation change (call after catching up).
    async fn live_curations(&self, now: Timestamp) -> Result<Arc<Vec<Curation>>, Error> {
        let epoch = self.live.curations_epoch();
        let lock = || self.curations.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((at, list)) = lock().as_ref()
            && *at == epoch
        {
            return Ok(list.clone());
        }
        let list = Arc::new(self.store.live_curations(now).await?);
        *lock() = Some((epoch, list.clone()));
        Ok(list)
    }

    /// A customer's consents, from this replica's memory when it holds them
    /// (call after catching up with the feed).
    pub(crate) async fn consents(
        &self,
        customer: &CustomerId,
    ) -> Result<Arc<Vec<ConsentRecord>>, Error> {
        let memo = self.live.memo();
        if let Some(c) = memo.consents(customer.as_str()) {
            return Ok(c);
        }
        let since = self.live.applied();
        let consents = Arc::new(self.store.consents(customer).await?);
        memo.put_consents(customer.as_str(), consents.clone(), since);
        Ok(consents)
    }

    /// Catalogue rows of products, from this replica's memory when it holds
    /// them (kept exact by the feed's product entries).
    pub(crate) async fn product_rows(&self, ids: &[&str]) -> Result<ProductRows, Error> {
        let memo = &self.live.memo().products;
        let mut out = ProductRows::with_capacity(ids.len());
        let mut missing = Vec::new();
        for id in ids {
            match memo.with(id, |row| row.clone()) {
                Some(row) => {
                    out.insert((*id).to_owned(), row);
                }
                None => missing.push(*id),
            }
        }
        if !missing.is_empty() {
            let since = self.live.applied();
            for (id, row) in self.store.products(&missing).await? {
                let row = Arc::new(row);
                memo.put(&id, row.clone(), since);
                out.insert(id, row);
            }
        }
        Ok(out)
    }

    /// Reads the catalogue rows of the `most` items bought by the most
    /// customers into this replica's memory, as the first suggestions
    /// naming them would: a replica just started then serves its first
    /// lists without a catalogue read for each, as one that has run for a
    /// while does. Rows changed while they are read are not kept (the
    /// change feed's rule for every remembered row). Returns how many were
    /// read.
    pub async fn warm_products(&self, most: usize) -> Result<usize, Error> {
        let ids = self.live.read(|m| m.most_bought(most));
        let memo = &self.live.memo().products;
        let mut read = 0;
        for chunk in ids.chunks(WARM_CHUNK) {
            let since = self.live.applied();
            let chunk: Vec<&str> = chunk.iter().map(String::as_str).collect();
            for (id, row) in self.store.products(&chunk).await? {
                memo.put(&id, Arc::new(row), since);
                read += 1;
            }
        }
        Ok(read)
    }

    /// Records feedback: each id is verified; bad ones are rejected with a
    /// violation, the rest stored (a resend is a duplicate).
    #[tracing::instrument(skip_all, fields(count = items.len()))]
    pub async fn record_feedback(&self, items: &[FeedbackInput]) -> Result<Vec<ItemResult>, Error> {
        let key = self.store.hash_key().await?;
        let now = Timestamp::now();
        let mut results: Vec<ItemResult> = Vec::with_capacity(items.len());
        let mut rows = Vec::new();
        let mut slots = Vec::new();
        for (i, f) in items.iter().enumerate() {
            match SuggestionToken::decode(&key, &f.suggestion_id, now) {
                Ok(t) => {
                    let occurred_at = f.occurred_at.unwrap_or(now);
                    if occurred_at < t.issued_at {
                        results.push(Err(Violations::single(
                            "occurred_at",
                            "is before the suggestion was made",
                        )));
                        continue;
                    }
                    let (customer_id, anonymous_id) = match t.recipient {
                        Recipient::Customer(c) => (Some(c), None),
                        Recipient::Anonymous(a) => (None, Some(a)),
                        Recipient::Unknown => (None, None),
                    };
                    slots.push(i);
                    results.push(Ok(crate::domain::WriteOutcome::Created));
                    rows.push(FeedbackRow {
                        suggestion_id: f.suggestion_id.clone(),
                        kind: f.kind.as_str(),
                        customer_id,
                        anonymous_id,
                        product_id: t.product_id,
                        group_id: t.group_id,
                        experiment: t.experiment,
                        variant: t.variant,
                        reason_code: t.reason_code,
                        issued_at: t.issued_at,
                        occurred_at,
                        curation_id: t.curation_id,
                    });
                }
                Err(why) => results.push(Err(Violations::single("suggestion_id", why))),
            }
        }
        let outcomes = self.store.record_feedback(&rows).await?;
        for (slot, outcome) in slots.into_iter().zip(outcomes) {
            results[slot] = Ok(outcome);
        }
        Ok(results)
    }

    /// Per-variant numbers of an experiment, or of the suggestions served
    /// outside any.
    pub async fn stats(&self, which: StatsOf<'_>) -> Result<(String, Vec<VariantReport>), Error> {
        self.live.ensure_current(&self.store).await?;
        let configured = match which {
            StatsOf::Named(name) => Some(
                self.store
                    .experiment(name)
                    .await?
                    .ok_or_else(|| Error::NotFound(format!("no experiment is named {name:?}")))
                    .and_then(|row| experiment_of(&row))?,
            ),
            StatsOf::Running => self.running_experiment().await?,
            StatsOf::OutsideExperiments => None,
        };
        let name = configured
            .as_ref()
            .map_or("", |e| e.name.as_str())
            .to_owned();
        let counts = self.store.feedback_counts(&name).await?;
        let mut names: Vec<String> = configured
            .as_ref()
            .map(|e| e.variants.iter().map(|v| v.name.clone()).collect())
            .unwrap_or_default();
        for c in &counts {
            if !names.contains(&c.variant) {
                names.push(c.variant.clone());
            }
        }
        let reports = names
            .into_iter()
            .map(|variant| {
                let c = counts
                    .iter()
                    .find(|c| c.variant == variant)
                    .cloned()
                    .unwrap_or_default();
                VariantReport {
                    variant,
                    shown: c.shown,
                    accepted: c.accepted,
                    purchased: c.purchased,
                    rejected: c.rejected,
                    acceptance: wilson(c.accepted, c.shown),
                    conversion: wilson(c.purchased, c.shown),
                }
            })
            .collect();
        Ok((name, reports))
    }

    /// Creates or replaces an experiment.
    pub async fn set_experiment(&self, e: &Experiment) -> Result<(Experiment, Timestamp), Error> {
        e.validate().map_err(Error::InvalidArgument)?;
        let json = serde_json::to_string(&e.variants)
            .map_err(|err| Error::Internal(anyhow::anyhow!("encoding variants: {err}")))?;
        let row = self.store.put_experiment(&e.name, &json, e.running).await?;
        Ok((experiment_of(&row)?, row.updated_at))
    }
}

fn experiment_of(row: &crate::store::ExperimentRow) -> Result<Experiment, Error> {
    let variants: Vec<Variant> = serde_json::from_str(&row.variants).map_err(|e| {
        Error::Internal(anyhow::anyhow!(
            "stored experiment {:?} does not parse: {e}",
            row.name
        ))
    })?;
    Ok(Experiment {
        name: row.name.clone(),
        variants,
        running: row.running,
    })
}

/// Why the list is not personalised ("" when it is).
/// The subject an identity nobody has yet still names: a customer or
/// visitor id is someone feedback on what they are shown can be tied to;
/// an unknown email, phone or loyalty id is nobody.
pub(crate) fn unknown_subject(key: &CustomerKey) -> Option<Subject> {
    match key {
        CustomerKey::Id(c) => Some(Subject::Customer(c.clone())),
        CustomerKey::Identity(i) if i.kind() == IdentityKind::AnonymousId => {
            crate::domain::AnonymousId::parse(i.value())
                .ok()
                .map(Subject::Anonymous)
        }
        CustomerKey::Identity(_) => None,
    }
}

/// Whom a signed suggestion id is for.
pub(crate) fn recipient(subject: Option<&Subject>) -> Recipient {
    match subject {
        Some(Subject::Customer(c)) => Recipient::Customer(c.as_str().to_owned()),
        Some(Subject::Anonymous(a)) => Recipient::Anonymous(a.as_str().to_owned()),
        None => Recipient::Unknown,
    }
}

fn note(
    history_allowed: bool,
    personal: bool,
    personalised: bool,
    no_anchors: bool,
) -> &'static str {
    if !history_allowed {
        "The customer withdrew consent for using their history: these are best-sellers \
         and items that go with what they are asking about."
    } else if !personal {
        "The customer has not agreed to personalised suggestions: these are best-sellers \
         and items that go with what they are asking about."
    } else if personalised {
        ""
    } else if no_anchors {
        "No purchase or browsing history yet: these are the shop's best-sellers."
    } else {
        "No purchase or browsing history yet: these go with what they are asking about, \
         or are best-sellers."
    }
}
