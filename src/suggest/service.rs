//! Serving suggestions: reads a customer's signals and the relevant slice
//! of the model from the store (bounded reads), ranks with
//! [`super::suggest`] (whose filters every candidate passes), and says why
//! each item is there. Also feedback, experiments and their statistics.
//! Knows nothing of gRPC.

use std::collections::{HashMap, HashSet};

use super::{
    Catalog, CoModel, Filters, ItemInfo, ItemIx, Reason, Signals,
    evaluate::NOT_MERCHANDISE,
    experiment::{Assignment, Experiment, Variant, wilson},
    next_categories, price_band, suggest,
    token::{Recipient, SuggestionToken},
};
use crate::{
    context::ProductView,
    domain::{
        CategoryPath, ConsentRecord, CustomerId, CustomerKey, Error, IdentityKind, ItemResult,
        ProductId, Purpose, Timestamp, Violations, withdrawn,
    },
    store::{FeedbackRow, ModelCounts, PartnerRow, Store, Subject},
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
    /// Distinct purchased products used as complement seeds (the most
    /// recent).
    pub const SEEDS: usize = 50;
    /// Partners read per seed, most shared first.
    pub const PARTNERS: usize = 60;
    /// Bought-together candidates kept (by summed strength over the seeds)
    /// before catalog rows are read; half as many viewed-together ones.
    pub const CANDIDATES: usize = 400;
    /// Viewed-not-bought products used as co-view seeds.
    pub const VIEWED: usize = 20;
    /// Browsing events read for the viewed products.
    pub const EVENTS: i64 = 500;
    /// Best-sellers read overall and per category.
    pub const POPULAR: i64 = 100;
    /// Best-sellers read per category.
    pub const POPULAR_IN: i64 = 50;
}

/// Purchases within this many days weigh more as seeds.
const RECENT_SEED_DAYS: u32 = 30;

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

/// Machine-readable reason codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReasonCode {
    /// Bought together with a bought or asked-about product.
    BoughtTogether,
    /// Viewed together with a viewed-not-bought or asked-about product.
    ViewedTogether,
    /// A category similar customers moved into next.
    NewCategory,
    /// A best-seller in a category the customer buys from.
    PopularInCategory,
    /// A best-seller overall.
    Popular,
}

impl ReasonCode {
    /// Stored name (in suggestion ids and feedback rows).
    pub fn as_str(self) -> &'static str {
        match self {
            ReasonCode::BoughtTogether => "bought_together",
            ReasonCode::ViewedTogether => "viewed_together",
            ReasonCode::NewCategory => "new_category",
            ReasonCode::PopularInCategory => "popular_in_category",
            ReasonCode::Popular => "popular",
        }
    }
}

/// Why an item is suggested, ready to show.
#[derive(Debug, Clone, PartialEq)]
pub struct ReasonView {
    /// The code.
    pub code: ReasonCode,
    /// Products it refers to.
    pub product_ids: Vec<String>,
    /// The category the item was picked from.
    pub category: String,
    /// For a new category: the category the customer buys from.
    pub from_category: String,
    /// A sentence an agent can say.
    pub text: String,
}

/// One suggested item.
#[derive(Debug, Clone)]
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
}

/// A ranked list with the strategy that made it.
#[derive(Debug, Clone, Default)]
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

/// Suggestions, feedback and experiments over a store.
#[derive(Debug, Clone)]
pub struct SuggestService {
    store: Store,
    config: SuggestConfig,
}

/// What the ranker's indexes refer to.
#[derive(Default)]
struct Local {
    index: HashMap<String, ItemIx>,
    ids: Vec<String>,
    groups: HashMap<String, u32>,
    group_names: Vec<String>,
    categories: HashMap<String, u32>,
    category_names: Vec<String>,
    brands: HashMap<String, u32>,
    brand_names: Vec<String>,
}

impl Local {
    fn item(&mut self, id: &str) -> ItemIx {
        if let Some(i) = self.index.get(id) {
            return *i;
        }
        let i = self.ids.len() as ItemIx;
        self.ids.push(id.to_owned());
        self.index.insert(id.to_owned(), i);
        i
    }

    fn intern(map: &mut HashMap<String, u32>, names: &mut Vec<String>, s: &str) -> u32 {
        if let Some(i) = map.get(s) {
            return *i;
        }
        let i = names.len() as u32;
        names.push(s.to_owned());
        map.insert(s.to_owned(), i);
        i
    }

    fn group(&mut self, s: &str) -> u32 {
        Self::intern(&mut self.groups, &mut self.group_names, s)
    }

    fn category(&mut self, s: &str) -> u32 {
        Self::intern(&mut self.categories, &mut self.category_names, s)
    }

    fn brand(&mut self, s: &str) -> u32 {
        Self::intern(&mut self.brands, &mut self.brand_names, s)
    }
}

/// What is known of the customer before ranking.
#[derive(Default)]
struct History {
    /// product -> (times bought, last bought, category path, unit price)
    bought: HashMap<String, (u32, Timestamp, String, i64)>,
    /// Distinct products, most recently bought first.
    order: Vec<String>,
    /// Viewed (or carted) and not bought, newest first.
    viewed: Vec<String>,
    /// In the cart now (never suggested).
    in_cart: Vec<String>,
    returned_groups: HashSet<String>,
    rejected_groups: HashSet<String>,
}

/// The cosine neighbour lists of the seeds from partner rows and counts
/// (each seed's strongest [`super::NEIGHBOURS`]), keeping only the
/// `keep` partners with the most weight over all seeds (seed weight from
/// `weights`, 1 when absent).
fn neighbour_lists(
    local: &mut Local,
    rows: &[PartnerRow],
    weights: &HashMap<&str, f32>,
    keep: usize,
) -> Vec<Vec<(ItemIx, f32)>> {
    let mut by_seed: HashMap<&str, Vec<(&str, f32)>> = HashMap::new();
    for r in rows {
        let n = r.together;
        if r.seed == r.partner || n < 1 {
            continue;
        }
        let count = |x: i64| x.max(n).clamp(0, i64::from(u32::MAX)) as u32;
        let sim = super::cosine(count(n), count(r.seed_total), count(r.partner_total));
        by_seed
            .entry(r.seed.as_str())
            .or_default()
            .push((r.partner.as_str(), sim));
    }
    let mut strength: HashMap<&str, f32> = HashMap::new();
    for (seed, list) in &mut by_seed {
        list.sort_by(|x, y| y.1.total_cmp(&x.1).then(x.0.cmp(y.0)));
        list.truncate(super::NEIGHBOURS);
        let w = weights.get(seed).copied().unwrap_or(1.0);
        for (b, sim) in list.iter() {
            *strength.entry(b).or_insert(0.0) += w * sim;
        }
    }
    let mut ranked: Vec<(&str, f32)> = strength.into_iter().collect();
    ranked.sort_by(|x, y| y.1.total_cmp(&x.1).then(x.0.cmp(y.0)));
    let kept: HashSet<&str> = ranked.into_iter().take(keep).map(|(b, _)| b).collect();
    // Seeds in a fixed order, so local indexes (and tie-breaks) are too.
    let mut seeds: Vec<&str> = by_seed.keys().copied().collect();
    seeds.sort_unstable();
    let mut lists: Vec<Vec<(ItemIx, f32)>> = Vec::new();
    for seed in seeds {
        let ia = local.item(seed) as usize;
        if lists.len() <= ia {
            lists.resize(ia + 1, Vec::new());
        }
        for &(b, sim) in &by_seed[seed] {
            if kept.contains(b) {
                let ib = local.item(b);
                lists[ia].push((ib, sim));
            }
        }
    }
    lists
}

impl SuggestService {
    /// A service over `store`.
    pub fn new(store: Store, config: SuggestConfig) -> Self {
        Self { store, config }
    }

    /// Answers SuggestCrossSells. An identity we know nothing about gets
    /// the cold-start answer.
    #[tracing::instrument(skip_all)]
    pub async fn suggest(&self, query: &SuggestQuery) -> Result<SuggestOutcome, Error> {
        let as_of = Timestamp::now();
        let subject = self.store.resolve(&query.key).await?;
        let consents = match &subject {
            Some(Subject::Customer(c)) => self.store.consents(c).await?,
            _ => Vec::new(),
        };
        let known = subject.is_some();
        // A customer or visitor we have no data on yet is still someone:
        // feedback on what they are shown (a thumbs down) is tied to the id
        // the caller gave. Only an unknown email, phone or loyalty id leaves
        // nobody to tie it to.
        let subject = subject.or_else(|| match &query.key {
            CustomerKey::Id(c) => Some(Subject::Customer(c.clone())),
            CustomerKey::Identity(i) if i.kind() == IdentityKind::AnonymousId => {
                crate::domain::AnonymousId::parse(i.value())
                    .ok()
                    .map(Subject::Anonymous)
            }
            CustomerKey::Identity(_) => None,
        });
        let who = match (&subject, &query.key) {
            (Some(Subject::Customer(c)), _) => c.as_str().to_owned(),
            (Some(Subject::Anonymous(a)), _) => a.as_str().to_owned(),
            (None, CustomerKey::Id(c)) => c.as_str().to_owned(),
            (None, CustomerKey::Identity(i)) => format!("{}:{}", i.kind().as_str(), i.value()),
        };
        let list = self
            .for_subject(
                subject.as_ref(),
                &who,
                &consents,
                &query.anchors,
                &query.exclude,
                None,
                query.limit as usize,
                as_of,
            )
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

    /// Suggestions for a resolved subject. `browsing` is the customer's
    /// recent (viewed, in cart) products when the caller already read them
    /// (the context does); otherwise they are read here.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn for_subject(
        &self,
        subject: Option<&Subject>,
        who: &str,
        consents: &[ConsentRecord],
        anchors: &[ProductId],
        exclude: &[ProductId],
        browsing: Option<(Vec<String>, Vec<String>)>,
        limit: usize,
        now: Timestamp,
    ) -> Result<SuggestionList, Error> {
        let store = &self.store;
        let assignment = self.assignment(who).await?;
        let history_allowed = !withdrawn(consents, Purpose::SupportContext);
        let personal_consent = consents
            .iter()
            .find(|c| c.purpose == Purpose::PersonalisedSuggestions)
            .map_or(self.config.personalise_without_consent, |c| c.granted);
        let personal_allowed = history_allowed && personal_consent;

        let mut h = History::default();
        if let Some(subject) = subject {
            // Independent reads, each on its own pooled connection.
            let customer = match subject {
                Subject::Customer(c) if history_allowed => Some(c),
                _ => None,
            };
            let (rejected, browsed, lines, returned) = tokio::try_join!(
                store.rejected_groups(subject),
                async {
                    match (personal_allowed, browsing) {
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
                            store
                                .returned_groups(c, now.minus_days(self.config.return_window_days))
                                .await
                        }
                        None => Ok(HashSet::new()),
                    }
                },
            )?;
            h.rejected_groups = rejected;
            (h.viewed, h.in_cart) = browsed;
            h.returned_groups = returned;
            for l in lines {
                let e = h.bought.entry(l.product_id.clone()).or_insert_with(|| {
                    h.order.push(l.product_id.clone());
                    (0, l.placed_at, l.category_path.clone(), l.unit_price_minor)
                });
                e.0 += 1;
            }
        }
        h.viewed.retain(|p| !h.bought.contains_key(p));
        h.viewed.truncate(limits::VIEWED);

        // Seeds: what the customer asks about, bought, viewed.
        let mut local = Local::default();
        let anchor_ids: Vec<&str> = anchors.iter().map(|a| a.as_str()).collect();
        let seeds: Vec<&str> = if personal_allowed {
            h.order
                .iter()
                .take(limits::SEEDS)
                .map(String::as_str)
                .collect()
        } else {
            Vec::new()
        };
        let complement_seeds: Vec<&str> = anchor_ids.iter().chain(&seeds).copied().collect();
        let view_seeds: Vec<&str> = anchor_ids
            .iter()
            .copied()
            .chain(h.viewed.iter().map(String::as_str))
            .collect();
        let (bought_pairs, viewed_pairs, overall) = tokio::try_join!(
            store.model_partners_of(&complement_seeds, false, limits::PARTNERS),
            store.model_partners_of(&view_seeds, true, limits::PARTNERS),
            store.popular_products(None, limits::POPULAR),
        )?;
        for id in anchor_ids.iter().chain(&seeds).chain(
            h.viewed
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>()
                .iter(),
        ) {
            local.item(id);
        }

        // Categories the customer buys from, and where similar customers
        // went next.
        let mut bought_categories: Vec<String> = Vec::new();
        if personal_allowed {
            for p in &seeds {
                let key = super::category_key(&h.bought[*p].2);
                if !key.is_empty() && !bought_categories.contains(&key) {
                    bought_categories.push(key);
                }
            }
            for p in &h.order {
                let key = super::category_key(&h.bought[p].2);
                if !key.is_empty() && !bought_categories.contains(&key) {
                    bought_categories.push(key);
                }
            }
        }
        // The customer's main categories (by units among the seeds) are
        // what a "similar basket" is matched on.
        let mut units: HashMap<&str, u32> = HashMap::new();
        for p in &seeds {
            let (times, _, path, _) = &h.bought[*p];
            let key = super::category_key(path);
            if let Some(c) = bought_categories.iter().find(|c| **c == key) {
                *units.entry(c.as_str()).or_insert(0) += times;
            }
        }
        let mut main: Vec<(&str, u32)> = units.into_iter().collect();
        main.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let refs: Vec<&str> = main
            .iter()
            .take(assignment.weights.affinity_categories)
            .map(|(c, _)| *c)
            .collect();

        // Where similar customers went next, among categories the customer
        // has not bought from (in any of the purchases read, not only the
        // seeds).
        let mut moves = store.category_moves(&refs).await?;
        moves.retain(|(_, to, _)| !bought_categories.contains(to));
        // Only the strongest partners go on: catalog rows are read for
        // these alone (a long history has thousands of partners, and the
        // weak ones never reach the top of the list).
        let seed_weight: HashMap<&str, f32> = seeds
            .iter()
            .map(|s| (*s, 1.0 + (h.bought[*s].0 as f32).ln()))
            .chain(anchor_ids.iter().map(|a| (*a, 2.0)))
            .collect();
        let neighbours =
            neighbour_lists(&mut local, &bought_pairs, &seed_weight, limits::CANDIDATES);
        let coviewed = neighbour_lists(
            &mut local,
            &viewed_pairs,
            &HashMap::new(),
            limits::CANDIDATES / 2,
        );

        // Signals over local indexes.
        let mut signals = Signals::default();
        let mut prices = Vec::new();
        if personal_allowed {
            let recent_since = now.minus_days(RECENT_SEED_DAYS);
            for p in &seeds {
                let (times, last, _, price) = &h.bought[*p];
                let i = local.item(p);
                signals.bought.push((i, *times));
                if *last >= recent_since {
                    signals.recent.push(i);
                }
                prices.push(*price);
            }
            signals.price_band = price_band(&prices);
        }
        signals.anchors = anchor_ids.iter().map(|a| local.item(a)).collect();
        signals.viewed = view_seeds.iter().map(|v| local.item(v)).collect();

        // The first catalog pass: categories of what was bought, so the
        // ranker's own choice of new categories decides what to read next.
        for c in &bought_categories {
            local.category(c);
        }
        let mut next: Vec<Vec<(u32, f32)>> = vec![Vec::new(); local.category_names.len()];
        for (from, to, share) in &moves {
            let (f, t) = (local.category(from), local.category(to));
            if next.len() <= t.max(f) as usize {
                next.resize(t.max(f) as usize + 1, Vec::new());
            }
            next[f as usize].push((t, *share as f32));
        }
        for list in &mut next {
            list.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        }
        let seed_categories: HashMap<ItemIx, u32> = seeds
            .iter()
            .map(|p| {
                let key = super::category_key(&h.bought[*p].2);
                (local.item(p), local.category(&key))
            })
            .collect();
        let targets = {
            let n = local.ids.len();
            let items: Vec<ItemInfo> = (0..n)
                .map(|i| ItemInfo {
                    product_id: String::new(),
                    name: String::new(),
                    group: 0,
                    category: seed_categories
                        .get(&(i as ItemIx))
                        .copied()
                        .unwrap_or(u32::MAX),
                    price_minor: 0,
                    available: false,
                    merchandise: false,
                    brand: None,
                })
                .collect();
            let probe = Catalog {
                items,
                next_categories: next.clone(),
                ..Catalog::default()
            };
            next_categories(&probe, &signals, assignment.weights.new_categories)
        };
        // Best-sellers of the categories the customer buys most, and of
        // the new ones.
        let mut affinity: Vec<(u32, u32)> = Vec::new();
        for (&i, &c) in &seed_categories {
            let times = signals
                .bought
                .iter()
                .find(|(x, _)| *x == i)
                .map_or(0, |b| b.1);
            match affinity.iter_mut().find(|(cat, _)| *cat == c) {
                Some(e) => e.1 += times,
                None => affinity.push((c, times)),
            }
        }
        affinity.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let mut wanted: Vec<u32> = affinity
            .iter()
            .take(assignment.weights.affinity_categories)
            .map(|a| a.0)
            .collect();
        for (c, _, _) in &targets {
            if !wanted.contains(c) {
                wanted.push(*c);
            }
        }
        let mut reads = tokio::task::JoinSet::new();
        for c in wanted {
            let name = local.category_names[c as usize].clone();
            let store = store.clone();
            reads.spawn(async move {
                let list = store
                    .popular_products(Some(&name), limits::POPULAR_IN)
                    .await;
                (c, list)
            });
        }
        // Ordered by category, so items get the same local indexes (and
        // ties break the same way) on every call.
        let mut popular_in: std::collections::BTreeMap<u32, Vec<(String, ModelCounts)>> =
            Default::default();
        while let Some(done) = reads.join_next().await {
            let (c, list) = done.map_err(|e| Error::Internal(e.into()))?;
            popular_in.insert(c, list?);
        }

        // Every item's catalog row.
        for (id, _) in overall.iter().chain(popular_in.values().flatten()) {
            local.item(id);
        }
        let exclude_ids: Vec<&str> = exclude.iter().map(|e| e.as_str()).collect();
        let mut wanted_rows: Vec<&str> = local.ids.iter().map(String::as_str).collect();
        wanted_rows.extend(&exclude_ids);
        wanted_rows.extend(h.in_cart.iter().map(String::as_str));
        let rows = store.product_facts(&wanted_rows).await?;
        let mut excluded_groups: HashSet<String> = exclude_ids
            .iter()
            .chain(
                h.in_cart
                    .iter()
                    .map(String::as_str)
                    .collect::<Vec<_>>()
                    .iter(),
            )
            .map(|id| {
                rows.get(*id)
                    .map_or((*id).to_owned(), |r| r.group_id.clone())
            })
            .collect();
        excluded_groups.extend(exclude_ids.iter().map(|s| (*s).to_owned()));
        // What the customer is asking about is not suggested back to them.
        excluded_groups.extend(anchor_ids.iter().map(|id| {
            rows.get(*id)
                .map_or((*id).to_owned(), |r| r.group_id.clone())
        }));

        // Already bought, with replenishment: a style comes back once every
        // candidate of it allows and the interval since the last purchase
        // has passed.
        let candidate_groups: Vec<&str> = local
            .ids
            .iter()
            .filter_map(|id| rows.get(id).map(|r| r.group_id.as_str()))
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let bought_groups = match subject {
            Some(Subject::Customer(c)) if history_allowed => {
                store.bought_groups(c, &candidate_groups).await?
            }
            _ => HashMap::new(),
        };
        let mut replenish: HashMap<&str, Option<i64>> = HashMap::new();
        for r in rows.values() {
            let e = replenish
                .entry(r.group_id.as_str())
                .or_insert(r.replenish_days);
            *e = match (*e, r.replenish_days) {
                (Some(a), Some(b)) => Some(a.max(b)),
                _ => None,
            };
        }

        // The local catalog.
        let n = local.ids.len();
        let mut items = Vec::with_capacity(n);
        for i in 0..n {
            let id = local.ids[i].clone();
            let info = match rows.get(&id) {
                Some(r) => {
                    let path = CategoryPath::from_stored(&r.category_path);
                    let group = local.group(&r.group_id);
                    let category = local.category(&super::category_key(&r.category_path));
                    ItemInfo {
                        product_id: id,
                        name: r.name.clone(),
                        group,
                        category,
                        price_minor: r.price_minor,
                        available: r.active && r.in_stock,
                        merchandise: !path.is_empty() && !NOT_MERCHANDISE.contains(&path.top()),
                        brand: (!r.brand.is_empty()).then(|| local.brand(&r.brand)),
                    }
                }
                None => {
                    let group = local.group(&id);
                    ItemInfo {
                        product_id: id,
                        name: String::new(),
                        group,
                        category: seed_categories.get(&(i as ItemIx)).copied().unwrap_or(0),
                        price_minor: 0,
                        available: false,
                        merchandise: false,
                        brand: None,
                    }
                }
            };
            items.push(info);
        }
        // The brands the customer buys, by share of units among the seeds.
        let mut by_brand: Vec<(u32, f32)> = Vec::new();
        let mut units = 0f32;
        for &(i, times) in &signals.bought {
            if let Some(b) = items[i as usize].brand {
                units += times as f32;
                match by_brand.iter_mut().find(|(x, _)| *x == b) {
                    Some(e) => e.1 += times as f32,
                    None => by_brand.push((b, times as f32)),
                }
            }
        }
        for e in &mut by_brand {
            e.1 /= units.max(1.0);
        }
        signals.brands = by_brand;
        let mut filters = Filters::default();
        for (g, last) in &bought_groups {
            let back = replenish
                .get(g.as_str())
                .copied()
                .flatten()
                .is_some_and(|days| last.millis() + days * 86_400_000 <= now.millis());
            if !back && let Some(&gi) = local.groups.get(g) {
                filters.bought_groups.insert(gi);
            }
        }
        let to_groups = |set: &HashSet<String>, local: &Local| -> HashSet<u32> {
            set.iter()
                .filter_map(|g| local.groups.get(g).copied())
                .collect()
        };
        filters.returned_groups = to_groups(&h.returned_groups, &local);
        filters.rejected_groups = to_groups(&h.rejected_groups, &local);
        let excluded_group_ix = to_groups(&excluded_groups, &local);
        filters.excluded = items
            .iter()
            .enumerate()
            .filter(|(_, it)| excluded_group_ix.contains(&it.group))
            .map(|(i, _)| i as ItemIx)
            .collect();
        signals.filters = filters;

        let score_of = |c: &ModelCounts, max: &ModelCounts| {
            let (v, m) = if max.recent > 0 {
                (c.recent, max.recent)
            } else {
                (c.total, max.total)
            };
            ((1.0 + v.max(0) as f64).ln() / (1.0 + m.max(1) as f64).ln()) as f32
        };
        let max = overall.first().map(|o| o.1).unwrap_or_default();
        let mut popularity_score = vec![0f32; n];
        for (id, c) in overall.iter().chain(popular_in.values().flatten()) {
            popularity_score[local.index[id] as usize] = score_of(c, &max);
        }
        let mut catalog = Catalog {
            items,
            categories: local.category_names.clone(),
            popular_in: vec![Vec::new(); local.category_names.len()],
            popular: overall.iter().map(|(id, _)| local.index[id]).collect(),
            popularity_score,
            next_categories: next,
        };
        for (c, list) in &popular_in {
            catalog.popular_in[*c as usize] = list.iter().map(|(id, _)| local.index[id]).collect();
        }
        catalog
            .next_categories
            .resize(local.category_names.len(), Vec::new());
        let mut model = CoModel {
            popularity: Vec::new(),
            neighbours,
            coviewed,
        };
        model.neighbours.resize(n, Vec::new());
        model.coviewed.resize(n, Vec::new());

        let ranked = suggest(&model, &catalog, &signals, &assignment.weights, limit);
        let personalised = personal_allowed && (!signals.bought.is_empty() || !h.viewed.is_empty());
        let note = if !history_allowed {
            "The customer withdrew consent for using their history: these are best-sellers \
             and items that go with what they are asking about."
        } else if !personal_allowed {
            "The customer has not agreed to personalised suggestions: these are best-sellers \
             and items that go with what they are asking about."
        } else if personalised {
            ""
        } else if anchors.is_empty() {
            "No purchase or browsing history yet: these are the shop's best-sellers."
        } else {
            "No purchase or browsing history yet: these go with what they are asking about, \
             or are best-sellers."
        };

        let key = store.hash_key().await?;
        let recipient = match subject {
            Some(Subject::Customer(c)) => Recipient::Customer(c.as_str().to_owned()),
            Some(Subject::Anonymous(a)) => Recipient::Anonymous(a.as_str().to_owned()),
            None => Recipient::Unknown,
        };
        let anchor_set: HashSet<ItemIx> = signals.anchors.iter().copied().collect();
        let name_of = |i: ItemIx| -> String {
            let id = &local.ids[i as usize];
            rows.get(id)
                .map(|r| r.name.clone())
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| id.clone())
        };
        let chosen: Vec<&str> = ranked
            .iter()
            .map(|s| catalog.items[s.item as usize].product_id.as_str())
            .collect();
        let full = store.products(&chosen).await?;
        let mut out = Vec::with_capacity(ranked.len());
        for (rank, s) in ranked.iter().enumerate() {
            let item = &catalog.items[s.item as usize];
            let Some(row) = full.get(&item.product_id) else {
                continue;
            };
            let category = catalog.categories[item.category as usize].clone();
            let reason = match s.reason {
                Reason::Complement { with } => {
                    let id = local.ids[with as usize].clone();
                    let text = if anchor_set.contains(&with) {
                        format!("Often bought together with the {}.", name_of(with))
                    } else {
                        let when = h.bought.get(&id).map(|b| b.1.short_date(now));
                        match when {
                            Some(d) => {
                                format!("Goes with the {} you bought on {d}.", name_of(with))
                            }
                            None => format!("Goes with the {} you bought.", name_of(with)),
                        }
                    };
                    ReasonView {
                        code: ReasonCode::BoughtTogether,
                        product_ids: vec![id],
                        category,
                        from_category: String::new(),
                        text,
                    }
                }
                Reason::CoViewed { with } => {
                    let text = if anchor_set.contains(&with) {
                        format!(
                            "Shoppers looking at the {} also consider this.",
                            name_of(with)
                        )
                    } else {
                        format!(
                            "You looked at the {}; shoppers who did often chose this instead.",
                            name_of(with)
                        )
                    };
                    ReasonView {
                        code: ReasonCode::ViewedTogether,
                        product_ids: vec![local.ids[with as usize].clone()],
                        category,
                        from_category: String::new(),
                        text,
                    }
                }
                Reason::NewCategory { from, category: c } => {
                    let from_name = catalog.categories[from as usize].clone();
                    let to_name = catalog.categories[c as usize].clone();
                    ReasonView {
                        code: ReasonCode::NewCategory,
                        product_ids: Vec::new(),
                        text: format!(
                            "Customers who buy {} often add {} next; you have none yet.",
                            spoken(&from_name),
                            spoken(&to_name)
                        ),
                        category: to_name,
                        from_category: from_name,
                    }
                }
                Reason::PopularInCategory { category: c } => {
                    let name = catalog.categories[c as usize].clone();
                    let brand = item
                        .brand
                        .filter(|b| signals.brands.iter().any(|(x, _)| x == b))
                        .map(|b| local.brand_names[b as usize].as_str());
                    ReasonView {
                        code: ReasonCode::PopularInCategory,
                        product_ids: Vec::new(),
                        text: match brand {
                            Some(b) => format!(
                                "A best-seller in {} from {b}, a brand you buy.",
                                spoken(&name)
                            ),
                            None => format!(
                                "A best-seller in {}, a category you buy from.",
                                spoken(&name)
                            ),
                        },
                        category: name,
                        from_category: String::new(),
                    }
                }
                Reason::Popular => ReasonView {
                    code: ReasonCode::Popular,
                    product_ids: Vec::new(),
                    text: "One of the shop's best-sellers right now.".into(),
                    category,
                    from_category: String::new(),
                },
            };
            let token = SuggestionToken {
                recipient: recipient.clone(),
                product_id: row.product_id.clone(),
                group_id: row.group_id.clone(),
                experiment: assignment.experiment.clone(),
                variant: assignment.variant.clone(),
                reason_code: reason.code.as_str().to_owned(),
                issued_at: now,
            };
            out.push(SuggestedItem {
                suggestion_id: token.encode(&key),
                product: ProductView::from_catalog(row),
                rank: rank as u32 + 1,
                score: f64::from(s.score),
                reason,
            });
        }
        Ok(SuggestionList {
            items: out,
            experiment: assignment.experiment,
            variant: assignment.variant,
            personalised,
            note: note.to_owned(),
        })
    }

    /// Viewed and in-cart products of the subject's recent browsing, newest
    /// first.
    async fn browsing(&self, subject: &Subject) -> Result<(Vec<String>, Vec<String>), Error> {
        let events = self
            .store
            .recent_events(subject, Timestamp::MIN, limits::EVENTS)
            .await?;
        Ok(crate::context::viewed_and_in_cart(&events))
    }

    /// The strategy for `who`: the running experiment's variant, or the
    /// default.
    async fn assignment(&self, who: &str) -> Result<Assignment, Error> {
        Ok(match self.running_experiment().await? {
            Some(e) => e.assign(who),
            None => Assignment::default_strategy(),
        })
    }

    async fn running_experiment(&self) -> Result<Option<Experiment>, Error> {
        self.store
            .running_experiment()
            .await?
            .map(|row| experiment_of(&row))
            .transpose()
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

/// "Footwear > Running" as said in a sentence: "running".
fn spoken(category: &str) -> String {
    let leaf = category.rsplit(" > ").next().unwrap_or(category);
    leaf.to_lowercase()
}
