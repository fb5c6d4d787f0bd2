//! The suggestion model held in memory: everything ranking needs that does
//! not depend on one customer. Built off the request path from the whole
//! history ([`Model::build`], pure), stored as one versioned, compressed
//! artifact in the database ([`Model::encode`]), loaded by every replica,
//! and kept current between builds by the change feed ([`Model::apply_basket`],
//! [`Model::upsert_product`]).

use std::collections::HashMap;

use super::{
    Catalog, ItemInfo, ItemIx, MAX_BASKET_PAIRS, NEIGHBOURS, category_transitions, codec, cosine,
    count,
    validate::{Ranker, Ranking, Validation},
};
use crate::{
    domain::{CategoryPath, Size, SizeDomain},
    store::{CatalogRow, ModelInputs, ViewRow},
};

/// Format of [`Model::encode`]; a replica refuses formats it does not know
/// (and builds its own model instead).
pub const FORMAT: i64 = 5;

/// A gap longer than this between two views of one visitor starts a new
/// browsing session.
const SESSION_GAP_MS: i64 = 30 * 60_000;

/// How a model is built: the knobs that are deployment facts, not ranking
/// strategy.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    /// Top-level categories that are not merchandise (coupons, fees, fuel):
    /// never suggested, matched case-insensitively on the first level of a
    /// product's category path.
    pub non_merchandise: Vec<String>,
    /// Half-life of "popular now", in days: an order this old counts half
    /// as much as one from the newest day of the history.
    pub popularity_half_life_days: f64,
}

/// The documented default of [`ModelConfig::non_merchandise`].
pub const DEFAULT_NON_MERCHANDISE: &[&str] = &[
    "Coupons",
    "Coupon",
    "Gift Cards",
    "Fees",
    "Services",
    "Fuel",
    "Postage",
    "Shipping",
    "Donations",
    "Miscellaneous",
];

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            non_merchandise: DEFAULT_NON_MERCHANDISE
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
            popularity_half_life_days: 28.0,
        }
    }
}

impl ModelConfig {
    /// Whether a product of this stored category path is merchandise.
    pub fn is_merchandise(&self, category_path: &str) -> bool {
        let path = CategoryPath::from_stored(category_path);
        !path.is_empty()
            && !self
                .non_merchandise
                .iter()
                .any(|c| c.eq_ignore_ascii_case(path.top()))
    }
}

/// Strings interned as dense indexes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Names {
    /// Names by index.
    pub names: Vec<String>,
    /// Looked up for every purchase line and bought style of a first
    /// read: hashed with foldhash (randomly seeded per process) rather
    /// than SipHash, which cost several times as much per id.
    index: HashMap<String, u32, foldhash::fast::RandomState>,
}

impl Names {
    /// The index of `s`, added when new.
    pub fn intern(&mut self, s: &str) -> u32 {
        if let Some(i) = self.index.get(s) {
            return *i;
        }
        let i = self.names.len() as u32;
        self.names.push(s.to_owned());
        self.index.insert(s.to_owned(), i);
        i
    }

    /// The index of `s`, when known.
    pub fn get(&self, s: &str) -> Option<u32> {
        self.index.get(s).copied()
    }

    fn from_names(names: Vec<String>) -> Self {
        let index = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), i as u32))
            .collect();
        Self { names, index }
    }
}

/// The in-memory model.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Model {
    /// When it was built (ms).
    pub built_at: i64,
    /// The last change-feed entry the build had seen.
    pub as_of_seq: i64,
    /// Items, categories, popularity lists, category transitions.
    pub catalog: Catalog,
    /// Product ids.
    pub products: Names,
    /// Style groups.
    pub groups: Names,
    /// Brands.
    pub brands: Names,
    /// Size domains, as [`SizeDomain::key`].
    pub size_domains: Names,
    /// Size labels.
    pub size_labels: Names,
    /// What items are to a customer ([`alike_key`]).
    pub alikes: Names,
    /// Per style: its sized variants, smallest size first. Derived from the
    /// items, not stored.
    pub variants: Vec<Vec<ItemIx>>,
    /// Per size domain: the labels the catalogue sells, smallest first.
    /// Derived from the items, not stored.
    pub domain_sizes: Vec<Vec<u32>>,
    /// Counted orders containing each item.
    pub baskets: Vec<u32>,
    /// Orders containing each item weighted by recency as of
    /// `recent_as_of` (an order placed then counts 1, one half-life older
    /// 0.5): "popular now".
    pub recent: Vec<f32>,
    /// The newest order time the recency weights are relative to (ms).
    pub recent_as_of: i64,
    /// The half-life of recency weights, in days.
    pub half_life_days: f64,
    /// Per item: partners bought in the same orders, with the orders they
    /// share (the strongest [`NEIGHBOURS`] by cosine at build time, plus
    /// pairs added live since).
    pub partners: Vec<Vec<(ItemIx, u32)>>,
    /// Per style: days after which it may be suggested again once bought
    /// (the longest of its products; none when any never comes back).
    /// Derived from the items, not stored.
    pub group_replenish: Vec<Option<u32>>,
    /// Per item: items viewed in the same sessions (cosine), strongest first.
    pub coviewed: Vec<Vec<(ItemIx, f32)>>,
    /// Per item: items bought by the same customers (cosine over customers,
    /// not orders), strongest first.
    pub also_bought: Vec<Vec<(ItemIx, f32)>>,
    /// Per item: distinct customers who bought it, at build time (what
    /// makes an item ubiquitous, and the base of a pair's lift).
    pub buyers: Vec<u32>,
    /// Customers with at least one order, at build time.
    pub customers: u32,
    /// Orders counted (at build time, plus those applied since).
    pub orders: u32,
    /// The ranker this model is served with, and the numbers that chose
    /// it ([`super::validate`]).
    pub ranking: Ranking,
    /// Pairs of size domains of one system, with how many customers bought
    /// in both and how many of them mostly in the same size there: whether
    /// a size carries from one to the other in this shop.
    pub size_pairs: Vec<SizePair>,
}

/// Two size domains (indexes, `a < b`) and their buyers' sizes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SizePair {
    /// One domain.
    pub a: u32,
    /// The other.
    pub b: u32,
    /// Customers who bought sized items in both.
    pub both: u32,
    /// Of those, the ones whose most bought size is the same in both.
    pub agree: u32,
    /// Cohen's kappa of those sizes: how far their agreement is above what
    /// two unrelated domains with the same spread of sizes would show (0:
    /// chance, 1: always the same). Purchases include sizes later sent
    /// back, so it understates what customers keep.
    pub kappa: f32,
}

/// Kappa a pair's sizes must reach before a size carries from one domain
/// to the other ("moderate agreement" on the usual scale).
pub const CARRY_KAPPA: f32 = 0.4;
/// Customers who bought in both domains of a pair before it says anything.
pub const CARRY_MIN_CUSTOMERS: u32 = 20;

/// Per pair of size domains of one system, the customers who bought in
/// both and those whose most bought size is the same in both (ties to the
/// smaller label index).
fn size_pairs(
    items: &[ItemInfo],
    customers: &[Vec<(ItemIx, u32)>],
    domains: &Names,
) -> Vec<SizePair> {
    let system = |d: u32| SizeDomain::from_key(&domains.names[d as usize]).system;
    // Per pair: customers, agreements, and each side's sizes (for chance).
    type Sides = (HashMap<u32, u32>, HashMap<u32, u32>);
    let mut pairs: std::collections::BTreeMap<(u32, u32), (u32, u32, Sides)> = Default::default();
    for c in customers {
        let mut counts: std::collections::BTreeMap<(u32, u32), u32> = Default::default();
        for &(i, n) in c {
            if let Some(size) = items.get(i as usize).and_then(|it| it.size) {
                *counts.entry((size.domain, size.label)).or_insert(0) += n;
            }
        }
        let mut modal: Vec<(u32, u32, u32)> = Vec::new();
        for ((d, l), n) in counts {
            match modal.last_mut() {
                Some(m) if m.0 == d => {
                    if n > m.2 {
                        *m = (d, l, n);
                    }
                }
                _ => modal.push((d, l, n)),
            }
        }
        for (k, x) in modal.iter().enumerate() {
            for y in &modal[k + 1..] {
                if system(x.0) != system(y.0) {
                    continue;
                }
                let e = pairs.entry((x.0, y.0)).or_default();
                e.0 += 1;
                e.1 += u32::from(x.1 == y.1);
                *e.2.0.entry(x.1).or_insert(0) += 1;
                *e.2.1.entry(y.1).or_insert(0) += 1;
            }
        }
    }
    pairs
        .into_iter()
        .map(|((a, b), (both, agree, (la, lb)))| {
            let n = f64::from(both.max(1));
            let chance: f64 = la
                .iter()
                .map(|(l, x)| f64::from(*x) * f64::from(lb.get(l).copied().unwrap_or(0)))
                .sum::<f64>()
                / (n * n);
            let observed = f64::from(agree) / n;
            let kappa = if chance >= 1.0 {
                0.0
            } else {
                (observed - chance) / (1.0 - chance)
            };
            SizePair {
                a,
                b,
                both,
                agree,
                kappa: kappa as f32,
            }
        })
        .collect()
}

/// Reads what [`Model::encode`] wrote of the ranking.
fn decode_ranking(r: &mut codec::Reader<'_>) -> Result<Ranking, String> {
    let ranker = |code: u32| Ranker::of_code(code).ok_or("an unknown ranker");
    let served = ranker(r.u32()?)?;
    let customers = r.u32()?;
    let n = r.u32()?;
    if n as usize > Ranker::ALL.len() {
        return Err("more validations than rankers".into());
    }
    let mut validations = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let ranker = ranker(r.u32()?)?;
        let mut x = || r.i64().map(|b| f64::from_bits(b as u64));
        validations.push(Validation {
            ranker,
            hit_rate: x()?,
            ndcg: x()?,
            previous_hit_rate: x()?,
            z: x()?,
        });
    }
    let learned = match r.u32()? {
        0 => None,
        1 => Some(std::sync::Arc::new(super::learned::Forest::decode(r)?)),
        _ => return Err("an unknown learned-ranker flag".into()),
    };
    Ok(Ranking {
        served,
        customers,
        validations,
        learned,
    })
}

/// Browsing sessions (one visitor's product views with no long gap), as
/// the products viewed in each. `views` are ordered by visitor and time.
pub fn sessions(views: &[ViewRow]) -> Vec<Vec<&str>> {
    let mut out: Vec<Vec<&str>> = Vec::new();
    let mut prev: Option<(&str, i64)> = None;
    for v in views {
        let same =
            prev.is_some_and(|(who, t)| who == v.visitor && v.occurred_at - t <= SESSION_GAP_MS);
        if !same {
            out.push(Vec::new());
        }
        prev = Some((v.visitor.as_str(), v.occurred_at));
        if let Some(s) = out.last_mut() {
            s.push(v.product_id.as_str());
        }
    }
    out
}

/// What is derived from the counts and the catalogue between builds.
#[derive(Debug, Clone, PartialEq)]
pub struct Derived {
    popular: super::PopularLists,
    group_replenish: Vec<Option<u32>>,
    variants: Vec<Vec<ItemIx>>,
    domain_sizes: Vec<Vec<u32>>,
}

/// The names items are interned into.
#[derive(Default)]
struct Interned {
    groups: Names,
    brands: Names,
    categories: Names,
    size_domains: Names,
    size_labels: Names,
    alikes: Names,
}

/// Interns the catalog rows as items.
fn item_of(row: &CatalogRow, config: &ModelConfig, n: &mut Interned) -> ItemInfo {
    let (groups, brands, categories) = (&mut n.groups, &mut n.brands, &mut n.categories);
    let size = row.size.as_ref().map(|s| {
        let domain = SizeDomain::of(&CategoryPath::from_stored(&row.category_path), s.system());
        super::ItemSize {
            domain: n.size_domains.intern(&domain.key()),
            label: n.size_labels.intern(s.label()),
        }
    });
    ItemInfo {
        size,
        product_id: row.product_id.clone(),
        group: groups.intern(&row.group_id),
        category: categories.intern(&super::category_key(&row.category_path)),
        price_minor: row.price_minor,
        available: row.available,
        merchandise: row
            .merchandise
            .unwrap_or_else(|| config.is_merchandise(&row.category_path)),
        brand: (!row.brand.is_empty()).then(|| brands.intern(&row.brand)),
        replenish_days: row.replenish_days.and_then(|d| u32::try_from(d).ok()),
        alike: n.alikes.intern(&alike_key(&row.brand, &row.name)),
    }
}

/// Words that say how much or what size, not what: units, pack words and
/// letter sizes.
const MEASURE_WORDS: &[&str] = &[
    "oz", "fl", "floz", "lb", "lbs", "ga", "gal", "gallon", "gallons", "qt", "pt", "ml", "cl", "l",
    "ltr", "litre", "liter", "kg", "g", "gr", "gram", "grams", "ct", "count", "pk", "pack",
    "packs", "pc", "pcs", "dz", "doz", "dozen", "cm", "mm", "ft", "sz", "size", "xxs", "xs", "s",
    "m", "xl", "xxl", "xxxl", "ea", "each",
];

/// Whether `w` is a number ("20", "1.5").
fn number(w: &str) -> bool {
    !w.is_empty() && w.chars().all(|c| c.is_ascii_digit() || c == '.')
}

/// Whether `w` is a quantity in one word ("20oz", "12pk", "1.5l").
fn quantity(w: &str) -> bool {
    let unit = w.trim_start_matches(|c: char| c.is_ascii_digit() || c == '.');
    unit.len() < w.len() && MEASURE_WORDS.contains(&unit)
}

/// What a product is to a customer: its brand and its name in lower case
/// without what is in parentheses, quantities ("20 OZ", "12pk", "2 x 330
/// ml"), pack words or letter sizes. "White Bread 20 OZ" and "White
/// Bread", or "Rain Shell (M)" and "Rain Shell (L)" of one brand, are one
/// thing; "Trail Runner 2" and "Trail Runner 3" are not.
pub fn alike_key(brand: &str, name: &str) -> String {
    let mut bare = String::with_capacity(name.len());
    let mut depth = 0u32;
    for c in name.to_lowercase().chars() {
        match c {
            '(' | '[' => depth += 1,
            ')' | ']' => depth = depth.saturating_sub(1),
            _ if depth == 0 => bare.push(c),
            _ => {}
        }
    }
    let tokens: Vec<&str> = bare
        .split(|c: char| !(c.is_alphanumeric() || c == '.'))
        .map(|w| w.trim_matches('.'))
        .filter(|w| !w.is_empty())
        .collect();
    let mut words: Vec<&str> = Vec::with_capacity(tokens.len());
    let mut k = 0;
    while k < tokens.len() {
        let w = tokens[k];
        let next = tokens.get(k + 1).copied().unwrap_or("");
        if number(w) && (MEASURE_WORDS.contains(&next) || next == "x" || quantity(next)) {
            k += if next == "x" { 2 } else { 1 };
            continue;
        }
        if !quantity(w) && !MEASURE_WORDS.contains(&w) {
            words.push(w);
        }
        k += 1;
    }
    let what = if words.is_empty() {
        bare.split_whitespace().collect::<Vec<_>>().join(" ")
    } else {
        words.join(" ")
    };
    format!("{}|{what}", brand.trim().to_lowercase())
}

/// An item known only from history (bought or viewed, not in the catalog):
/// learnt from, never suggested.
fn unknown_item(product_id: &str, groups: &mut Names) -> ItemInfo {
    ItemInfo {
        product_id: product_id.to_owned(),
        group: groups.intern(product_id),
        category: 0,
        price_minor: 0,
        available: false,
        merchandise: false,
        brand: None,
        replenish_days: None,
        size: None,
        alike: super::NO_ALIKE,
    }
}

/// Each item's strongest partners by cosine (pairs seen twice or more),
/// with their counts.
fn partner_lists(popularity: &[u32], pairs: HashMap<u64, u32>) -> Vec<Vec<(ItemIx, u32)>> {
    let mut lists: Vec<Vec<(ItemIx, u32, f32)>> = vec![Vec::new(); popularity.len()];
    for (key, together) in pairs {
        if together < 2 {
            continue;
        }
        let (a, b) = ((key >> 32) as ItemIx, (key & 0xffff_ffff) as ItemIx);
        let sim = cosine(together, popularity[a as usize], popularity[b as usize]);
        lists[a as usize].push((b, together, sim));
        lists[b as usize].push((a, together, sim));
    }
    lists
        .into_iter()
        .map(|mut l| {
            l.sort_by(|x, y| y.2.total_cmp(&x.2).then(x.0.cmp(&y.0)));
            l.truncate(NEIGHBOURS);
            l.into_iter().map(|(b, n, _)| (b, n)).collect()
        })
        .collect()
}

/// Cosine neighbour lists from set memberships (each set: distinct items).
fn cosine_lists(n_items: usize, sets: &[Vec<ItemIx>]) -> Vec<Vec<(ItemIx, f32)>> {
    let (popularity, pairs) = count(n_items, sets);
    partner_lists(&popularity, pairs)
        .into_iter()
        .enumerate()
        .map(|(a, list)| {
            list.into_iter()
                .map(|(b, n)| (b, cosine(n, popularity[a], popularity[b as usize])))
                .collect()
        })
        .collect()
}

/// Items considered by "also bought" (the most widely bought).
const ALSO_BOUGHT_ITEMS: usize = 5000;
/// Items of one customer considered by "also bought" (those bought most
/// often): enough to describe a taste, bounded so one stock-up account
/// cannot cost millions of pairs.
const ALSO_BOUGHT_PER_CUSTOMER: usize = 300;
/// Neighbours kept per item by "also bought".
const ALSO_BOUGHT_NEIGHBOURS: usize = 100;
/// Customers in common added to the norm of every "also bought"
/// similarity, so that pairs seen for a handful of customers do not
/// outrank well-supported ones (shrinkage).
const ALSO_BOUGHT_SHRINK: f32 = 10.0;

/// Items bought by more than this share of customers are never named as
/// what a suggestion goes with: true of nearly everyone, so it explains
/// nothing ("customers who bought the bananas you have...").
pub const UBIQUITOUS: f64 = 0.15;

/// Fewer buyers than this never make an item ubiquitous: in a shop of a
/// handful of customers a share says nothing.
const UBIQUITOUS_BUYERS: u32 = 20;

/// Pseudo-count that shrinks a pair's lift toward 1, so a pair seen for a
/// couple of customers does not outrank a well-supported one.
const LIFT_PRIOR: f64 = 2.0;

impl Model {
    /// The product ids of the (at most) `n` items bought by the most
    /// customers, most first (then by index): what lists and their reasons
    /// name most often.
    pub fn most_bought(&self, n: usize) -> Vec<String> {
        let mut items: Vec<usize> = (0..self.catalog.items.len()).collect();
        let buyers = |i: usize| self.buyers.get(i).copied().unwrap_or(0);
        let by_buyers = |a: &usize, b: &usize| buyers(*b).cmp(&buyers(*a)).then(a.cmp(b));
        if n < items.len() {
            items.select_nth_unstable_by(n, by_buyers);
            items.truncate(n);
        }
        items.sort_unstable_by(by_buyers);
        items
            .into_iter()
            .map(|i| self.catalog.items[i].product_id.clone())
            .collect()
    }

    /// Whether `item` may be named as what a suggestion goes with: not
    /// marked non-merchandise (fuel, bags, fees), and bought by at most
    /// [`UBIQUITOUS`] of customers.
    pub fn can_anchor(&self, item: ItemIx) -> bool {
        let Some(it) = self.catalog.items.get(item as usize) else {
            return false;
        };
        // Category 0: known only from orders, not marked either way.
        let merchandise = it.merchandise || it.category == 0;
        let buyers = self.buyers.get(item as usize).copied().unwrap_or(0);
        let ubiquitous = buyers >= UBIQUITOUS_BUYERS
            && f64::from(buyers) > UBIQUITOUS * f64::from(self.customers.max(1));
        merchandise && !ubiquitous
    }

    /// How many times likelier an order holding `a` is to hold `b` than
    /// any order (lift), shrunk toward 1; `cos` as [`Model::complements`]
    /// gives it.
    pub fn basket_lift(&self, a: ItemIx, b: ItemIx, cos: f32) -> f32 {
        let pop = |i: ItemIx| f64::from(self.baskets.get(i as usize).copied().unwrap_or(0).max(1));
        let (pa, pb) = (pop(a), pop(b));
        let together = f64::from(cos) * (pa * pb).sqrt();
        let expected = pa * pb / f64::from(self.orders.max(1));
        ((together + LIFT_PRIOR) / (expected + LIFT_PRIOR)) as f32
    }

    /// How many times likelier a buyer of `a` is to buy `b` than any
    /// customer (lift), shrunk toward 1; `sim` as `also_bought` holds it.
    pub fn buyer_lift(&self, a: ItemIx, b: ItemIx, sim: f32) -> f32 {
        let n = |i: ItemIx| f64::from(self.buyers.get(i as usize).copied().unwrap_or(0).max(1));
        let (na, nb) = (n(a), n(b));
        let together = f64::from(sim) * ((na * nb).sqrt() + f64::from(ALSO_BOUGHT_SHRINK));
        let expected = na * nb / f64::from(self.customers.max(1));
        ((together + LIFT_PRIOR) / (expected + LIFT_PRIOR)) as f32
    }
}

/// Item-to-item similarity over customers ("customers who bought X also
/// bought Y"): cosine over the customers who bought each item, shrunk, on
/// the most widely bought items. `customers` holds each customer's items
/// with how many orders contained them.
fn also_bought_lists(n_items: usize, customers: &[Vec<(ItemIx, u32)>]) -> Vec<Vec<(ItemIx, f32)>> {
    let mut buyers = vec![0u32; n_items];
    for c in customers {
        for &(i, _) in c {
            buyers[i as usize] += 1;
        }
    }
    let mut top: Vec<ItemIx> = (0..n_items as ItemIx)
        .filter(|&i| buyers[i as usize] >= 2)
        .collect();
    top.sort_by(|&a, &b| buyers[b as usize].cmp(&buyers[a as usize]).then(a.cmp(&b)));
    top.truncate(ALSO_BOUGHT_ITEMS);
    let n = top.len();
    let mut dense = vec![u32::MAX; n_items];
    for (k, &i) in top.iter().enumerate() {
        dense[i as usize] = k as u32;
    }
    // Upper triangle of the co-buyer counts, row-major.
    let row = |a: usize| a * n - a * (a + 1) / 2;
    let mut together = vec![0u32; n * n.saturating_sub(1) / 2 + 1];
    let mut mine: Vec<(u32, u32)> = Vec::new();
    for c in customers {
        mine.clear();
        mine.extend(c.iter().filter_map(|&(i, times)| {
            let d = dense[i as usize];
            (d != u32::MAX).then_some((times, d))
        }));
        mine.sort_unstable_by(|x, y| y.0.cmp(&x.0).then(x.1.cmp(&y.1)));
        mine.truncate(ALSO_BOUGHT_PER_CUSTOMER);
        let mut ds: Vec<usize> = mine.iter().map(|m| m.1 as usize).collect();
        ds.sort_unstable();
        for (x, &a) in ds.iter().enumerate() {
            let base = row(a);
            for &b in &ds[x + 1..] {
                together[base + (b - a - 1)] += 1;
            }
        }
    }
    let mut lists: Vec<Vec<(ItemIx, f32)>> = vec![Vec::new(); n_items];
    for a in 0..n {
        for b in a + 1..n {
            let t = together[row(a) + (b - a - 1)];
            if t < 2 {
                continue;
            }
            let (ia, ib) = (top[a], top[b]);
            let norm =
                (f64::from(buyers[ia as usize]) * f64::from(buyers[ib as usize])).sqrt() as f32;
            let sim = t as f32 / (norm + ALSO_BOUGHT_SHRINK);
            lists[ia as usize].push((ib, sim));
            lists[ib as usize].push((ia, sim));
        }
    }
    for l in &mut lists {
        l.sort_by(|x, y| y.1.total_cmp(&x.1).then(x.0.cmp(&y.0)));
        l.truncate(ALSO_BOUGHT_NEIGHBOURS);
    }
    lists
}

impl Model {
    /// Builds the model from the history. Pure and CPU-bound: run it on a
    /// blocking thread. `inputs.purchases` must be ordered by customer,
    /// time and order, and `inputs.views` by visitor and time (as
    /// [`crate::store::Store::model_inputs`] reads them).
    pub fn build(inputs: &ModelInputs, config: &ModelConfig, built_at: i64) -> Self {
        let mut products = Names::default();
        let mut names = Interned::default();
        // Category 0 is "none": items known only from history have it.
        names.categories.intern("");
        let mut items: Vec<ItemInfo> = Vec::with_capacity(inputs.catalog.len());
        for row in &inputs.catalog {
            products.intern(&row.product_id);
            items.push(item_of(row, config, &mut names));
        }
        let Interned {
            mut groups,
            brands,
            categories,
            size_domains,
            size_labels,
            alikes,
        } = names;
        let mut ix = |id: &str, items: &mut Vec<ItemInfo>, groups: &mut Names| -> ItemIx {
            let i = products.intern(id);
            if i as usize == items.len() {
                items.push(unknown_item(id, groups));
            }
            i
        };

        // Baskets (distinct items per order), customers' item sets, and
        // each customer's orders as the categories they touched.
        let mut baskets: Vec<Vec<ItemIx>> = Vec::new();
        let mut basket_times: Vec<i64> = Vec::new();
        let mut customers: Vec<HashMap<ItemIx, u32>> = Vec::new();
        let mut histories: Vec<Vec<Vec<u32>>> = Vec::new();
        let mut last: Option<(&str, &str)> = None;
        for p in &inputs.purchases {
            let (customer, order) = (p.customer_id.as_str(), p.order_id.as_str());
            if last.map(|l| l.1) != Some(order) || last.map(|l| l.0) != Some(customer) {
                if last.map(|l| l.0) != Some(customer) {
                    customers.push(HashMap::new());
                    histories.push(Vec::new());
                }
                baskets.push(Vec::new());
                basket_times.push(p.placed_at);
                if let Some(h) = histories.last_mut() {
                    h.push(Vec::new());
                }
                last = Some((customer, order));
            }
            let i = ix(&p.product_id, &mut items, &mut groups);
            if let Some(b) = baskets.last_mut()
                && !b.contains(&i)
            {
                b.push(i);
                if let Some(c) = customers.last_mut() {
                    *c.entry(i).or_insert(0) += 1;
                }
            }
            let it = &items[i as usize];
            if it.merchandise
                && let Some(o) = histories.last_mut().and_then(|h| h.last_mut())
                && !o.contains(&it.category)
            {
                o.push(it.category);
            }
        }
        // Items seen only in browsing join before anything is counted, so
        // every per-item list has one entry per item.
        let sessions: Vec<Vec<ItemIx>> = sessions(&inputs.views)
            .into_iter()
            .map(|s| {
                let mut ixs: Vec<ItemIx> = Vec::with_capacity(s.len());
                for p in s {
                    let i = ix(p, &mut items, &mut groups);
                    if !ixs.contains(&i) {
                        ixs.push(i);
                    }
                }
                ixs
            })
            .collect();
        let (popularity, pairs) = count(items.len(), &baskets);
        let partners = partner_lists(&popularity, pairs);
        let mut buyers = vec![0u32; items.len()];
        for c in &customers {
            for &i in c.keys() {
                buyers[i as usize] += 1;
            }
        }
        let n_customers = u32::try_from(customers.len()).unwrap_or(u32::MAX);
        let n_orders = u32::try_from(baskets.len()).unwrap_or(u32::MAX);
        let customers: Vec<Vec<(ItemIx, u32)>> = customers
            .into_iter()
            .map(|c| {
                let mut v: Vec<(ItemIx, u32)> = c.into_iter().collect();
                v.sort_unstable();
                v
            })
            .collect();
        let also_bought = also_bought_lists(items.len(), &customers);
        let size_pairs = size_pairs(&items, &customers, &size_domains);

        // "Popular now": orders weighted down by age (half-life) from the
        // newest order of the history.
        let newest = basket_times.iter().copied().max().unwrap_or(0);
        let half_life_ms = config.popularity_half_life_days.max(0.1) * 86_400_000.0;
        let mut recent = vec![0f32; items.len()];
        for (b, t) in baskets.iter().zip(&basket_times) {
            let w = 0.5f64.powf((newest - t) as f64 / half_life_ms) as f32;
            for &i in b {
                recent[i as usize] += w;
            }
        }

        let coviewed = cosine_lists(items.len(), &sessions);

        let mut catalog = Catalog::new(items, categories.names, &recent);
        catalog.next_categories = category_transitions(catalog.categories.len(), &histories);
        let n = catalog.items.len();
        let mut partners = partners;
        partners.resize(n, Vec::new());
        recent.resize(n, 0.0);
        let mut model = Self {
            built_at,
            as_of_seq: inputs.as_of_seq,
            catalog,
            products,
            groups,
            brands,
            size_domains,
            size_labels,
            alikes,
            variants: Vec::new(),
            domain_sizes: Vec::new(),
            baskets: popularity,
            group_replenish: Vec::new(),
            recent,
            recent_as_of: newest,
            half_life_days: config.popularity_half_life_days.max(0.1),
            partners,
            coviewed,
            also_bought,
            buyers,
            customers: n_customers,
            orders: n_orders,
            ranking: Ranking::default(),
            size_pairs,
        };
        model.derive_groups();
        model
    }

    /// The estimate whose size carries to `domain`, where the profile has
    /// none of its own ([`crate::fit::SizeProfile::related`], over the
    /// pairs [`Model::sizes_carry`] accepts).
    pub fn carried_size<'a>(
        &self,
        profile: &'a crate::fit::SizeProfile,
        domain: &SizeDomain,
    ) -> Option<&'a crate::fit::Estimate> {
        let target = self.size_domains.get(&domain.key())?;
        profile.related(domain, &|source| {
            self.size_domains
                .get(&source.key())
                .is_some_and(|s| self.sizes_carry(s, target))
        })
    }

    /// Whether a size carries between two size domains in this shop: at
    /// least [`CARRY_MIN_CUSTOMERS`] bought in both, and their sizes there
    /// agree well above chance (kappa at least [`CARRY_KAPPA`]).
    pub fn sizes_carry(&self, x: u32, y: u32) -> bool {
        let (a, b) = (x.min(y), x.max(y));
        self.size_pairs.iter().any(|p| {
            p.a == a && p.b == b && p.both >= CARRY_MIN_CUSTOMERS && p.kappa >= CARRY_KAPPA
        })
    }

    /// [`Model::build`] after validating the candidate rankers on the
    /// inputs' own latest orders; the model serves the one picked.
    pub fn build_validated(inputs: &ModelInputs, config: &ModelConfig, built_at: i64) -> Self {
        let ranking = super::validate::validate(inputs, config, &super::Weights::default());
        let mut model = Self::build(inputs, config, built_at);
        model.ranking = ranking;
        model
    }

    /// The strategy served outside experiments: the picked ranker over
    /// the default weights.
    pub fn served_weights(&self) -> super::Weights {
        self.ranking.served.weights_over(&super::Weights::default())
    }

    /// Recomputes what is derived per style from the items.
    fn derive_groups(&mut self) {
        self.group_replenish = self.group_replenish_days();
        (self.variants, self.domain_sizes) = self.sized_variants();
    }

    /// See [`Model::variants`] and [`Model::domain_sizes`].
    fn sized_variants(&self) -> (Vec<Vec<ItemIx>>, Vec<Vec<u32>>) {
        let mut variants: Vec<Vec<ItemIx>> = vec![Vec::new(); self.groups.names.len()];
        let mut labels: Vec<Vec<u32>> = vec![Vec::new(); self.size_domains.names.len()];
        for (i, it) in self.catalog.items.iter().enumerate() {
            if let Some(size) = it.size {
                variants[it.group as usize].push(i as ItemIx);
                let l = &mut labels[size.domain as usize];
                if !l.contains(&size.label) {
                    l.push(size.label);
                }
            }
        }
        let rank = |domain: u32, label: u32| {
            let (system, label) = (
                SizeDomain::from_key(&self.size_domains.names[domain as usize]).system,
                &self.size_labels.names[label as usize],
            );
            Size::from_stored(label, system.as_str())
                .rank()
                .unwrap_or(f64::MAX)
        };
        for list in &mut variants {
            list.sort_by(|&a, &b| {
                let (x, y) = (
                    self.catalog.items[a as usize].size,
                    self.catalog.items[b as usize].size,
                );
                let key =
                    |s: Option<super::ItemSize>| s.map_or(f64::MAX, |s| rank(s.domain, s.label));
                key(x).total_cmp(&key(y)).then(a.cmp(&b))
            });
        }
        for (d, list) in labels.iter_mut().enumerate() {
            list.sort_by(|&a, &b| {
                rank(d as u32, a)
                    .total_cmp(&rank(d as u32, b))
                    .then(a.cmp(&b))
            });
        }
        (variants, labels)
    }

    /// The size of an item, when it has one.
    pub fn size_of(&self, item: ItemIx) -> Option<(SizeDomain, Size)> {
        let s = self.catalog.items.get(item as usize)?.size?;
        let domain = SizeDomain::from_key(&self.size_domains.names[s.domain as usize]);
        let size = Size::from_stored(
            &self.size_labels.names[s.label as usize],
            domain.system.as_str(),
        );
        Some((domain, size))
    }

    /// The sizes the catalogue sells in a domain, smallest first.
    pub fn catalogue_sizes(&self, domain: &SizeDomain) -> Vec<Size> {
        let Some(d) = self.size_domains.get(&domain.key()) else {
            return Vec::new();
        };
        self.domain_sizes
            .get(d as usize)
            .map_or(&[][..], Vec::as_slice)
            .iter()
            .map(|&l| {
                Size::from_stored(&self.size_labels.names[l as usize], domain.system.as_str())
            })
            .collect()
    }

    /// Whether any product has a size (else nobody's sizes need reading).
    pub fn has_sizes(&self) -> bool {
        !self.size_domains.names.is_empty()
    }

    /// See [`Model::group_replenish`].
    fn group_replenish_days(&self) -> Vec<Option<u32>> {
        let mut replenish: Vec<Option<Option<u32>>> = vec![None; self.groups.names.len()];
        for it in &self.catalog.items {
            let e = &mut replenish[it.group as usize];
            *e = Some(match *e {
                None => it.replenish_days,
                Some(Some(a)) => it.replenish_days.map(|b| a.max(b)),
                Some(None) => None,
            });
        }
        replenish.into_iter().map(Option::flatten).collect()
    }

    /// The index of a product, when the model knows it.
    pub fn item(&self, product_id: &str) -> Option<ItemIx> {
        self.products.get(product_id)
    }

    /// A product's bought-together partners by cosine (pairs seen in two
    /// orders or more), strongest first, at most [`NEIGHBOURS`].
    pub fn complements(&self, item: ItemIx) -> Vec<(ItemIx, f32)> {
        let mut out = Vec::new();
        self.complements_into(item, &mut out);
        out.sort_by(|x, y| y.1.total_cmp(&x.1).then(x.0.cmp(&y.0)));
        out
    }

    /// The partners [`Model::complements`] gives, written into `out`
    /// (cleared first) in no particular order: ranking adds them up and
    /// needs no order, and a list no longer than [`NEIGHBOURS`] (as every
    /// list is when built) is not sorted at all.
    pub fn complements_into(&self, item: ItemIx, out: &mut Vec<(ItemIx, f32)>) {
        out.clear();
        let Some(list) = self.partners.get(item as usize) else {
            return;
        };
        let pop = |i: ItemIx| self.baskets.get(i as usize).copied().unwrap_or(0);
        out.extend(
            list.iter()
                .filter(|(_, n)| *n >= 2)
                .map(|&(b, n)| (b, cosine(n, pop(item).max(n), pop(b).max(n)))),
        );
        if out.len() > NEIGHBOURS {
            out.sort_by(|x, y| y.1.total_cmp(&x.1).then(x.0.cmp(&y.0)));
            out.truncate(NEIGHBOURS);
        }
    }

    /// The index of `product_id`, added (as an item not to suggest until
    /// its catalog row arrives) when new.
    fn item_or_add(&mut self, product_id: &str) -> ItemIx {
        let i = self.products.intern(product_id);
        if i as usize == self.catalog.items.len() {
            let item = unknown_item(product_id, &mut self.groups);
            self.catalog.items.push(item);
            self.catalog.popularity_score.push(0.0);
            self.baskets.push(0);
            self.recent.push(0.0);
            self.partners.push(Vec::new());
            self.coviewed.push(Vec::new());
            self.also_bought.push(Vec::new());
            self.buyers.push(0);
        }
        i
    }

    /// The recency weight of an order placed at `placed_at` (ms), moving
    /// the reference forward (and every weight down with it: exponential
    /// decay keeps its ratios) when the order is the newest yet.
    fn recency_weight(&mut self, placed_at: i64) -> f32 {
        let half_life_ms = self.half_life_days.max(0.1) * 86_400_000.0;
        if placed_at > self.recent_as_of {
            let factor = 0.5f64.powf((placed_at - self.recent_as_of) as f64 / half_life_ms) as f32;
            for r in &mut self.recent {
                *r *= factor;
            }
            self.recent_as_of = placed_at;
        }
        0.5f64.powf((self.recent_as_of - placed_at) as f64 / half_life_ms) as f32
    }

    /// One order's products counted in (`added`) or out, as the change
    /// feed reports them.
    pub fn apply_basket(&mut self, added: bool, placed_at: i64, products: &[String]) {
        let weight = self.recency_weight(placed_at);
        self.orders = if added {
            self.orders.saturating_add(1)
        } else {
            self.orders.saturating_sub(1)
        };
        let mut items: Vec<ItemIx> = Vec::with_capacity(products.len());
        for p in products {
            let i = self.item_or_add(p);
            if !items.contains(&i) {
                items.push(i);
            }
        }
        for &i in &items {
            let n = &mut self.baskets[i as usize];
            *n = if added {
                n.saturating_add(1)
            } else {
                n.saturating_sub(1)
            };
            let r = &mut self.recent[i as usize];
            *r = if added {
                *r + weight
            } else {
                (*r - weight).max(0.0)
            };
        }
        let paired = &items[..items.len().min(MAX_BASKET_PAIRS)];
        for (x, &a) in paired.iter().enumerate() {
            for &b in &paired[x + 1..] {
                self.bump_pair(a, b, added);
                self.bump_pair(b, a, added);
            }
        }
    }

    fn bump_pair(&mut self, a: ItemIx, b: ItemIx, added: bool) {
        let list = &mut self.partners[a as usize];
        match list.iter().position(|(x, _)| *x == b) {
            Some(k) if added => list[k].1 = list[k].1.saturating_add(1),
            Some(k) => {
                list[k].1 = list[k].1.saturating_sub(1);
                if list[k].1 == 0 {
                    list.remove(k);
                }
            }
            None if added => list.push((b, 1)),
            None => {}
        }
    }

    /// A catalog product created or changed (stock, price, category): the
    /// next request ranks with its new facts.
    pub fn upsert_product(&mut self, row: &CatalogRow, config: &ModelConfig) {
        let i = self.item_or_add(&row.product_id) as usize;
        let mut names = Interned {
            groups: std::mem::take(&mut self.groups),
            brands: std::mem::take(&mut self.brands),
            categories: Names::from_names(std::mem::take(&mut self.catalog.categories)),
            size_domains: std::mem::take(&mut self.size_domains),
            size_labels: std::mem::take(&mut self.size_labels),
            alikes: std::mem::take(&mut self.alikes),
        };
        let item = item_of(row, config, &mut names);
        self.groups = names.groups;
        self.brands = names.brands;
        self.size_domains = names.size_domains;
        self.size_labels = names.size_labels;
        self.alikes = names.alikes;
        self.catalog.categories = names.categories.names;
        self.catalog
            .next_categories
            .resize(self.catalog.categories.len(), Vec::new());
        self.catalog
            .popular_in
            .resize(self.catalog.categories.len(), Vec::new());
        self.catalog.items[i] = item;
    }

    /// Recomputes the best-seller lists after live changes (counts or
    /// catalog facts).
    pub fn refresh_popular(&mut self) {
        let derived = self.derived();
        self.install(derived);
    }

    /// What [`Model::refresh_popular`] recomputes, computed without
    /// changing the model (so a replica can do it under a read lock).
    pub fn derived(&self) -> Derived {
        let (variants, domain_sizes) = self.sized_variants();
        Derived {
            popular: self.catalog.popular_lists(&self.recent),
            group_replenish: self.group_replenish_days(),
            variants,
            domain_sizes,
        }
    }

    /// Puts what [`Model::derived`] computed in place.
    pub fn install(&mut self, derived: Derived) {
        self.catalog.install(derived.popular);
        self.group_replenish = derived.group_replenish;
        self.variants = derived.variants;
        self.domain_sizes = derived.domain_sizes;
    }

    /// The model as bytes (deflate-compressed), see [`FORMAT`].
    pub fn encode(&self) -> Vec<u8> {
        let mut w = codec::Writer::default();
        w.i64(self.built_at);
        w.i64(self.as_of_seq);
        w.i64(self.recent_as_of);
        w.i64(self.half_life_days.to_bits() as i64);
        w.strings(&self.products.names);
        w.strings(&self.groups.names);
        w.strings(&self.brands.names);
        w.strings(&self.catalog.categories);
        w.u32(self.catalog.items.len() as u32);
        for (i, it) in self.catalog.items.iter().enumerate() {
            w.u32(it.group);
            w.u32(it.category);
            w.i64(it.price_minor);
            w.u32(u32::from(it.available) | (u32::from(it.merchandise) << 1));
            w.u32(it.brand.map_or(u32::MAX, |b| b));
            w.u32(it.replenish_days.unwrap_or(u32::MAX));
            w.f32(self.catalog.popularity_score.get(i).copied().unwrap_or(0.0));
            w.f32(self.recent.get(i).copied().unwrap_or(0.0));
        }
        w.u32s(&self.baskets);
        w.u32_lists(&self.catalog.popular_in);
        w.u32s(&self.catalog.popular);
        w.pair_lists(&self.catalog.next_categories, |x| x);
        w.count_lists(&self.partners);
        w.pair_lists(&self.coviewed, |x| x);
        w.pair_lists(&self.also_bought, |x| x);
        w.strings(&self.size_domains.names);
        w.strings(&self.size_labels.names);
        let size = |f: fn(super::ItemSize) -> u32| -> Vec<u32> {
            self.catalog
                .items
                .iter()
                .map(|it| it.size.map_or(u32::MAX, f))
                .collect()
        };
        w.u32s(&size(|s| s.domain));
        w.u32s(&size(|s| s.label));
        w.u32s(&self.buyers);
        w.u32(self.customers);
        w.u32(self.orders);
        w.strings(&self.alikes.names);
        let alike: Vec<u32> = self.catalog.items.iter().map(|it| it.alike).collect();
        w.u32s(&alike);
        w.u32(self.ranking.served.code());
        w.u32(self.ranking.customers);
        w.u32(self.ranking.validations.len() as u32);
        for v in &self.ranking.validations {
            w.u32(v.ranker.code());
            for x in [v.hit_rate, v.ndcg, v.previous_hit_rate, v.z] {
                w.i64(x.to_bits() as i64);
            }
        }
        match &self.ranking.learned {
            Some(forest) => {
                w.u32(1);
                forest.encode(&mut w);
            }
            None => w.u32(0),
        }
        w.u32(self.size_pairs.len() as u32);
        for p in &self.size_pairs {
            for x in [p.a, p.b, p.both, p.agree] {
                w.u32(x);
            }
            w.f32(p.kappa);
        }
        codec::deflate(&w.into_bytes())
    }

    /// Reads bytes made by [`Model::encode`].
    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        let raw = codec::inflate(bytes)?;
        let mut r = codec::Reader::new(&raw);
        let built_at = r.i64()?;
        let as_of_seq = r.i64()?;
        let recent_as_of = r.i64()?;
        let half_life_days = f64::from_bits(r.i64()? as u64);
        let product_names = r.strings()?;
        let groups = Names::from_names(r.strings()?);
        let brands = Names::from_names(r.strings()?);
        let categories = r.strings()?;
        let n = r.u32()? as usize;
        if n != product_names.len() {
            return Err("item count does not match the product names".into());
        }
        let mut items = Vec::with_capacity(n);
        let mut popularity_score = Vec::with_capacity(n);
        let mut recent = Vec::with_capacity(n);
        for product_id in &product_names {
            let group = r.u32()?;
            let category = r.u32()?;
            let price_minor = r.i64()?;
            let flags = r.u32()?;
            let brand = r.u32()?;
            let replenish = r.u32()?;
            popularity_score.push(r.f32()?);
            recent.push(r.f32()?);
            items.push(ItemInfo {
                product_id: product_id.clone(),
                group,
                category,
                price_minor,
                available: flags & 1 != 0,
                merchandise: flags & 2 != 0,
                brand: (brand != u32::MAX).then_some(brand),
                replenish_days: (replenish != u32::MAX).then_some(replenish),
                size: None,
                alike: super::NO_ALIKE,
            });
        }
        let baskets = r.u32s()?;
        let popular_in = r.u32_lists()?;
        let popular = r.u32s()?;
        let next_categories = r.pair_lists(|x| x)?;
        let partners = r.count_lists()?;
        let coviewed = r.pair_lists(|x| x)?;
        let also_bought = r.pair_lists(|x| x)?;
        let size_domains = Names::from_names(r.strings()?);
        let size_labels = Names::from_names(r.strings()?);
        let (domains, labels) = (r.u32s()?, r.u32s()?);
        let (buyers, customers, orders) = (r.u32s()?, r.u32()?, r.u32()?);
        let alikes = Names::from_names(r.strings()?);
        let alike = r.u32s()?;
        if alike.len() != n {
            return Err("look-alike count does not match the items".into());
        }
        for (it, a) in items.iter_mut().zip(alike) {
            it.alike = a;
        }
        let ranking = decode_ranking(&mut r)?;
        let pairs = r.u32()? as usize;
        let mut size_pairs = Vec::with_capacity(pairs.min(1 << 16));
        for _ in 0..pairs {
            let (a, b, both, agree) = (r.u32()?, r.u32()?, r.u32()?, r.u32()?);
            let kappa = r.f32()?;
            if a >= b || b as usize >= size_domains.names.len() {
                return Err("a size pair is out of range".into());
            }
            size_pairs.push(SizePair {
                a,
                b,
                both,
                agree,
                kappa,
            });
        }
        if domains.len() != n || labels.len() != n {
            return Err("size count does not match the items".into());
        }
        for ((it, d), l) in items.iter_mut().zip(domains).zip(labels) {
            if d == u32::MAX {
                continue;
            }
            if d as usize >= size_domains.names.len() || l as usize >= size_labels.names.len() {
                return Err("a size index is out of range".into());
            }
            it.size = Some(super::ItemSize {
                domain: d,
                label: l,
            });
        }
        let mut model = Self {
            built_at,
            as_of_seq,
            catalog: Catalog {
                items,
                categories,
                popular_in,
                popular,
                popularity_score,
                next_categories,
            },
            products: Names::from_names(product_names),
            groups,
            brands,
            size_domains,
            size_labels,
            alikes,
            variants: Vec::new(),
            domain_sizes: Vec::new(),
            baskets,
            group_replenish: Vec::new(),
            recent,
            recent_as_of,
            half_life_days,
            partners,
            coviewed,
            also_bought,
            buyers,
            customers,
            orders,
            ranking,
            size_pairs,
        };
        model.check()?;
        model.derive_groups();
        Ok(model)
    }

    /// Every index in range, so ranking can index without checks.
    fn check(&self) -> Result<(), String> {
        let n = self.catalog.items.len();
        let c = self.catalog.categories.len();
        let ok_item = |i: &u32| (*i as usize) < n;
        let lists_ok = [&self.coviewed, &self.also_bought]
            .iter()
            .all(|l| l.len() == n && l.iter().flatten().all(|(i, _)| ok_item(i)));
        let fine = self.baskets.len() == n
            && self.buyers.len() == n
            && self.recent.len() == n
            && self.partners.len() == n
            && self.partners.iter().flatten().all(|(i, _)| ok_item(i))
            && lists_ok
            && self.catalog.popular.iter().all(ok_item)
            && self.catalog.popular_in.len() == c
            && self.catalog.popular_in.iter().flatten().all(ok_item)
            && self.catalog.next_categories.len() == c
            && self
                .catalog
                .next_categories
                .iter()
                .flatten()
                .all(|(k, _)| (*k as usize) < c)
            && self.catalog.items.iter().all(|it| {
                (it.alike == super::NO_ALIKE || (it.alike as usize) < self.alikes.names.len())
                    && (it.group as usize) < self.groups.names.len()
                    && (it.category as usize) < c
                    && it
                        .brand
                        .is_none_or(|b| (b as usize) < self.brands.names.len())
            });
        if fine {
            Ok(())
        } else {
            Err("an index is out of range".into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::PurchaseRow;

    fn product(id: &str) -> CatalogRow {
        CatalogRow {
            product_id: id.into(),
            name: id.into(),
            group_id: id.into(),
            category_path: "Gear > Packs".into(),
            price_minor: 100,
            available: true,
            brand: String::new(),
            replenish_days: None,
            merchandise: None,
            size: None,
        }
    }

    fn bought(customer: &str, order: &str, product: &str) -> PurchaseRow {
        PurchaseRow {
            customer_id: customer.into(),
            order_id: order.into(),
            placed_at: 1_000,
            product_id: product.into(),
        }
    }

    fn viewed(visitor: &str, product: &str) -> ViewRow {
        ViewRow {
            visitor: visitor.into(),
            product_id: product.into(),
            occurred_at: 1_000,
        }
    }

    #[test]
    fn look_alikes_share_a_key_and_different_things_do_not() {
        let same = |a: (&str, &str), b: (&str, &str)| alike_key(a.0, a.1) == alike_key(b.0, b.1);
        assert!(same(
            ("National", "Mainstream White Bread 20 OZ"),
            ("National", "Mainstream White Bread")
        ));
        assert!(same(
            ("Private", "Fluid Milk White Only 1 GA"),
            ("Private", "FLUID MILK WHITE ONLY")
        ));
        assert!(same(
            ("Kestrel", "Rain Shell (M)"),
            ("Kestrel", "Rain Shell (L)")
        ));
        assert!(same(
            ("", "Soft Drinks 12pk 12oz"),
            ("", "Soft drinks 2 x 330 ml")
        ));
        assert!(same(("", "Bananas 40 LB"), ("", "Bananas")));
        assert!(!same(
            ("National", "White Bread"),
            ("Private", "White Bread")
        ));
        assert!(!same(
            ("Strider", "Trail Runner 2"),
            ("Strider", "Trail Runner 3")
        ));
        assert!(!same(("", "Merino Socks"), ("", "Merino Gloves")));
        // A name that is all measure still has a key of its own.
        assert!(!same(("", "12 OZ"), ("", "16 OZ")));
    }

    #[test]
    fn the_most_bought_come_by_buyers_then_by_index_and_no_more_than_asked() {
        let inputs = ModelInputs {
            as_of_seq: 0,
            catalog: vec![
                product("pack"),
                product("lamp"),
                product("map"),
                product("tent"),
            ],
            purchases: vec![
                bought("c1", "o1", "lamp"),
                bought("c1", "o2", "lamp"),
                bought("c2", "o3", "lamp"),
                bought("c2", "o3", "map"),
                bought("c3", "o4", "tent"),
                bought("c3", "o4", "map"),
            ],
            views: Vec::new(),
        };
        let model = Model::build(&inputs, &ModelConfig::default(), 0);
        // lamp and map: two customers each (lamp three orders); tent one;
        // pack none. Ties go to the item met first.
        let first = model.item("lamp").min(model.item("map"));
        let first = model.catalog.items[first.expect("known") as usize]
            .product_id
            .clone();
        let second = if first == "lamp" { "map" } else { "lamp" };
        assert_eq!(model.most_bought(3), [first.as_str(), second, "tent"]);
        assert_eq!(model.most_bought(1), [first.as_str()]);
        assert_eq!(model.most_bought(10).len(), 4);
        assert!(model.most_bought(0).is_empty());
    }

    /// Browsing of products neither in the catalogue nor ever bought (a
    /// catalogue sync behind the storefront) used to leave the per-item
    /// lists shorter than the items: every replica refused the snapshot.
    #[test]
    fn items_seen_only_in_browsing_give_a_model_every_replica_reads() {
        let inputs = ModelInputs {
            as_of_seq: 0,
            catalog: vec![product("pack"), product("lamp")],
            purchases: vec![
                bought("c1", "o1", "pack"),
                bought("c1", "o1", "lamp"),
                bought("c2", "o2", "pack"),
                bought("c2", "o2", "map"),
            ],
            views: vec![
                viewed("v1", "pack"),
                viewed("v1", "ghost"),
                viewed("v1", "lamp"),
                viewed("v2", "ghost"),
                viewed("v2", "phantom"),
            ],
        };
        let model = Model::build(&inputs, &ModelConfig::default(), 0);
        let n = model.catalog.items.len();
        assert_eq!(n, 5, "pack, lamp, map, ghost, phantom");
        assert_eq!(model.baskets.len(), n);
        assert_eq!(model.also_bought.len(), n);
        assert_eq!(model.recent.len(), n);
        let read = Model::decode(&model.encode()).expect("the snapshot reads back");
        assert_eq!(read.catalog.items.len(), n);
    }
}
