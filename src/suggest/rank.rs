//! The ranking core: pure, no I/O, no async. (model, customer signals,
//! strategy) to ranked items with a reason each. The RPCs, the context's
//! suggestions section and `evaluate` all rank through [`suggest`], so the
//! offline numbers are the served numbers by construction.

use std::{cell::RefCell, collections::HashMap};

use super::{
    Catalog, Filters, ItemIx, IxMap, IxSet, Model,
    learned::{Features, WINDOW},
};

/// Source weights and limits: what an A/B variant changes. Stored as JSON
/// with experiments; fields missing from stored JSON take the defaults.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Weights {
    /// Complements of what the customer bought or is looking at.
    pub complement: f32,
    /// Items bought by the customers who bought what this customer bought
    /// (item-to-item similarity over customers).
    pub also_bought: f32,
    /// Popular items in the customer's favourite categories.
    pub affinity: f32,
    /// Popular items overall (the cold-start fallback).
    pub popular: f32,
    /// Alternatives viewed in the same sessions as what the customer viewed
    /// without buying.
    pub coviewed: f32,
    /// Popular items of categories that customers with similar baskets
    /// moved into next, which this customer has not bought from.
    pub new_category: f32,
    /// Boost of a category best-seller by the customer's share of its brand
    /// (0 turns brand affinity off; 1 doubles the score of a brand that is
    /// all they buy).
    pub brand: f32,
    /// How much a price outside the customer's usual band costs, 0 (nothing)
    /// to 1 (such items only fill the list when nothing else is left).
    pub price_fit: f32,
    /// Most suggestions from one category.
    pub per_category: usize,
    /// Categories of the customer's history considered for affinity.
    pub affinity_categories: usize,
    /// New categories considered.
    pub new_categories: usize,
    /// Extra seed weight of recent purchases (1 = none).
    pub recent_boost: f32,
    /// Stylists' curated items whose anchor matches the customer.
    pub curated: f32,
    /// Recency weighting of purchase seeds: 0 (off) weighs a purchase by
    /// how often it was bought; from 0 to 1, each order it was in adds
    /// `order_decay` to the power of how many orders back it is.
    pub order_decay: f32,
    /// Re-ranking by the model's learned trees ([`super::learned`]): 0 is
    /// off; above 0, the blend's first [`super::learned::WINDOW`]
    /// candidates are ordered by the trees the model carries (nothing
    /// changes when it carries none), a stylist's pick still raised by
    /// `curated`.
    pub learned: f32,
}

impl Default for Weights {
    fn default() -> Self {
        // Chosen on the all-households split of docs/suggestions.md only:
        // "also bought" and recency-weighted popularity blended half and
        // half, the other sources light enough to add reasons and variety
        // without moving the numbers.
        Self {
            complement: 0.5,
            also_bought: 1.0,
            affinity: 0.25,
            popular: 1.0,
            coviewed: 1.0,
            new_category: 0.25,
            brand: 0.5,
            price_fit: 0.3,
            per_category: 3,
            affinity_categories: 8,
            new_categories: 3,
            recent_boost: 1.0,
            curated: 1.0,
            order_decay: 0.0,
            learned: 0.0,
        }
    }
}

/// What is known about the customer and the request, in model indexes.
#[derive(Debug, Clone, Default)]
pub struct Signals {
    /// Items bought, with how many times.
    pub bought: Vec<(ItemIx, u32)>,
    /// Of those, the ones bought recently (weighted up as seeds: what goes
    /// with this week's purchases matters more than with last year's).
    pub recent: Vec<ItemIx>,
    /// Each order of those purchases: (item, how many of the customer's
    /// orders back it is, 0 for the newest).
    pub bought_orders: Vec<(ItemIx, u16)>,
    /// Items the customer is asking about now (weighted above history).
    pub anchors: Vec<ItemIx>,
    /// Items viewed recently and not bought (seeds of co-viewed
    /// alternatives).
    pub viewed: Vec<ItemIx>,
    /// The customer's usual price band (minor units), when known.
    pub price_band: Option<(i64, i64)>,
    /// Brands the customer buys, with their share of purchases (0 to 1):
    /// best-sellers of those brands rank higher within their categories.
    pub brands: Vec<(u32, f32)>,
    /// The hard filters.
    pub filters: Filters,
    /// The size the customer keeps per size domain (domain index to label
    /// index; [`NO_SUCH_SIZE`] for a size no product has). A sized style
    /// is offered in that size or not at all; in a domain absent here, its
    /// size is unknown.
    pub sizes: IxMap<u32>,
    /// The customer's size profile the indexes above come from (for the
    /// sentences).
    pub size_profile: crate::fit::SizeProfile,
    /// Domains of `sizes` whose size comes from a related domain
    /// ([`crate::fit::SizeProfile::related`]), not their own evidence.
    pub carried: IxSet,
    /// Items of the stylists' curations that match the customer, most
    /// specific match first, in each curation's order.
    pub curated: Vec<super::curated::CuratedCandidate>,
    /// Per curation of the request: how it matches the customer (and the
    /// anchor item it matched), `None` when it does not.
    pub matched: Vec<Option<(super::curated::Match, Option<ItemIx>)>>,
}

/// A size label no product of the model has.
pub const NO_SUCH_SIZE: u32 = u32::MAX;

/// How a suggested item's size was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fit {
    /// It has no size.
    NotSized,
    /// The variant in the size the customer keeps in its domain.
    CustomerSize,
    /// The customer's size in its domain is unknown: one available variant.
    Unknown,
    /// No evidence in its domain, but a related one (same department and
    /// size system) gives the size: the variant in it, less sure.
    Probable,
}

/// Why an item is suggested.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Often bought together with this item (bought or asked about).
    Complement {
        /// The item it goes with.
        with: ItemIx,
    },
    /// Bought by many of the customers who bought this item.
    AlsoBought {
        /// The item they bought.
        with: ItemIx,
    },
    /// Often viewed in the same visit as this item (viewed, not bought).
    CoViewed {
        /// The item viewed with it.
        with: ItemIx,
    },
    /// Customers who bought from `from` often moved into `category` next;
    /// this customer has not bought from it.
    NewCategory {
        /// The category they buy from.
        from: u32,
        /// The category others moved into.
        category: u32,
    },
    /// Popular in a category the customer buys from.
    PopularInCategory {
        /// The category.
        category: u32,
    },
    /// Popular overall.
    Popular,
    /// Picked by a stylist (the request's curation `curation`), matched
    /// through `anchor` when a product anchor matched.
    Curated {
        /// The curation, by its place in the request's list.
        curation: u32,
        /// The product anchor that matched, if one did.
        anchor: Option<ItemIx>,
    },
}

/// One suggested item.
#[derive(Debug, Clone, PartialEq)]
pub struct Suggestion {
    /// The item.
    pub item: ItemIx,
    /// Its score (higher is better).
    pub score: f32,
    /// The main reason.
    pub reason: Reason,
    /// How its size was chosen.
    pub fit: Fit,
}

/// A candidate's evidence from each source: the total and the seed (or
/// category) that contributed most.
#[derive(Default, Clone, Copy)]
struct Candidate {
    complement: f32,
    best_seed: Option<(ItemIx, f32)>,
    also_bought: f32,
    best_owned: Option<(ItemIx, f32)>,
    coviewed: f32,
    best_viewed: Option<(ItemIx, f32)>,
    affinity: f32,
    category: Option<u32>,
    new_category: f32,
    moved: Option<(u32, u32)>,
    popular: f32,
    curated: f32,
    curation: Option<(u32, Option<ItemIx>)>,
    /// Its price is outside the customer's usual band (set when it passes
    /// the hard filters, while its catalogue entry is at hand).
    off_band: bool,
}

/// The candidates of one ranking, in the order they were found. An item
/// is found by a direct index (one slot per catalogue item, 4 bytes each),
/// not by hashing: a long history brings a few hundred thousand neighbour
/// visits, and a hash lookup for each was the largest part of a first
/// ranking. The index and the list are the thread's own and are reused by
/// its next ranking (only the index's used slots cleared): fresh ones per
/// ranking were fresh allocations of megabytes, whose page faults cost a
/// fifth of a first ranking on a catalogue of 92,000 items.
struct Candidates {
    /// Per item: 1 + its place in `found`; 0 when not a candidate.
    slot: Vec<u32>,
    found: Vec<(ItemIx, Candidate)>,
}

thread_local! {
    /// The slot table of the thread's last ranking, all zero.
    static SLOTS: RefCell<Vec<u32>> = const { RefCell::new(Vec::new()) };
    /// The candidate list of the thread's last ranking, empty.
    static FOUND: RefCell<Vec<(ItemIx, Candidate)>> = const { RefCell::new(Vec::new()) };
    /// The scores of the thread's last ranking, empty.
    static SCORED: RefCell<Vec<Scored>> = const { RefCell::new(Vec::new()) };
}

/// Most candidates whose room a thread keeps between rankings (about 7 MB):
/// a rare, larger list is freed rather than held by the thread for good.
const KEPT_CANDIDATES: usize = 1 << 16;

/// Gives an emptied (or all-zero) buffer back to the thread's `cell` when
/// it is larger than the one kept there and not beyond `most` entries.
fn give_back<T: 'static>(
    cell: &'static std::thread::LocalKey<RefCell<Vec<T>>>,
    v: Vec<T>,
    most: usize,
) {
    cell.with(|kept| {
        let mut kept = kept.borrow_mut();
        if v.capacity() > kept.capacity() && v.capacity() <= most {
            *kept = v;
        }
    });
}

impl Candidates {
    fn new(items: usize, room: usize) -> Self {
        let mut slot = SLOTS.with(RefCell::take);
        if slot.len() < items {
            slot.resize(items, 0);
        }
        let mut found = FOUND.with(RefCell::take);
        found.reserve(room);
        Candidates { slot, found }
    }

    /// The item's evidence, added empty when it is not a candidate yet.
    fn entry(&mut self, item: ItemIx) -> &mut Candidate {
        let i = item as usize;
        if i >= self.slot.len() {
            self.slot.resize(i + 1, 0);
        }
        if self.slot[i] == 0 {
            self.found.push((item, Candidate::default()));
            self.slot[i] = self.found.len() as u32;
        }
        &mut self.found[self.slot[i] as usize - 1].1
    }

    /// The places in `found` of `items` (a seed's neighbours: distinct),
    /// each added empty when it is not a candidate yet, written into `out`.
    /// The table is read for all of them first, in a pass of its own: its
    /// reads are scattered over a table of every catalogue item, and
    /// independent reads wait for memory together rather than in turn.
    fn places(&mut self, items: &[(ItemIx, f32)], out: &mut Vec<u32>) {
        if let Some(last) = items.iter().map(|&(i, _)| i as usize).max()
            && last >= self.slot.len()
        {
            self.slot.resize(last + 1, 0);
        }
        out.clear();
        out.extend(items.iter().map(|&(i, _)| self.slot[i as usize]));
        for (&(item, _), k) in items.iter().zip(out.iter_mut()) {
            if *k == 0 {
                *k = match self.slot[item as usize] {
                    0 => {
                        self.found.push((item, Candidate::default()));
                        let k = self.found.len() as u32;
                        self.slot[item as usize] = k;
                        k
                    }
                    // Listed twice: added by its first mention.
                    k => k,
                };
            }
            *k -= 1;
        }
    }

    fn contains(&self, item: ItemIx) -> bool {
        self.slot.get(item as usize).is_some_and(|&k| k != 0)
    }

    /// The candidates, in the order they were found.
    fn into_found(mut self) -> Vec<(ItemIx, Candidate)> {
        self.clear();
        std::mem::take(&mut self.found)
    }

    /// Zeroes the slots in use.
    fn clear(&mut self) {
        for (item, _) in &self.found {
            if let Some(k) = self.slot.get_mut(*item as usize) {
                *k = 0;
            }
        }
    }
}

impl Drop for Candidates {
    /// Hands the (cleared) slot table back to the thread.
    fn drop(&mut self) {
        self.clear();
        give_back(&SLOTS, std::mem::take(&mut self.slot), usize::MAX);
    }
}

/// The usual price band of a customer from the prices of what they bought:
/// half the 10th percentile to twice the 90th. `None` with fewer than three
/// priced purchases.
pub fn price_band(prices: &[i64]) -> Option<(i64, i64)> {
    let mut p: Vec<i64> = prices.iter().copied().filter(|p| *p > 0).collect();
    if p.len() < 3 {
        return None;
    }
    p.sort_unstable();
    let at = |q: f64| p[((p.len() - 1) as f64 * q).round() as usize];
    Some((at(0.1) / 2, at(0.9).saturating_mul(2)))
}

/// The categories of the customer's purchases, with units, most first.
fn bought_categories(catalog: &Catalog, signals: &Signals) -> (Vec<(u32, u32)>, u32) {
    let mut by_category: HashMap<u32, u32> = HashMap::new();
    let mut total = 0u32;
    for &(i, times) in &signals.bought {
        if let Some(it) = catalog.items.get(i as usize)
            && it.merchandise
        {
            *by_category.entry(it.category).or_insert(0) += times;
            total += times;
        }
    }
    let mut top: Vec<(u32, u32)> = by_category.into_iter().collect();
    top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    (top, total)
}

/// Categories the customer has not bought from that customers with the same
/// categories moved into next: (category, from, strength), strongest first,
/// at most `n`.
pub fn next_categories(catalog: &Catalog, signals: &Signals, n: usize) -> Vec<(u32, u32, f32)> {
    let (bought, _) = bought_categories(catalog, signals);
    let mut best: HashMap<u32, (u32, f32)> = HashMap::new();
    for &(from, _) in &bought {
        for &(to, p) in catalog
            .next_categories
            .get(from as usize)
            .map_or(&[][..], |v| v.as_slice())
        {
            if bought.iter().any(|(c, _)| *c == to) {
                continue;
            }
            let e = best.entry(to).or_insert((from, p));
            if p > e.1 || (p == e.1 && from < e.0) {
                *e = (from, p);
            }
        }
    }
    let mut out: Vec<(u32, u32, f32)> = best.into_iter().map(|(t, (f, p))| (t, f, p)).collect();
    out.sort_by(|a, b| b.2.total_cmp(&a.2).then(a.0.cmp(&b.0)));
    out.truncate(n);
    out
}

/// Where a source accumulates in a candidate: its total, and the seed to
/// name in its reason (with how strongly it is named).
type Slot = fn(&mut Candidate) -> (&mut f32, &mut Option<(ItemIx, f32)>);

/// How strongly a seed may be named as the reason for a neighbour, from
/// (seed, neighbour, its contribution, the pair's similarity); `None`: it
/// may not be named.
type Naming<'a> = &'a dyn Fn(ItemIx, ItemIx, f32, f32) -> Option<f32>;

/// Adds the neighbours of `seeds` (written by `neighbours_of` into the
/// buffer it is given, in any order) to the candidates through `slot`; the
/// seed named is the one `naming` rates highest.
fn spread(
    candidates: &mut Candidates,
    neighbours_of: impl Fn(ItemIx, &mut Vec<(ItemIx, f32)>),
    mut seeds: Vec<(ItemIx, f32)>,
    slot: Slot,
    keep: impl Fn(ItemIx, ItemIx) -> bool,
    naming: Naming,
) {
    // Seeds are visited in a fixed order so that float sums, and the seed
    // named in the reason, do not depend on how the caller ordered them.
    // (A seed's neighbours are distinct, so their order changes neither.)
    seeds.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.total_cmp(&a.1)));
    seeds.dedup_by_key(|s| s.0);
    let (mut neighbours, mut places) = (Vec::new(), Vec::new());
    for (seed, w) in seeds {
        neighbours_of(seed, &mut neighbours);
        neighbours.retain(|&(n, _)| keep(seed, n));
        candidates.places(&neighbours, &mut places);
        for (&(n, sim), &k) in neighbours.iter().zip(&places) {
            let (total, best) = slot(&mut candidates.found[k as usize].1);
            let contribution = w * sim;
            *total += contribution;
            if let Some(strength) = naming(seed, n, contribution, sim)
                && best.is_none_or(|(_, b)| strength > b)
            {
                *best = Some((seed, strength));
            }
        }
    }
}

/// The list stored for an item (nothing when none), written into `out`.
fn list_of(lists: &[Vec<(ItemIx, f32)>], i: ItemIx, out: &mut Vec<(ItemIx, f32)>) {
    out.clear();
    out.extend_from_slice(lists.get(i as usize).map_or(&[][..], Vec::as_slice));
}

/// Seeds of the item-to-item sources: anchors (double weight) and
/// purchases (more for repeat and recent ones).
fn purchase_seeds(signals: &Signals, weights: &Weights) -> Vec<(ItemIx, f32)> {
    let asked = signals.anchors.iter().map(|&a| (a, 2.0f32));
    if weights.order_decay > 0.0 {
        let decay = weights.order_decay.min(1.0);
        let mut by_item: IxMap<f32> = IxMap::default();
        for &(i, back) in &signals.bought_orders {
            *by_item.entry(i).or_insert(0.0) += decay.powi(i32::from(back));
        }
        return asked.chain(by_item).collect();
    }
    asked
        .chain(signals.bought.iter().map(|&(i, times)| {
            let boost = if signals.recent.contains(&i) {
                weights.recent_boost
            } else {
                1.0
            };
            (i, boost * (1.0 + (times as f32).ln()))
        }))
        .collect()
}

/// Naming strength of a product the caller asked about: above any lift.
const ASKED: f32 = 1e9;

/// Every source's candidates, before any filter.
fn candidates(model: &Model, signals: &Signals, weights: &Weights) -> Candidates {
    let catalog = &model.catalog;
    let seeds = purchase_seeds(signals, weights);
    // Room for what a customer's purchases usually bring (a few dozen
    // partners each), so the list is not grown again and again.
    let room = (seeds.len() * 32 + signals.viewed.len() * 16 + 512).min(1 << 16);
    let mut candidates = Candidates::new(catalog.items.len(), room);
    // What a purchase-based suggestion is said to go with: a product the
    // caller asked about first, else the purchase with the highest lift
    // for it; an item nearly everyone buys, or non-merchandise, never.
    let by_lift = |lift: fn(&Model, ItemIx, ItemIx, f32) -> f32| {
        move |seed: ItemIx, n: ItemIx, contribution: f32, sim: f32| {
            if signals.anchors.contains(&seed) {
                Some(ASKED + contribution)
            } else {
                model.can_anchor(seed).then(|| lift(model, seed, n, sim))
            }
        }
    };
    if weights.complement > 0.0 {
        spread(
            &mut candidates,
            |s, out| model.complements_into(s, out),
            seeds.clone(),
            |c| (&mut c.complement, &mut c.best_seed),
            |_, _| true,
            &by_lift(Model::basket_lift),
        );
    }
    if weights.also_bought > 0.0 {
        spread(
            &mut candidates,
            |s, out| list_of(&model.also_bought, s, out),
            seeds,
            |c| (&mut c.also_bought, &mut c.best_owned),
            |_, _| true,
            &by_lift(Model::buyer_lift),
        );
    }
    // Co-viewed: alternatives to what was looked at and not bought, in the
    // category of what was viewed (another jacket for a jacket, not a
    // swimsuit for a jacket nor socks for a dress). Category 0 is "none".
    let category = |i: ItemIx| catalog.items.get(i as usize).map(|it| it.category);
    spread(
        &mut candidates,
        |s, out| list_of(&model.coviewed, s, out),
        signals.viewed.iter().map(|&v| (v, 1.0)).collect(),
        |c| (&mut c.coviewed, &mut c.best_viewed),
        |seed, n| category(seed).is_some_and(|c| c != 0) && category(seed) == category(n),
        &|_, _, contribution, _| Some(contribution),
    );
    add_category_sources(&mut candidates, catalog, signals, weights);
    // Popular overall: the fallback that answers a customer with no history.
    for &i in &catalog.popular {
        candidates.entry(i).popular = catalog.popularity_score[i as usize];
    }
    // Curated: the stylists' order, the most specific match first. The
    // pick is the style's: every variant other sources found carries it.
    let n = signals.curated.len() as f32;
    for (k, c) in signals.curated.iter().enumerate() {
        let group = catalog.items.get(c.item as usize).map(|it| it.group);
        let variants = group
            .and_then(|g| model.variants.get(g as usize))
            .map_or(&[][..], Vec::as_slice);
        let found: Vec<ItemIx> = variants
            .iter()
            .copied()
            .filter(|v| *v != c.item && candidates.contains(*v))
            .chain([c.item])
            .collect();
        for v in found {
            let e = candidates.entry(v);
            if e.curation.is_none() {
                e.curated = 1.0 - k as f32 / (n + 1.0);
                e.curation = Some((c.curation, c.anchor));
            }
        }
    }
    candidates
}

/// The customer's share of purchases of `brand` (0 when none or unknown).
fn brand_share(signals: &Signals, brand: Option<u32>) -> f32 {
    brand.map_or(0.0, |b| {
        signals
            .brands
            .iter()
            .find(|(x, _)| *x == b)
            .map_or(0.0, |(_, share)| *share)
    })
}

/// Affinity (best-sellers of the categories the customer buys most, raised
/// by their brands) and new categories (best-sellers of where similar
/// customers went next).
fn add_category_sources(
    candidates: &mut Candidates,
    catalog: &Catalog,
    signals: &Signals,
    weights: &Weights,
) {
    let popular_in = |c: u32| {
        catalog
            .popular_in
            .get(c as usize)
            .map_or(&[][..], Vec::as_slice)
    };
    let (top, total) = bought_categories(catalog, signals);
    for &(category, n) in top.iter().take(weights.affinity_categories) {
        let share = n as f32 / total.max(1) as f32;
        for &i in popular_in(category) {
            let c = candidates.entry(i);
            let brand = brand_share(signals, catalog.items[i as usize].brand);
            let a = share * catalog.popularity_score[i as usize] * (1.0 + weights.brand * brand);
            if a > c.affinity {
                c.affinity = a;
                c.category = Some(category);
            }
        }
    }
    for (category, from, strength) in next_categories(catalog, signals, weights.new_categories) {
        for &i in popular_in(category) {
            let c = candidates.entry(i);
            let s = strength * catalog.popularity_score[i as usize];
            if s > c.new_category {
                c.new_category = s;
                c.moved = Some((from, category));
            }
        }
    }
}

/// Each source's (weight, evidence on the customer's scale, source code)
/// for a candidate, most specific source first: that order breaks ties
/// when choosing the reason. The scale is the source's share of its
/// strongest candidate for this customer, so the weights blend
/// like-for-like.
fn parts(weights: &Weights, c: &Candidate, top: &Candidate) -> [(f32, f32, u8); 7] {
    let norm = |v: f32, max: f32| if max > 0.0 { v / max } else { 0.0 };
    [
        (weights.complement, norm(c.complement, top.complement), 0u8),
        (weights.coviewed, norm(c.coviewed, top.coviewed), 3),
        (weights.also_bought, norm(c.also_bought, top.also_bought), 5),
        (
            weights.new_category,
            norm(c.new_category, top.new_category),
            4,
        ),
        (weights.affinity, norm(c.affinity, top.affinity), 1),
        (weights.popular, norm(c.popular, top.popular), 2),
        (weights.curated, norm(c.curated, top.curated), 6),
    ]
}

/// A candidate's blend score: the weighted evidence, lowered when its
/// price is outside the customer's usual band.
fn score(weights: &Weights, c: &Candidate, top: &Candidate) -> f32 {
    let score = parts(weights, c, top)
        .iter()
        .map(|p| p.0 * p.1)
        .sum::<f32>();
    if c.off_band {
        score * (1.0 - weights.price_fit.clamp(0.0, 1.0))
    } else {
        score
    }
}

/// Whether `price` is outside the customer's usual band (never when
/// either is unknown).
fn off_band(signals: &Signals, price: i64) -> bool {
    signals
        .price_band
        .is_some_and(|(lo, hi)| price > 0 && !(lo..=hi).contains(&price))
}

/// A candidate's reason: a stylist's pick says so (the note is the better
/// sentence); otherwise the source with the strongest evidence for this
/// item that can be said (weights rank the list; they do not make a weak
/// reason strong), the more specific on a tie; a purchase-based source
/// with no purchase worth naming gives way to the next. "Popular" only
/// when nothing specific applies (an agent can say more about an item
/// that goes with a purchase than about a best-seller).
fn reason(weights: &Weights, c: &Candidate, top: &Candidate) -> Reason {
    if let Some((curation, anchor)) = c.curation.filter(|_| weights.curated > 0.0) {
        return Reason::Curated { curation, anchor };
    }
    let mut said: Vec<(f32, usize, u8)> = parts(weights, c, top)
        .iter()
        .enumerate()
        .filter(|(_, p)| p.2 != 2 && p.0 > 0.0 && p.1 > 0.0)
        .map(|(k, p)| (p.1, k, p.2))
        .collect();
    said.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    said.iter()
        .find_map(|&(_, _, code)| reason_of(code, c))
        .or_else(|| {
            c.category
                .map(|category| Reason::PopularInCategory { category })
        })
        .unwrap_or(Reason::Popular)
}

/// The reason a source gives, when it has what it needs to be said.
fn reason_of(code: u8, c: &Candidate) -> Option<Reason> {
    match code {
        0 => c.best_seed.map(|(with, _)| Reason::Complement { with }),
        3 => c.best_viewed.map(|(with, _)| Reason::CoViewed { with }),
        1 => c
            .category
            .map(|category| Reason::PopularInCategory { category }),
        4 => c
            .moved
            .map(|(from, category)| Reason::NewCategory { from, category }),
        5 => c.best_owned.map(|(with, _)| Reason::AlsoBought { with }),
        _ => None,
    }
}

/// Raises `top`, each source's strongest evidence so far, to `c`'s.
fn raise(top: &mut Candidate, c: &Candidate) {
    top.complement = top.complement.max(c.complement);
    top.also_bought = top.also_bought.max(c.also_bought);
    top.coviewed = top.coviewed.max(c.coviewed);
    top.affinity = top.affinity.max(c.affinity);
    top.new_category = top.new_category.max(c.new_category);
    top.popular = top.popular.max(c.popular);
    top.curated = top.curated.max(c.curated);
}

/// One allowed candidate as ranked: its item, its score, and its place in
/// [`Blend::allowed`].
#[derive(Clone, Copy)]
struct Scored {
    item: ItemIx,
    score: f32,
    k: u32,
}

/// Best first: the higher score, then the lower item index. A total order
/// (the items are distinct), so any sort gives the same list.
fn by_rank(a: &Scored, b: &Scored) -> std::cmp::Ordering {
    b.score.total_cmp(&a.score).then(a.item.cmp(&b.item))
}

/// The blend for one customer: every candidate that passes the hard
/// filters with each source's evidence, each source's strongest evidence,
/// and every candidate's score (in no order).
struct Blend {
    allowed: Vec<(ItemIx, Candidate)>,
    top: Candidate,
    scored: Vec<Scored>,
}

impl Drop for Blend {
    /// Hands the candidate list's memory back to the thread.
    fn drop(&mut self) {
        let mut found = std::mem::take(&mut self.allowed);
        found.clear();
        give_back(&FOUND, found, KEPT_CANDIDATES);
    }
}

impl Blend {
    /// The reason to say for a ranked candidate.
    fn reason(&self, weights: &Weights, s: &Scored) -> Reason {
        reason(weights, &self.allowed[s.k as usize].1, &self.top)
    }
}

fn blended(model: &Model, signals: &Signals, weights: &Weights) -> Blend {
    let catalog = &model.catalog;
    let mut allowed = candidates(model, signals, weights).into_found();
    // One pass, one visit to each candidate's catalogue entry (tens of
    // thousands of them, scattered): the filters and the price band read
    // it together, and each source's strongest evidence among the allowed
    // is taken on the way.
    let mut top = Candidate::default();
    let filters = signals.filters.compile(catalog);
    allowed.retain_mut(|(item, c)| {
        let allowed = filters.allows(*item);
        if allowed {
            c.off_band = off_band(signals, catalog.items[*item as usize].price_minor);
            raise(&mut top, c);
        }
        allowed
    });
    let mut scored = SCORED.with(RefCell::take);
    scored.extend(allowed.iter().zip(0u32..).map(|((item, c), k)| Scored {
        item: *item,
        score: score(weights, c, &top),
        k,
    }));
    Blend {
        allowed,
        top,
        scored,
    }
}

/// Scores read best first, sorted only as far as they are read: a list of
/// ten usually stops within the first few dozen of tens of thousands of
/// candidates. Each round sorts the next block, twice as long as all the
/// blocks before it (at least 64).
struct BestFirst {
    items: Vec<Scored>,
    next: usize,
    sorted: usize,
}

impl BestFirst {
    fn new(items: Vec<Scored>) -> Self {
        BestFirst {
            items,
            next: 0,
            sorted: 0,
        }
    }
}

impl Drop for BestFirst {
    /// Hands the scores' memory back to the thread.
    fn drop(&mut self) {
        let mut items = std::mem::take(&mut self.items);
        items.clear();
        give_back(&SCORED, items, KEPT_CANDIDATES);
    }
}

impl Iterator for BestFirst {
    type Item = Scored;

    fn next(&mut self) -> Option<Scored> {
        if self.next == self.sorted {
            let rest = &mut self.items[self.sorted..];
            if rest.is_empty() {
                return None;
            }
            let n = self.sorted.max(64).min(rest.len());
            if n < rest.len() {
                rest.select_nth_unstable_by(n - 1, by_rank);
            }
            rest[..n].sort_unstable_by(by_rank);
            self.sorted += n;
        }
        let s = self.items[self.next];
        self.next += 1;
        Some(s)
    }
}

/// Every candidate that passes the hard filters, best first: by the blend,
/// then (when `weights` ask for it and the model has trees) its first
/// [`WINDOW`] re-ordered by the learned trees. With the blend, which says
/// each one's reason.
fn ranked(
    model: &Model,
    signals: &Signals,
    weights: &Weights,
) -> (Blend, Box<dyn Iterator<Item = Scored>>) {
    let mut blend = blended(model, signals, weights);
    let mut order = BestFirst::new(std::mem::take(&mut blend.scored));
    let Some(forest) = model
        .ranking
        .learned
        .as_ref()
        .filter(|_| weights.learned > 0.0)
    else {
        return (blend, Box::new(order));
    };
    let mut head: Vec<Scored> = order.by_ref().take(WINDOW).collect();
    let numbers = window_features(model, signals, &blend.allowed, &blend.top, &head);
    for (s, f) in head.iter_mut().zip(numbers) {
        let c = &blend.allowed[s.k as usize].1;
        // The trees' probability (gbdt's log-likelihood: 1 / (1 + e^-2x)),
        // plus the stylist's pick as the blend adds it.
        let p = 1.0 / (1.0 + (-2.0 * forest.score(&f)).exp());
        let pick = if blend.top.curated > 0.0 {
            weights.curated * c.curated / blend.top.curated
        } else {
            0.0
        };
        s.score = p + pick;
    }
    head.sort_by(by_rank);
    // What lies beyond the window keeps the blend's order, below it.
    let floor = head.last().map_or(0.0, |s| s.score);
    let mut rest = order.peekable();
    let first = rest.peek().map_or(1.0, |s| s.score);
    let below = rest.map(move |mut s| {
        s.score = if first > 0.0 {
            floor * 0.5 * (s.score / first)
        } else {
            0.0
        };
        s
    });
    (blend, Box::new(head.into_iter().chain(below)))
}

/// What the learned trees know of the customer, once per ranking.
struct Profile {
    /// Share of their purchased units per category.
    categories: IxMap<f32>,
    /// Distinct items bought, as ln(1 + n).
    items: f32,
    /// Orders of theirs seen, as ln(1 + n).
    orders: f32,
}

impl Profile {
    fn of(model: &Model, signals: &Signals) -> Self {
        let (top, total) = bought_categories(&model.catalog, signals);
        let orders = signals
            .bought_orders
            .iter()
            .map(|&(_, back)| u32::from(back) + 1)
            .max()
            .unwrap_or(0);
        Profile {
            categories: top
                .into_iter()
                .map(|(c, n)| (c, n as f32 / total.max(1) as f32))
                .collect(),
            items: (signals.bought.len() as f32).ln_1p(),
            orders: (orders as f32).ln_1p(),
        }
    }
}

/// One candidate's numbers for the learned trees: each source's evidence
/// on the customer's scale, the blend's score and place, the share of
/// customers who bought it, whether its price is outside the customer's
/// band (0.5: no band), the customer's share of its category and brand,
/// how much they bought and how often.
fn features(
    model: &Model,
    signals: &Signals,
    profile: &Profile,
    c: &Candidate,
    top: &Candidate,
    s: &Scored,
    position: usize,
) -> Features {
    let norm = |v: f32, max: f32| if max > 0.0 { v / max } else { 0.0 };
    let it = &model.catalog.items[s.item as usize];
    let buyers = model.buyers.get(s.item as usize).copied().unwrap_or(0);
    let price = match signals.price_band {
        Some((lo, hi)) if it.price_minor > 0 => f32::from(!(lo..=hi).contains(&it.price_minor)),
        _ => 0.5,
    };
    [
        norm(c.complement, top.complement),
        norm(c.coviewed, top.coviewed),
        norm(c.also_bought, top.also_bought),
        norm(c.new_category, top.new_category),
        norm(c.affinity, top.affinity),
        norm(c.popular, top.popular),
        s.score,
        position as f32 / WINDOW as f32,
        buyers as f32 / model.customers.max(1) as f32,
        price,
        profile.categories.get(&it.category).copied().unwrap_or(0.0),
        profile.items,
        profile.orders,
        brand_share(signals, it.brand),
    ]
}

/// The learned trees' examples for one customer: the blend's first
/// [`WINDOW`] candidates (the same ones serving re-orders) with their
/// numbers.
pub(crate) fn examples(
    model: &Model,
    signals: &Signals,
    weights: &Weights,
) -> Vec<(ItemIx, Features)> {
    let mut blend = blended(model, signals, weights);
    let window: Vec<Scored> = BestFirst::new(std::mem::take(&mut blend.scored))
        .take(WINDOW)
        .collect();
    let numbers = window_features(model, signals, &blend.allowed, &blend.top, &window);
    window.iter().map(|s| s.item).zip(numbers).collect()
}

/// The numbers of the blend's first [`WINDOW`] candidates, in its order:
/// what serving re-orders and training learns from, made alike.
fn window_features(
    model: &Model,
    signals: &Signals,
    allowed: &[(ItemIx, Candidate)],
    top: &Candidate,
    scored: &[Scored],
) -> Vec<Features> {
    let profile = Profile::of(model, signals);
    scored
        .iter()
        .take(WINDOW)
        .enumerate()
        .map(|(position, s)| {
            features(
                model,
                signals,
                &profile,
                &allowed[s.k as usize].1,
                top,
                s,
                position,
            )
        })
        .collect()
}

/// The variant of `item`'s style to offer: for a sized style, the one in
/// the customer's size for its domain that passes the filters (`None`:
/// not in stock in their size, so the style is not offered), or `item`
/// itself when their size there is unknown.
pub(crate) fn in_their_size(
    model: &Model,
    signals: &Signals,
    item: ItemIx,
) -> Option<(ItemIx, Fit)> {
    let catalog = &model.catalog;
    let it = &catalog.items[item as usize];
    let Some(size) = it.size else {
        return Some((item, Fit::NotSized));
    };
    let Some(&label) = signals.sizes.get(&size.domain) else {
        return Some((item, Fit::Unknown));
    };
    let wanted = super::ItemSize {
        domain: size.domain,
        label,
    };
    model
        .variants
        .get(it.group as usize)?
        .iter()
        .copied()
        .find(|&v| {
            catalog.items[v as usize].size == Some(wanted)
                && signals.filters.check(catalog, v).is_ok()
        })
        .map(|v| {
            let fit = if signals.carried.contains(&size.domain) {
                Fit::Probable
            } else {
                Fit::CustomerSize
            };
            (v, fit)
        })
}

/// Ranks suggestions: every source adds candidates, every candidate passes
/// the hard filters, then one item per style (in the customer's size, see
/// [`in_their_size`]) and a per-category cap keep the list diverse.
/// Deterministic for the same input (ties break on item index).
pub fn suggest(
    model: &Model,
    signals: &Signals,
    weights: &Weights,
    limit: usize,
) -> Vec<Suggestion> {
    let catalog = &model.catalog;
    let (blend, order) = ranked(model, signals, weights);
    let mut per_category: IxMap<usize> = IxMap::default();
    // One item per style, and per look-alike (the same thing under
    // another product id: "White Bread 20 OZ" and "White Bread").
    let mut styles = IxSet::default();
    let mut alikes = IxSet::default();
    let mut out = Vec::with_capacity(limit);
    for s in order {
        let item = &catalog.items[s.item as usize];
        if styles.contains(&item.group) || alikes.contains(&item.alike) {
            continue;
        }
        let n = per_category.entry(item.category).or_insert(0);
        if *n >= weights.per_category {
            continue;
        }
        styles.insert(item.group);
        let Some((chosen, fit)) = in_their_size(model, signals, s.item) else {
            continue;
        };
        alikes.insert(item.alike);
        alikes.insert(catalog.items[chosen as usize].alike);
        *n += 1;
        out.push(Suggestion {
            item: chosen,
            score: s.score,
            reason: blend.reason(weights, &s),
            fit,
        });
        if out.len() == limit {
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use proptest::prelude::*;

    use super::*;
    use crate::{
        store::{CatalogRow, ModelInputs, PurchaseRow, ViewRow},
        suggest::ModelConfig,
    };

    /// A model built by [`Model::build`] from items (group, category,
    /// available, merchandise, brand), baskets (three per customer) and
    /// sessions. Item `i` is product `p{i}`; group `g` is `g{g}`.
    fn model_of(
        items: &[(u32, u32, bool, bool, Option<u32>)],
        baskets: &[Vec<ItemIx>],
        sessions: &[Vec<ItemIx>],
    ) -> Model {
        model_with_sizes(items, &[], baskets, sessions)
    }

    #[test]
    fn a_ranking_starts_from_no_candidates_whatever_ranked_before_on_its_thread() {
        let mut first = Candidates::new(10, 4);
        first.entry(3).popular = 1.0;
        first.entry(7).popular = 2.0;
        let found = first.into_found();
        assert_eq!(found.iter().map(|(i, _)| *i).collect::<Vec<_>>(), [3, 7]);
        // Dropped without being read out, and beyond the table's end.
        let mut second = Candidates::new(10, 4);
        assert!(!second.contains(3) && !second.contains(7));
        second.entry(5).popular = 1.0;
        second.entry(12).popular = 1.0;
        drop(second);
        let third = Candidates::new(4, 4);
        assert!((0..16).all(|i| !third.contains(i)));
        assert!(third.found.is_empty());
    }

    #[test]
    fn places_add_each_new_item_once_in_the_order_listed_and_find_the_known() {
        let mut c = Candidates::new(4, 4);
        c.entry(2).popular = 1.0;
        let mut places = Vec::new();
        // Beyond the table's end, known, new, and one listed twice.
        c.places(&[(9, 0.5), (2, 0.1), (0, 0.2), (9, 0.3)], &mut places);
        assert_eq!(places, [1, 0, 2, 1]);
        let found: Vec<ItemIx> = c.found.iter().map(|(i, _)| *i).collect();
        assert_eq!(found, [2, 9, 0]);
        assert_eq!(c.found[places[1] as usize].1.popular, 1.0);
        assert!(c.contains(9) && c.contains(0) && !c.contains(1));
        c.places(&[], &mut places);
        assert!(places.is_empty());
    }

    /// Letter sizes items may have in generated worlds.
    const SIZES: [&str; 4] = ["S", "M", "L", "XL"];

    #[test]
    fn browsing_the_caller_read_replaces_the_historys_in_the_signals() {
        let model = model_of(&distinct(6), &[], &[]);
        let ids = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<String>>();
        let history = crate::suggest::signals::History {
            viewed: ids(&["p1"]),
            in_cart: ids(&["p2"]),
            ..Default::default()
        };
        let (viewed, in_cart) = (ids(&["p3"]), ids(&["p4"]));
        let ask = |browsing| crate::suggest::signals::Ask {
            personal: true,
            browsing,
            ..Default::default()
        };
        let own = crate::suggest::signals::signals(&model, &history, &ask(None));
        let given = crate::suggest::signals::signals(
            &model,
            &history,
            &ask(Some((viewed.as_slice(), in_cart.as_slice()))),
        );
        let ix = |p: &str| model.item(p).expect("in the model");
        let group = |p: &str| model.catalog.items[ix(p) as usize].group;
        assert_eq!(own.viewed, [ix("p1")]);
        assert!(own.filters.excluded_groups.contains(&group("p2")));
        assert_eq!(given.viewed, [ix("p3")]);
        assert!(given.filters.excluded_groups.contains(&group("p4")));
        assert!(!given.filters.excluded_groups.contains(&group("p2")));
    }

    #[test]
    fn scores_start_empty_whatever_ranked_before_on_the_thread() {
        let (model, signals) = laptops_and_mice();
        let first = suggest(&model, &signals, &Weights::default(), 10);
        let again = suggest(&model, &signals, &Weights::default(), 10);
        let items = |l: &[Suggestion]| l.iter().map(|s| (s.item, s.score)).collect::<Vec<_>>();
        assert_eq!(items(&first), items(&again));
        assert!(SCORED.with(|s| s.borrow().is_empty()));
    }

    /// [`model_of`] with item `i` in size `SIZES[sizes[i]]` (none where
    /// absent); category `c` is the path "C{c} > x".
    fn model_with_sizes(
        items: &[(u32, u32, bool, bool, Option<u32>)],
        sizes: &[Option<usize>],
        baskets: &[Vec<ItemIx>],
        sessions: &[Vec<ItemIx>],
    ) -> Model {
        let catalog = items
            .iter()
            .enumerate()
            .map(
                |(i, &(group, category, available, merchandise, brand))| CatalogRow {
                    size: sizes
                        .get(i)
                        .copied()
                        .flatten()
                        .map(|s| crate::domain::Size::parse(SIZES[s], None).expect("a size")),
                    product_id: format!("p{i}"),
                    name: format!("Item {i}"),
                    group_id: format!("g{group}"),
                    category_path: if merchandise {
                        format!("C{category} > x")
                    } else {
                        format!("NM > C{category}")
                    },
                    price_minor: 100,
                    available,
                    brand: brand.map(|b| format!("b{b}")).unwrap_or_default(),
                    replenish_days: None,
                    merchandise: None,
                },
            )
            .collect();
        let mut purchases = Vec::new();
        for (k, b) in baskets.iter().enumerate() {
            for &i in b {
                purchases.push(PurchaseRow {
                    customer_id: format!("c{:05}", k / 3),
                    order_id: format!("o{k:05}"),
                    placed_at: k as i64 * 1000,
                    product_id: format!("p{i}"),
                });
            }
        }
        let views = sessions
            .iter()
            .enumerate()
            .flat_map(|(k, s)| {
                s.iter().map(move |&i| ViewRow {
                    visitor: format!("v{k:05}"),
                    product_id: format!("p{i}"),
                    occurred_at: 0,
                })
            })
            .collect();
        let config = ModelConfig {
            non_merchandise: vec!["NM".into()],
            ..ModelConfig::default()
        };
        let inputs = ModelInputs {
            as_of_seq: 0,
            catalog,
            purchases,
            views,
        };
        Model::build(&inputs, &config, 0)
    }

    fn group(m: &Model, g: u32) -> Option<u32> {
        m.groups.get(&format!("g{g}"))
    }

    /// A generated world: catalog flags, baskets, a customer and a request.
    #[derive(Debug, Clone)]
    struct World {
        items: Vec<(u32, u32, bool, bool)>, // (group, category, available, merchandise)
        sizes: Vec<Option<usize>>,          // per item, into SIZES
        customer_sizes: Vec<(u32, usize)>,  // (category, SIZES index or beyond: none sold)
        curated: Vec<ItemIx>,               // a stylist's items, in order
        baskets: Vec<Vec<ItemIx>>,
        bought: Vec<ItemIx>,
        anchors: Vec<ItemIx>,
        returned_groups: Vec<u32>,
        rejected_groups: Vec<u32>,
        excluded: Vec<ItemIx>,
        limit: usize,
        weights: (f32, f32, f32, f32, usize),
    }

    fn world() -> impl Strategy<Value = World> {
        (2usize..40).prop_flat_map(|n| {
            let item = (
                0u32..(n as u32),
                0u32..5,
                prop::bool::weighted(0.8),
                prop::bool::weighted(0.9),
            );
            let ix = 0..(n as ItemIx);
            let group = 0..(n as u32);
            (
                (
                    prop::collection::vec(item, n),
                    prop::collection::vec(prop::option::weighted(0.6, 0usize..4), n),
                    prop::collection::vec((0u32..5, 0usize..5), 0..4),
                    prop::collection::vec(ix.clone(), 0..6),
                ),
                prop::collection::vec(prop::collection::vec(ix.clone(), 1..8), 0..60),
                prop::collection::vec(ix.clone(), 0..10),
                prop::collection::vec(ix.clone(), 0..3),
                prop::collection::vec(group.clone(), 0..4),
                prop::collection::vec(group, 0..4),
                prop::collection::vec(ix, 0..4),
                1usize..15,
                (
                    0.0f32..3.0,
                    0.0f32..3.0,
                    0.0f32..3.0,
                    0.0f32..3.0,
                    1usize..5,
                ),
            )
                .prop_map(
                    |(
                        (items, sizes, customer_sizes, curated),
                        baskets,
                        bought,
                        anchors,
                        returned_groups,
                        rejected_groups,
                        excluded,
                        limit,
                        weights,
                    )| World {
                        items,
                        sizes,
                        customer_sizes,
                        curated,
                        baskets,
                        bought,
                        anchors,
                        returned_groups,
                        rejected_groups,
                        excluded,
                        limit,
                        weights,
                    },
                )
        })
    }

    /// Ranks a world: the computed list, or (`curated_first`) the curated
    /// items first as GetCuratedCrossSells does.
    fn run(w: &World, curated_first: bool) -> (Model, Signals, Vec<Suggestion>, usize) {
        let items: Vec<(u32, u32, bool, bool, Option<u32>)> = w
            .items
            .iter()
            .map(|&(g, c, a, m)| (g, c, a, m, Some(g % 3)))
            .collect();
        // Sessions: the same baskets read backwards stand in for browsing.
        let sessions: Vec<Vec<ItemIx>> = w
            .baskets
            .iter()
            .rev()
            .take(w.baskets.len() / 2)
            .cloned()
            .collect();
        let mut model = model_with_sizes(&items, &w.sizes, &w.baskets, &sessions);
        // The learned re-ranker in a third of the worlds.
        let learned = w.limit % 3 == 1;
        if learned {
            model.ranking.learned = Some(std::sync::Arc::new(crate::suggest::learned::trained()));
        }
        let mut counts: HashMap<ItemIx, u32> = HashMap::new();
        for &b in &w.bought {
            *counts.entry(b).or_insert(0) += 1;
        }
        let mut bought: Vec<(ItemIx, u32)> = counts.into_iter().collect();
        bought.sort_unstable();
        let groups = |gs: &[u32]| gs.iter().filter_map(|g| group(&model, *g)).collect();
        let filters = Filters {
            bought_groups: bought
                .iter()
                .map(|(i, _)| model.catalog.items[*i as usize].group)
                .collect(),
            returned_groups: groups(&w.returned_groups),
            rejected_groups: groups(&w.rejected_groups),
            excluded: w.excluded.iter().copied().collect(),
            ..Filters::default()
        };
        let signals = Signals {
            bought,
            recent: w.bought.iter().take(2).copied().collect(),
            bought_orders: w
                .bought
                .iter()
                .enumerate()
                .map(|(k, &i)| (i, k as u16))
                .collect(),
            anchors: w.anchors.clone(),
            viewed: w.excluded.iter().chain(&w.anchors).copied().collect(),
            price_band: w.limit.is_multiple_of(2).then_some((50, 150)),
            brands: vec![(0, 0.5), (1, 1.0)],
            filters,
            sizes: customer_sizes(&model, &w.customer_sizes),
            // Odd domains' sizes carried from a related one.
            carried: customer_sizes(&model, &w.customer_sizes)
                .into_keys()
                .filter(|d| d % 2 == 1)
                .collect(),
            size_profile: Default::default(),
            // Curated items straight from the stylist, not pre-filtered:
            // the ranking must hold the filters on its own.
            curated: w
                .curated
                .iter()
                .enumerate()
                .map(|(k, &item)| super::super::curated::CuratedCandidate {
                    item,
                    curation: 0,
                    position: k as u32,
                    matched: super::super::curated::Match::Bought,
                    anchor: None,
                })
                .collect(),
            matched: vec![Some((super::super::curated::Match::Bought, None))],
        };
        let (c, a, p, ab, cap) = w.weights;
        let weights = Weights {
            complement: c,
            affinity: a,
            popular: p,
            also_bought: ab,
            per_category: cap,
            // The recency-weighted blend in a third of the worlds.
            order_decay: if w.limit.is_multiple_of(3) { 0.8 } else { 0.0 },
            learned: if learned { 1.0 } else { 0.0 },
            ..Weights::default()
        };
        let out = if curated_first {
            super::super::curated::curated_first(&model, &signals, &weights, w.limit)
        } else {
            suggest(&model, &signals, &weights, w.limit)
        };
        (model, signals, out, cap)
    }

    /// The customer's sizes in the model's indexes: (category, size) with
    /// a size beyond [`SIZES`] standing for one no product has.
    fn customer_sizes(model: &Model, sizes: &[(u32, usize)]) -> IxMap<u32> {
        sizes
            .iter()
            .filter_map(|&(c, s)| {
                let domain = crate::domain::SizeDomain {
                    category: format!("C{c} > x"),
                    system: crate::domain::SizeSystem::Alpha,
                };
                let d = model.size_domains.get(&domain.key())?;
                let label = SIZES
                    .get(s)
                    .and_then(|l| model.size_labels.get(l))
                    .unwrap_or(super::NO_SUCH_SIZE);
                Some((d, label))
            })
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

        /// No suggestion, from any source, was bought (any variant of the
        /// style), returned, thumbed down, excluded, unavailable or not
        /// merchandise; the list is bounded, unique, diverse, deterministic.
        #[test]
        fn hard_filters_hold_for_every_source(w in world(), curated_first in prop::bool::ANY) {
            let (model, signals, out, cap) = run(&w, curated_first);
            let bought_groups: HashSet<u32> =
                w.bought.iter().map(|i| w.items[*i as usize].0).collect();
            let mut seen = HashSet::new();
            let mut styles = HashSet::new();
            let mut per_category: HashMap<u32, usize> = HashMap::new();
            for s in &out {
                let (group, _, available, merchandise) = w.items[s.item as usize];
                prop_assert!(!bought_groups.contains(&group), "already bought: {:?}", s);
                prop_assert!(!w.returned_groups.contains(&group), "returned: {:?}", s);
                prop_assert!(!w.rejected_groups.contains(&group), "thumbed down: {:?}", s);
                prop_assert!(!w.excluded.contains(&s.item), "excluded: {:?}", s);
                prop_assert!(available && merchandise, "unavailable: {:?}", s);
                prop_assert!(seen.insert(s.item), "duplicate: {:?}", s);
                prop_assert!(styles.insert(group), "two items of one style: {:?}", s);
                // The cap is the ranker's; a stylist's curated items keep
                // their order whatever their categories.
                if !curated_first || !matches!(s.reason, Reason::Curated { .. }) {
                    *per_category.entry(model.catalog.items[s.item as usize].category).or_insert(0) += 1;
                }
                let bought = |i: ItemIx| signals.bought.iter().any(|(b, _)| *b == i);
                match s.reason {
                    Reason::Complement { with } | Reason::AlsoBought { with } => {
                        prop_assert!(signals.anchors.contains(&with) || bought(with))
                    }
                    Reason::CoViewed { with } => prop_assert!(signals.viewed.contains(&with)),
                    Reason::NewCategory { from, category } => {
                        let cats: HashSet<u32> = signals
                            .bought
                            .iter()
                            .map(|(i, _)| model.catalog.items[*i as usize].category)
                            .collect();
                        prop_assert!(cats.contains(&from) && !cats.contains(&category));
                        prop_assert_eq!(category, model.catalog.items[s.item as usize].category);
                    }
                    Reason::PopularInCategory { .. } | Reason::Popular => {}
                    Reason::Curated { curation, .. } => {
                        prop_assert_eq!(curation, 0);
                        prop_assert!(w.curated.iter().any(|&c| w.items[c as usize].0 == group));
                    }
                }
            }
            prop_assert!(out.len() <= w.limit);
            prop_assert!(per_category.values().all(|n| *n <= cap));
            // Sizes: a sized style comes in the customer's size for its
            // domain, or says the size is unknown; never another size.
            for s in &out {
                let item = &model.catalog.items[s.item as usize];
                match (item.size, s.fit) {
                    (None, Fit::NotSized) => {}
                    (Some(size), Fit::CustomerSize) => {
                        prop_assert_eq!(signals.sizes.get(&size.domain), Some(&size.label), "{:?}", s);
                        prop_assert!(!signals.carried.contains(&size.domain), "{:?}", s);
                    }
                    (Some(size), Fit::Probable) => {
                        prop_assert_eq!(signals.sizes.get(&size.domain), Some(&size.label), "{:?}", s);
                        prop_assert!(signals.carried.contains(&size.domain), "{:?}", s);
                    }
                    (Some(size), Fit::Unknown) => {
                        prop_assert!(!signals.sizes.contains_key(&size.domain), "{:?}", s);
                    }
                    (size, fit) => prop_assert!(false, "{:?} with size {:?} is {:?}", s, size, fit),
                }
            }
            let (_, _, again, _) = run(&w, curated_first);
            prop_assert_eq!(out, again);
        }

        /// A model survives its encoding unchanged.
        #[test]
        fn the_model_round_trips_through_its_encoding(w in world()) {
            let (mut model, ..) = run(&w, false);
            // A validated build's ranking travels with it.
            use crate::suggest::validate::{Ranker, Ranking, Validation};
            model.ranking = Ranking {
                served: Ranker::RecentBlend,
                customers: w.limit as u32,
                validations: Ranker::ALL
                    .iter()
                    .map(|&ranker| Validation { ranker, hit_rate: 0.25, ndcg: 0.125, previous_hit_rate: 0.5, z: -1.5 })
                    .collect(),
                learned: Some(std::sync::Arc::new(crate::suggest::learned::trained())),
            };
            let back = Model::decode(&model.encode());
            prop_assert_eq!(back.as_ref(), Ok(&model));
        }
    }

    fn distinct(n: u32) -> Vec<(u32, u32, bool, bool, Option<u32>)> {
        (0..n).map(|i| (i, i, true, true, None)).collect()
    }

    #[test]
    fn a_customer_with_no_history_gets_best_sellers() {
        let mut items = distinct(4);
        items[2].2 = false;
        let baskets = vec![
            vec![0],
            vec![0],
            vec![0],
            vec![2],
            vec![2],
            vec![1, 3],
            vec![1],
        ];
        let model = model_of(&items, &baskets, &[]);
        let out = suggest(&model, &Signals::default(), &Weights::default(), 3);
        let ids: Vec<ItemIx> = out.iter().map(|s| s.item).collect();
        assert_eq!(
            ids,
            [0, 1, 3],
            "most popular first; the out-of-stock item 2 never shows"
        );
        assert!(out.iter().all(|s| s.reason == Reason::Popular));
    }

    /// Laptops (0) go with mice (1); 2 is a best-seller on its own; the
    /// customer bought a laptop.
    fn laptops_and_mice() -> (Model, Signals) {
        let baskets = vec![
            vec![0, 1],
            vec![0, 1],
            vec![0, 1],
            vec![2],
            vec![2],
            vec![2],
            vec![2],
            vec![2],
        ];
        let model = model_of(&distinct(3), &baskets, &[]);
        let mut signals = Signals {
            bought: vec![(0, 1)],
            ..Signals::default()
        };
        signals
            .filters
            .bought_groups
            .insert(model.catalog.items[0].group);
        (model, signals)
    }

    #[test]
    fn complements_say_what_they_go_with() {
        let (model, signals) = laptops_and_mice();
        let weights = Weights {
            also_bought: 0.0,
            ..Weights::default()
        };
        let out = suggest(&model, &signals, &weights, 2);
        assert_eq!(out[0].item, 1);
        assert_eq!(out[0].reason, Reason::Complement { with: 0 });
        assert!(
            out.iter().all(|s| s.item != 0),
            "never the laptop itself again"
        );
    }

    /// The learned trees order the blend's window: trees that learned "a
    /// strong complement is bought" put the mouse first though the blend
    /// weighs best-sellers a hundred times more; the reason stays the
    /// blend's; with no trees in the model, the blend's order holds.
    #[test]
    fn learned_trees_reorder_the_blend_and_keep_its_reasons() {
        let (mut model, signals) = laptops_and_mice();
        let weights = Weights {
            also_bought: 0.0,
            complement: 0.1,
            popular: 10.0,
            learned: 1.0,
            ..Weights::default()
        };
        let items = |out: &[Suggestion]| out.iter().map(|s| s.item).collect::<Vec<_>>();
        assert_eq!(items(&suggest(&model, &signals, &weights, 2)), [2, 1]);
        model.ranking.learned = Some(std::sync::Arc::new(crate::suggest::learned::trained()));
        let out = suggest(&model, &signals, &weights, 2);
        assert_eq!(items(&out), [1, 2]);
        assert_eq!(out[0].reason, Reason::Complement { with: 0 });
        assert!(out[0].score > out[1].score);
        let off = Weights {
            learned: 0.0,
            ..weights
        };
        assert_eq!(items(&suggest(&model, &signals, &off, 2)), [2, 1]);
    }

    /// 60 customers, three orders each: everyone buys bananas (0); six buy
    /// a tent (1) with pegs (2); ten more buy pegs with their bananas; the
    /// rest buy filler (3).
    fn bananas_and_tents() -> Model {
        let mut baskets = Vec::new();
        for j in 0..60 {
            baskets.push(vec![0]);
            baskets.push(if j < 6 { vec![1, 2] } else { vec![3] });
            baskets.push(if j < 16 { vec![0, 2] } else { vec![3] });
        }
        model_of(&distinct(4), &baskets, &[])
    }

    fn named(reason: &Reason) -> Option<ItemIx> {
        match reason {
            Reason::Complement { with } | Reason::AlsoBought { with } => Some(*with),
            _ => None,
        }
    }

    /// The pegs are suggested for the tent, the purchase that makes them
    /// likelier than for anyone (lift), though the customer bought bananas
    /// thirty times and they share more orders with pegs.
    #[test]
    fn the_anchor_is_the_purchase_with_the_highest_lift_never_a_ubiquitous_one() {
        let model = bananas_and_tents();
        assert!(!model.can_anchor(0), "bought by every customer");
        assert!(model.can_anchor(1));
        let mut signals = Signals {
            bought: vec![(0, 30), (1, 1)],
            ..Signals::default()
        };
        for i in [0, 1] {
            let group = model.catalog.items[i].group;
            signals.filters.bought_groups.insert(group);
        }
        let out = suggest(&model, &signals, &Weights::default(), 3);
        let pegs = out
            .iter()
            .find(|s| s.item == 2)
            .expect("pegs are suggested");
        assert_eq!(named(&pegs.reason), Some(1), "{:?}", pegs.reason);
        assert!(out.iter().all(|s| named(&s.reason) != Some(0)));

        // Bought only bananas: the pegs may still come, but never "with the
        // bananas you have".
        signals.bought = vec![(0, 30)];
        signals
            .filters
            .bought_groups
            .remove(&model.catalog.items[1].group);
        let out = suggest(&model, &signals, &Weights::default(), 3);
        assert!(!out.is_empty());
        assert!(
            out.iter().all(|s| named(&s.reason).is_none()),
            "{:?}",
            out.iter().map(|s| &s.reason).collect::<Vec<_>>()
        );
    }

    /// Two product ids of one thing ("White Bread 20 OZ", "White Bread"):
    /// the list shows the better-placed one only.
    #[test]
    fn a_list_holds_one_item_per_look_alike() {
        let baskets: Vec<Vec<ItemIx>> = (0..12).map(|k| vec![k % 4]).collect();
        let mut model = model_of(&distinct(4), &baskets, &[]);
        let everyone = suggest(&model, &Signals::default(), &Weights::default(), 4);
        assert_eq!(everyone.len(), 4);
        model.catalog.items[2].alike = model.catalog.items[1].alike;
        let out = suggest(&model, &Signals::default(), &Weights::default(), 4);
        let items: Vec<ItemIx> = out.iter().map(|s| s.item).collect();
        assert_eq!(items.len(), 3, "{items:?}");
        assert!(
            !(items.contains(&1) && items.contains(&2)),
            "one of the two look-alikes: {items:?}"
        );
    }

    /// A product the caller asks about is named even when everyone buys it.
    #[test]
    fn an_asked_anchor_is_named_even_when_ubiquitous() {
        let model = bananas_and_tents();
        let signals = Signals {
            anchors: vec![0],
            ..Signals::default()
        };
        let out = suggest(&model, &signals, &Weights::default(), 3);
        let pegs = out
            .iter()
            .find(|s| s.item == 2)
            .expect("pegs are suggested");
        assert_eq!(named(&pegs.reason), Some(0), "{:?}", pegs.reason);
    }

    #[test]
    fn live_orders_change_complements_and_cancellations_take_them_back() {
        let mut model = model_of(&distinct(3), &[vec![0], vec![1], vec![2]], &[]);
        let ids = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        model.apply_basket(true, 0, &ids(&["p0", "p2"]));
        assert!(model.complements(0).is_empty(), "a pair seen once is noise");
        model.apply_basket(true, 0, &ids(&["p0", "p2", "p-new"]));
        let with: Vec<ItemIx> = model.complements(0).iter().map(|c| c.0).collect();
        assert_eq!(with, [2], "p-new was seen with p0 once: noise");
        assert_eq!(
            model.item("p-new"),
            Some(3),
            "a product new to the model is added"
        );
        model.apply_basket(false, 0, &ids(&["p0", "p2", "p-new"]));
        assert!(model.complements(0).is_empty());
        assert_eq!(model.baskets[2], 2);
    }

    #[test]
    fn a_sized_style_comes_in_the_customers_size_or_not_at_all() {
        // One style (group 0, category 0) in S, M (out of stock) and L; a
        // best-seller, so every customer is offered it if anything.
        let items = vec![
            (0, 0, true, true, None),
            (0, 0, false, true, None),
            (0, 0, true, true, None),
        ];
        let model = model_with_sizes(
            &items,
            &[Some(0), Some(1), Some(2)],
            &[vec![0], vec![0], vec![2]],
            &[],
        );
        let offered = |size: Option<usize>| {
            let signals = Signals {
                sizes: customer_sizes(
                    &model,
                    &size.map(|s| (0, s)).into_iter().collect::<Vec<_>>(),
                ),
                ..Signals::default()
            };
            suggest(&model, &signals, &Weights::default(), 5)
                .into_iter()
                .map(|s| (s.item, s.fit))
                .collect::<Vec<_>>()
        };
        assert_eq!(offered(Some(0)), [(0, Fit::CustomerSize)]);
        assert_eq!(
            offered(Some(2)),
            [(2, Fit::CustomerSize)],
            "not the best-selling S"
        );
        assert_eq!(offered(Some(1)), [], "M is out of stock: not another size");
        assert_eq!(offered(Some(4)), [], "a size the shop does not sell");
        assert_eq!(offered(None), [(0, Fit::Unknown)], "unknown stays unknown");
    }

    #[test]
    fn best_sellers_of_the_customers_brands_come_first_in_their_category() {
        // 0 was bought (brand 7); 1 and 2 sell equally in the same category,
        // 2 is of the customer's brand.
        let items: Vec<_> = (0..3)
            .map(|i| (i, 0, true, true, Some(if i == 1 { 8 } else { 7 })))
            .collect();
        let model = model_of(&items, &[vec![0], vec![1], vec![2]], &[]);
        let brand = model.brands.get("b7").expect("brand");
        let mut signals = Signals {
            bought: vec![(0, 1)],
            brands: vec![(brand, 1.0)],
            ..Signals::default()
        };
        signals
            .filters
            .bought_groups
            .insert(model.catalog.items[0].group);
        let out = suggest(&model, &signals, &Weights::default(), 2);
        let ids: Vec<ItemIx> = out.iter().map(|s| s.item).collect();
        assert_eq!(ids, [2, 1]);
        assert!(out[0].score > out[1].score);
        assert!(matches!(out[0].reason, Reason::PopularInCategory { .. }));
    }

    proptest! {
        /// Sorting only as far as read gives exactly the fully sorted
        /// list, ties (equal scores) included, for any length read.
        #[test]
        fn best_first_reads_as_the_full_sort(
            scores in proptest::collection::vec(0u8..20, 0..400),
            read in 0usize..450,
        ) {
            let items: Vec<Scored> = scores
                .iter()
                .zip(0u32..)
                .map(|(&s, k)| Scored { item: (k * 7919) % 1000, score: f32::from(s), k })
                .collect();
            let mut sorted = items.clone();
            sorted.sort_by(by_rank);
            let got: Vec<(ItemIx, u32)> =
                BestFirst::new(items).take(read).map(|s| (s.item, s.k)).collect();
            let want: Vec<(ItemIx, u32)> =
                sorted.iter().take(read).map(|s| (s.item, s.k)).collect();
            prop_assert_eq!(got, want);
        }
    }
}
