//! Candidate generation and ranking.

use std::collections::{HashMap, HashSet};

use super::{Catalog, CoModel, Filters, ItemIx};

/// Source weights and limits: what an A/B variant changes. Stored as JSON
/// with experiments; fields missing from stored JSON take the defaults.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Weights {
    /// Complements of what the customer bought or is looking at.
    pub complement: f32,
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
}

impl Default for Weights {
    fn default() -> Self {
        Self {
            complement: 1.0,
            affinity: 2.0,
            popular: 0.5,
            coviewed: 1.0,
            new_category: 0.5,
            brand: 0.5,
            price_fit: 0.3,
            per_category: 3,
            affinity_categories: 8,
            new_categories: 3,
            recent_boost: 1.0,
        }
    }
}

/// What is known about the customer and the request.
#[derive(Debug, Clone, Default)]
pub struct Signals {
    /// Items bought, with how many times.
    pub bought: Vec<(ItemIx, u32)>,
    /// Of those, the ones bought recently (weighted up as seeds: what goes
    /// with this week's purchases matters more than with last year's).
    pub recent: Vec<ItemIx>,
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
}

/// Why an item is suggested.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Often bought together with this item (bought or asked about).
    Complement { with: ItemIx },
    /// Often viewed in the same visit as this item (viewed, not bought).
    CoViewed { with: ItemIx },
    /// Customers who bought from `from` often moved into `category` next;
    /// this customer has not bought from it.
    NewCategory { from: u32, category: u32 },
    /// Popular in a category the customer buys from.
    PopularInCategory { category: u32 },
    /// Popular overall.
    Popular,
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
}

#[derive(Default, Clone, Copy)]
struct Candidate {
    complement: f32,
    best_seed: Option<(ItemIx, f32)>,
    coviewed: f32,
    best_viewed: Option<(ItemIx, f32)>,
    affinity: f32,
    category: Option<u32>,
    new_category: f32,
    moved: Option<(u32, u32)>,
    popular: f32,
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

/// The categories of the customer's purchases, with units.
fn bought_categories(catalog: &Catalog, signals: &Signals) -> (Vec<(u32, u32)>, u32) {
    let mut by_category: HashMap<u32, u32> = HashMap::new();
    let mut total = 0u32;
    for &(i, times) in &signals.bought {
        if let Some(it) = catalog.items.get(i as usize) {
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

/// Where a source accumulates in a candidate: its total, and the seed that
/// contributed most.
type Slot = fn(&mut Candidate) -> (&mut f32, &mut Option<(ItemIx, f32)>);

/// Adds the neighbours of `seeds` to the candidates through `slot`.
fn spread(
    candidates: &mut HashMap<ItemIx, Candidate>,
    neighbours: &[Vec<(ItemIx, f32)>],
    mut seeds: Vec<(ItemIx, f32)>,
    slot: Slot,
    keep: impl Fn(ItemIx, ItemIx) -> bool,
) {
    // Seeds are visited in a fixed order so that float sums, and the seed
    // named in the reason, do not depend on how the caller ordered them.
    seeds.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.total_cmp(&a.1)));
    for (seed, w) in seeds {
        let Some(list) = neighbours.get(seed as usize) else {
            continue;
        };
        for &(n, sim) in list.iter().filter(|(n, _)| keep(seed, *n)) {
            let (total, best) = slot(candidates.entry(n).or_default());
            let contribution = w * sim;
            *total += contribution;
            if best.is_none_or(|(_, b)| contribution > b) {
                *best = Some((seed, contribution));
            }
        }
    }
}

/// Ranks suggestions: every source adds candidates, every candidate passes
/// the hard filters, then a per-category cap keeps the list diverse. The
/// output is deterministic for the same input (ties break on item index).
pub fn suggest(
    model: &CoModel,
    catalog: &Catalog,
    signals: &Signals,
    weights: &Weights,
    limit: usize,
) -> Vec<Suggestion> {
    let mut candidates: HashMap<ItemIx, Candidate> = HashMap::new();

    // Complements: neighbours of anchors (double weight) and of purchases.
    let seeds: Vec<(ItemIx, f32)> = signals
        .anchors
        .iter()
        .map(|&a| (a, 2.0f32))
        .chain(signals.bought.iter().map(|&(i, times)| {
            let boost = if signals.recent.contains(&i) {
                weights.recent_boost
            } else {
                1.0
            };
            (i, boost * (1.0 + (times as f32).ln()))
        }))
        .collect();
    spread(
        &mut candidates,
        &model.neighbours,
        seeds,
        |c| (&mut c.complement, &mut c.best_seed),
        |_, _| true,
    );

    // Co-viewed: alternatives to what was looked at and not bought.
    let viewed: Vec<(ItemIx, f32)> = signals.viewed.iter().map(|&v| (v, 1.0)).collect();
    // An alternative stays in the department of what was viewed (another
    // jacket for a jacket, not socks for a dress).
    let department = |i: ItemIx| {
        catalog
            .items
            .get(i as usize)
            .and_then(|it| catalog.categories.get(it.category as usize))
            .map(|c| c.split(" > ").next().unwrap_or_default())
    };
    spread(
        &mut candidates,
        &model.coviewed,
        viewed,
        |c| (&mut c.coviewed, &mut c.best_viewed),
        |seed, n| department(seed).is_some() && department(seed) == department(n),
    );

    // Affinity: popular items of the categories the customer buys most.
    let (top, total) = bought_categories(catalog, signals);
    for &(category, n) in top.iter().take(weights.affinity_categories) {
        let share = n as f32 / total.max(1) as f32;
        for &i in catalog
            .popular_in
            .get(category as usize)
            .map_or(&[][..], |v| v.as_slice())
        {
            let c = candidates.entry(i).or_default();
            let brand = catalog.items[i as usize].brand.map_or(0.0, |b| {
                signals
                    .brands
                    .iter()
                    .find(|(x, _)| *x == b)
                    .map_or(0.0, |(_, s)| *s)
            });
            let a = share * catalog.popularity_score[i as usize] * (1.0 + weights.brand * brand);
            if a > c.affinity {
                c.affinity = a;
                c.category = Some(category);
            }
        }
    }

    // Next best purchase in a new category.
    for (category, from, strength) in next_categories(catalog, signals, weights.new_categories) {
        for &i in catalog
            .popular_in
            .get(category as usize)
            .map_or(&[][..], |v| v.as_slice())
        {
            let c = candidates.entry(i).or_default();
            let s = strength * catalog.popularity_score[i as usize];
            if s > c.new_category {
                c.new_category = s;
                c.moved = Some((from, category));
            }
        }
    }

    // Popular overall: the fallback that answers a customer with no history.
    for &i in &catalog.popular {
        candidates.entry(i).or_default().popular = catalog.popularity_score[i as usize];
    }

    let mut scored: Vec<Suggestion> = candidates
        .into_iter()
        .filter(|(item, _)| signals.filters.check(catalog, *item).is_ok())
        .map(|(item, c)| {
            let parts = [
                (weights.complement * c.complement, 0u8),
                (weights.affinity * c.affinity, 1),
                (weights.popular * c.popular, 2),
                (weights.coviewed * c.coviewed, 3),
                (weights.new_category * c.new_category, 4),
            ];
            let mut score = parts.iter().map(|p| p.0).sum::<f32>();
            let price = catalog.items[item as usize].price_minor;
            if let Some((lo, hi)) = signals.price_band
                && price > 0
                && !(lo..=hi).contains(&price)
            {
                score *= 1.0 - weights.price_fit.clamp(0.0, 1.0);
            }
            // The reason names the strongest specific source; "popular"
            // only when nothing more specific applies (an agent can say
            // more about an item that goes with a purchase than about a
            // best-seller).
            let main = parts
                .iter()
                .copied()
                .filter(|p| p.1 != 2 && p.0 > 0.0)
                .max_by(|a, b| a.0.total_cmp(&b.0).then(b.1.cmp(&a.1)))
                .map_or(2, |p| p.1);
            let reason = match (main, c.best_seed, c.best_viewed, c.category, c.moved) {
                (0, Some((with, _)), ..) => Reason::Complement { with },
                (3, _, Some((with, _)), ..) => Reason::CoViewed { with },
                (1, _, _, Some(category), _) => Reason::PopularInCategory { category },
                (4, .., Some((from, category))) => Reason::NewCategory { from, category },
                _ => Reason::Popular,
            };
            Suggestion {
                item,
                score,
                reason,
            }
        })
        .collect();
    scored.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.item.cmp(&b.item)));

    // One item per style (never two sizes of one jacket), and a cap per
    // category.
    let mut per_category: HashMap<u32, usize> = HashMap::new();
    let mut styles: HashSet<u32> = HashSet::new();
    let mut out = Vec::with_capacity(limit);
    for s in scored {
        let item = &catalog.items[s.item as usize];
        if styles.contains(&item.group) {
            continue;
        }
        let category = item.category;
        let n = per_category.entry(category).or_insert(0);
        if *n >= weights.per_category {
            continue;
        }
        *n += 1;
        styles.insert(item.group);
        out.push(s);
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
    use crate::suggest::ItemInfo;

    /// A generated world: catalog flags, baskets, a customer and a request.
    #[derive(Debug, Clone)]
    struct World {
        items: Vec<(u32, u32, bool, bool)>, // (group, category, available, merchandise)
        baskets: Vec<Vec<ItemIx>>,
        bought: Vec<ItemIx>,
        anchors: Vec<ItemIx>,
        returned_groups: Vec<u32>,
        rejected_groups: Vec<u32>,
        excluded: Vec<ItemIx>,
        limit: usize,
        weights: (f32, f32, f32, usize),
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
                prop::collection::vec(item, n),
                prop::collection::vec(prop::collection::vec(ix.clone(), 1..8), 0..60),
                prop::collection::vec(ix.clone(), 0..10),
                prop::collection::vec(ix.clone(), 0..3),
                prop::collection::vec(group.clone(), 0..4),
                prop::collection::vec(group, 0..4),
                prop::collection::vec(ix, 0..4),
                1usize..15,
                (0.0f32..3.0, 0.0f32..3.0, 0.0f32..3.0, 1usize..5),
            )
                .prop_map(
                    |(
                        items,
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

    fn run(w: &World) -> (Catalog, Signals, Vec<Suggestion>, usize) {
        let items: Vec<ItemInfo> = w
            .items
            .iter()
            .enumerate()
            .map(|(i, &(group, category, available, merchandise))| ItemInfo {
                product_id: format!("p{i}"),
                name: format!("Item {i}"),
                group,
                category,
                price_minor: 100,
                available,
                merchandise,
                brand: Some(group % 3),
            })
            .collect();
        let baskets: Vec<Vec<ItemIx>> = w
            .baskets
            .iter()
            .map(|b| {
                let mut b = b.clone();
                b.sort_unstable();
                b.dedup();
                b
            })
            .collect();
        let mut model = CoModel::build(items.len(), &baskets);
        // Sessions: the same baskets read backwards stand in for browsing.
        let sessions: Vec<Vec<ItemIx>> = baskets.iter().rev().cloned().collect();
        model.coviewed = CoModel::build(items.len(), &sessions[..sessions.len() / 2]).neighbours;
        let mut catalog = Catalog::new(
            items,
            (0..5).map(|c| format!("c{c}")).collect(),
            &model.popularity,
        );
        let histories: Vec<Vec<Vec<u32>>> = baskets
            .chunks(3)
            .map(|orders| {
                orders
                    .iter()
                    .map(|o| {
                        o.iter()
                            .map(|&i| catalog.items[i as usize].category)
                            .collect()
                    })
                    .collect()
            })
            .collect();
        catalog.next_categories = crate::suggest::category_transitions(5, &histories);
        let mut counts: HashMap<ItemIx, u32> = HashMap::new();
        for &b in &w.bought {
            *counts.entry(b).or_insert(0) += 1;
        }
        let bought: Vec<(ItemIx, u32)> = counts.into_iter().collect();
        let filters = Filters {
            bought_groups: bought
                .iter()
                .map(|(i, _)| catalog.items[*i as usize].group)
                .collect(),
            returned_groups: w.returned_groups.iter().copied().collect(),
            rejected_groups: w.rejected_groups.iter().copied().collect(),
            excluded: w.excluded.iter().copied().collect(),
        };
        let signals = Signals {
            bought,
            recent: w.bought.iter().take(2).copied().collect(),
            anchors: w.anchors.clone(),
            viewed: w.excluded.iter().chain(&w.anchors).copied().collect(),
            price_band: w.limit.is_multiple_of(2).then_some((50, 150)),
            brands: vec![(0, 0.5), (1, 1.0)],
            filters,
        };
        let (c, a, p, cap) = w.weights;
        let weights = Weights {
            complement: c,
            affinity: a,
            popular: p,
            per_category: cap,
            ..Weights::default()
        };
        let out = suggest(&model, &catalog, &signals, &weights, w.limit);
        (catalog, signals, out, cap)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

        /// No suggestion, from any source, was bought (any variant of the
        /// style), returned, thumbed down, excluded, unavailable or not
        /// merchandise; the list is bounded, unique, diverse, deterministic.
        #[test]
        fn hard_filters_hold_for_every_source(w in world()) {
            let (catalog, signals, out, cap) = run(&w);
            let bought_groups: HashSet<u32> =
                w.bought.iter().map(|i| w.items[*i as usize].0).collect();
            let mut seen = HashSet::new();
            let mut styles = HashSet::new();
            let mut per_category: HashMap<u32, usize> = HashMap::new();
            for s in &out {
                let (group, category, available, merchandise) = w.items[s.item as usize];
                prop_assert!(!bought_groups.contains(&group), "already bought: {:?}", s);
                prop_assert!(!w.returned_groups.contains(&group), "returned: {:?}", s);
                prop_assert!(!w.rejected_groups.contains(&group), "thumbed down: {:?}", s);
                prop_assert!(!w.excluded.contains(&s.item), "excluded: {:?}", s);
                prop_assert!(available && merchandise, "unavailable: {:?}", s);
                prop_assert!(seen.insert(s.item), "duplicate: {:?}", s);
                prop_assert!(styles.insert(group), "two items of one style: {:?}", s);
                *per_category.entry(category).or_insert(0) += 1;
                match s.reason {
                    Reason::Complement { with } => prop_assert!(
                        signals.anchors.contains(&with) || signals.bought.iter().any(|(i, _)| *i == with)
                    ),
                    Reason::CoViewed { with } => prop_assert!(signals.viewed.contains(&with)),
                    Reason::NewCategory { from, category } => {
                        let cats: HashSet<u32> = signals
                            .bought
                            .iter()
                            .map(|(i, _)| w.items[*i as usize].1)
                            .collect();
                        prop_assert!(cats.contains(&from) && !cats.contains(&category));
                        prop_assert_eq!(category, w.items[s.item as usize].1);
                    }
                    Reason::PopularInCategory { .. } | Reason::Popular => {}
                }
            }
            prop_assert!(out.len() <= w.limit);
            prop_assert!(per_category.values().all(|n| *n <= cap));
            let (_, _, again, _) = run(&w);
            prop_assert_eq!(out, again);
            prop_assert!(catalog.items.len() == w.items.len());
        }
    }

    #[test]
    fn a_customer_with_no_history_gets_best_sellers() {
        let items: Vec<ItemInfo> = (0..4)
            .map(|i| ItemInfo {
                product_id: format!("p{i}"),
                name: format!("Item {i}"),
                group: i,
                category: i,
                price_minor: 100,
                available: i != 2,
                merchandise: true,
                brand: None,
            })
            .collect();
        let baskets = vec![
            vec![0],
            vec![0],
            vec![0],
            vec![2],
            vec![2],
            vec![1, 3],
            vec![1],
        ];
        let model = CoModel::build(4, &baskets);
        let catalog = Catalog::new(
            items,
            (0..4).map(|c| format!("c{c}")).collect(),
            &model.popularity,
        );
        let out = suggest(
            &model,
            &catalog,
            &Signals::default(),
            &Weights::default(),
            3,
        );
        let ids: Vec<ItemIx> = out.iter().map(|s| s.item).collect();
        assert_eq!(
            ids,
            [0, 1, 3],
            "most popular first; the out-of-stock item 2 never shows"
        );
        assert!(out.iter().all(|s| s.reason == Reason::Popular));
    }

    #[test]
    fn complements_say_what_they_go_with() {
        let items: Vec<ItemInfo> = (0..3)
            .map(|i| ItemInfo {
                product_id: format!("p{i}"),
                name: format!("Item {i}"),
                group: i,
                category: i,
                price_minor: 100,
                available: true,
                merchandise: true,
                brand: None,
            })
            .collect();
        // Laptops (0) go with mice (1); 2 is a best-seller on its own.
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
        let model = CoModel::build(3, &baskets);
        let catalog = Catalog::new(
            items,
            (0..3).map(|c| format!("c{c}")).collect(),
            &model.popularity,
        );
        let mut signals = Signals {
            bought: vec![(0, 1)],
            ..Signals::default()
        };
        signals.filters.bought_groups.insert(0);
        let out = suggest(&model, &catalog, &signals, &Weights::default(), 2);
        assert_eq!(out[0].item, 1);
        assert_eq!(out[0].reason, Reason::Complement { with: 0 });
        assert!(
            out.iter().all(|s| s.item != 0),
            "never the laptop itself again"
        );
    }

    #[test]
    fn best_sellers_of_the_customers_brands_come_first_in_their_category() {
        // 0 was bought (brand 7); 1 and 2 sell equally in the same category,
        // 2 is of the customer's brand.
        let items: Vec<ItemInfo> = (0..3)
            .map(|i| ItemInfo {
                product_id: format!("p{i}"),
                name: format!("Item {i}"),
                group: i,
                category: 0,
                price_minor: 100,
                available: true,
                merchandise: true,
                brand: Some(if i == 1 { 8 } else { 7 }),
            })
            .collect();
        let baskets = vec![vec![0], vec![1], vec![2]];
        let model = CoModel::build(3, &baskets);
        let catalog = Catalog::new(items, vec!["c0".into()], &model.popularity);
        let mut signals = Signals {
            bought: vec![(0, 1)],
            brands: vec![(7, 1.0)],
            ..Signals::default()
        };
        signals.filters.bought_groups.insert(0);
        let out = suggest(&model, &catalog, &signals, &Weights::default(), 2);
        let ids: Vec<ItemIx> = out.iter().map(|s| s.item).collect();
        assert_eq!(ids, [2, 1]);
        assert!(out[0].score > out[1].score);
        assert_eq!(out[0].reason, Reason::PopularInCategory { category: 0 });
    }
}
