//! Offline evaluation through the served code path: each household's last
//! order is held out, a model is built from the rest with
//! [`Model::build`], each household's signals are made by
//! [`signals::signals`] from what the service would read (its newest
//! purchase lines), and the list is ranked by [`suggest`]. Scored against
//! the held-out order (items new to the household only, since bought items
//! are filtered), beside three baselines: all-time best-sellers (by
//! orders, and by households) and recency-weighted best-sellers.
//!
//! Three splits, so a default is not tuned to one set of households:
//! every household; even-numbered households only, trained on their own
//! data; odd-numbered ones likewise. Each may be moved back in time (every
//! household's newest orders dropped from all data).
//!
//! The model build validates its rankers with the same protocol on the
//! shop's own orders ([`super::validate`]).

use std::{
    collections::{HashMap, HashSet},
    time::Instant,
};

use super::{
    Filters, ItemIx, IxSet, Model, ModelConfig, Weights,
    learned::Example,
    signals::{self, Ask, History},
    suggest,
    validate::{self, Ranker},
};
use crate::{
    domain::Timestamp,
    store::{ModelInputs, PurchaseRow, PurchasedLine},
};

/// Which households a split holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// Every household.
    All,
    /// Households whose number is even.
    Even,
    /// Households whose number is odd.
    Odd,
}

impl Split {
    /// Name for reports.
    pub fn name(self) -> &'static str {
        match self {
            Split::All => "all households",
            Split::Even => "even households",
            Split::Odd => "odd households",
        }
    }

    /// Whether a customer id belongs to the split: by the number at the
    /// end of the id (by a hash of the id when it has none).
    pub fn holds(self, customer_id: &str) -> bool {
        let digits: String = customer_id
            .chars()
            .rev()
            .take_while(char::is_ascii_digit)
            .collect();
        let n = match digits.chars().rev().collect::<String>().parse::<u64>() {
            Ok(n) => n,
            Err(_) => u64::from(blake3::hash(customer_id.as_bytes()).as_bytes()[0]),
        };
        match self {
            Split::All => true,
            Split::Even => n % 2 == 0,
            Split::Odd => n % 2 == 1,
        }
    }
}

/// Scores of one method.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scores {
    /// Share of evaluated customers with at least one hit in the top k.
    pub hit_rate: f64,
    /// The same, a hit also when the held-out order holds a look-alike of
    /// a suggestion (the same thing under another product id: "White Bread
    /// 20 OZ" suggested, "White Bread" bought). Lists hold one item per
    /// look-alike, so the product-id rate undercounts what an agent's
    /// suggestion achieves.
    pub alike_hit_rate: f64,
    /// Mean NDCG@k (binary relevance: held-out items new to the customer).
    pub ndcg: f64,
    /// Distinct suggested items / suggestable items.
    pub coverage: f64,
    /// Suggestions breaking a hard filter (bought, unavailable, not
    /// merchandise), checked independently of the ranker. Must be 0.
    pub violations: u64,
}

/// The report of one split.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// The split.
    pub split: Split,
    /// Newest orders dropped from every household first.
    pub moved_back: usize,
    /// Customers with at least two orders.
    pub with_two_orders: usize,
    /// Of those, customers whose held-out order holds an item new to them:
    /// the ones evaluated.
    pub customers: usize,
    /// Orders used for training.
    pub train_orders: usize,
    /// Items that may be suggested (merchandise, available).
    pub suggestable: usize,
    /// k.
    pub k: usize,
    /// Every candidate ranker, in [`Ranker::ALL`] order (the learned one
    /// only where the split had enough history to train it).
    pub rankers: Vec<(Ranker, Scores)>,
    /// What a model build on this split's training orders would serve
    /// (validated on their own latest orders, as every build does).
    pub picked: Ranker,
    /// All-time best-sellers by orders.
    pub popularity: Scores,
    /// All-time best-sellers by households that bought them.
    pub by_households: Scores,
    /// Recency-weighted best-sellers (the model's "popular now").
    pub popular_now: Scores,
    /// Seconds to build the model.
    pub train_secs: f64,
    /// Seconds to validate the rankers on the training orders.
    pub validate_secs: f64,
    /// Seconds to score every customer.
    pub score_secs: f64,
}

impl Report {
    /// The scores of one candidate.
    pub fn of(&self, ranker: Ranker) -> &Scores {
        self.rankers
            .iter()
            .find(|r| r.0 == ranker)
            .map_or(&self.rankers[0].1, |r| &r.1)
    }

    /// The stronger of the two all-time popularity baselines.
    pub fn stronger_popularity(&self) -> &Scores {
        if self.by_households.hit_rate > self.popularity.hit_rate {
            &self.by_households
        } else {
            &self.popularity
        }
    }
}

/// One household's orders, oldest first.
pub(super) struct Household<'a> {
    pub(super) orders: Vec<Vec<&'a PurchaseRow>>,
}

/// Households in the purchase rows (ordered by customer, time, order).
fn households(purchases: &[PurchaseRow], split: Split) -> Vec<Household<'_>> {
    let mut out: Vec<Household<'_>> = Vec::new();
    let mut last: Option<(&str, &str)> = None;
    for p in purchases.iter().filter(|p| split.holds(&p.customer_id)) {
        let key = (p.customer_id.as_str(), p.order_id.as_str());
        match last {
            Some((c, o)) if c == key.0 && o == key.1 => {}
            Some((c, _)) if c == key.0 => {
                if let Some(h) = out.last_mut() {
                    h.orders.push(Vec::new());
                }
            }
            _ => out.push(Household {
                orders: vec![Vec::new()],
            }),
        }
        last = Some(key);
        if let Some(o) = out.last_mut().and_then(|h| h.orders.last_mut()) {
            o.push(p);
        }
    }
    out
}

/// The protocol's data: the households of a split (each without its
/// `moved_back` newest orders), and the training inputs, every order but
/// the last of each household with two or more.
pub(super) struct Protocol<'a> {
    pub(super) homes: Vec<Household<'a>>,
    pub(super) train: ModelInputs,
}

/// Holds out each household's last order of `split`, after dropping its
/// `moved_back` newest orders from all data.
pub(super) fn protocol(inputs: &ModelInputs, split: Split, moved_back: usize) -> Protocol<'_> {
    let mut homes = households(&inputs.purchases, split);
    for h in &mut homes {
        let keep = h.orders.len().saturating_sub(moved_back);
        h.orders.truncate(keep);
    }
    homes.retain(|h| !h.orders.is_empty());
    let mut train = ModelInputs {
        as_of_seq: inputs.as_of_seq,
        catalog: inputs.catalog.clone(),
        purchases: Vec::new(),
        views: Vec::new(),
    };
    for h in &homes {
        let n = h.orders.len() - usize::from(h.orders.len() >= 2);
        train
            .purchases
            .extend(h.orders[..n].iter().flatten().map(|p| (*p).clone()));
    }
    Protocol { homes, train }
}

/// The history the service would read for a household: its newest
/// purchase lines (at most what the service reads), newest first.
fn history_of(model: &Model, orders: &[Vec<&PurchaseRow>], max_lines: usize) -> History {
    let mut lines = Vec::new();
    for order in orders.iter().rev() {
        for p in order {
            let price = model
                .item(&p.product_id)
                .map_or(0, |i| model.catalog.items[i as usize].price_minor);
            lines.push(PurchasedLine {
                order_id: p.order_id.clone(),
                quantity: 1,
                product_id: p.product_id.clone(),
                category_path: String::new(),
                unit_price_minor: price,
                placed_at: Timestamp::from_millis(p.placed_at).unwrap_or(Timestamp::MIN),
            });
        }
    }
    lines.truncate(max_lines);
    History {
        lines,
        ..History::default()
    }
}

fn dcg(hits: &[bool]) -> f64 {
    hits.iter()
        .enumerate()
        .filter(|(_, h)| **h)
        .map(|(i, _)| 1.0 / ((i + 2) as f64).log2())
        .sum()
}

/// One household to score: what the service would read before its last
/// order, and what that order held new.
struct Case {
    history: History,
    bought_groups: IxSet,
    relevant: HashSet<ItemIx>,
    relevant_alikes: HashSet<u32>,
}

impl Case {
    /// The signals the service would make from the household's history,
    /// as of its newest purchase.
    fn signals(&self, model: &Model) -> super::rank::Signals {
        let now = self
            .history
            .lines
            .first()
            .map_or(Timestamp::MIN, |l| l.placed_at);
        let ask = Ask {
            personal: true,
            now,
            ..Ask::default()
        };
        signals::signals(model, &self.history, &ask)
    }
}

/// The case of a household with two orders or more whose last order holds
/// an item new to it (a perfect ranker could not hit otherwise).
fn case_of(model: &Model, h: &Household<'_>) -> Option<Case> {
    let catalog = &model.catalog;
    let (history, held_out) = h.orders.split_at(h.orders.len() - 1);
    let mut bought: HashMap<String, Timestamp> = HashMap::new();
    let mut bought_groups = IxSet::default();
    for p in history.iter().flatten() {
        if let Some(i) = model.item(&p.product_id) {
            let g = catalog.items[i as usize].group;
            bought_groups.insert(g);
            bought.insert(
                model.groups.names[g as usize].clone(),
                Timestamp::from_millis(p.placed_at).unwrap_or(Timestamp::MIN),
            );
        }
    }
    let relevant: HashSet<ItemIx> = held_out[0]
        .iter()
        .filter_map(|p| model.item(&p.product_id))
        .filter(|i| !bought_groups.contains(&catalog.items[*i as usize].group))
        .collect();
    if relevant.is_empty() {
        return None;
    }
    let relevant_alikes = relevant
        .iter()
        .map(|&i| catalog.items[i as usize].alike)
        .filter(|&a| a != super::NO_ALIKE)
        .collect();
    let mut lines = history_of(model, history, super::limits::PURCHASE_LINES as usize);
    lines.bought_groups = bought;
    Some(Case {
        history: lines,
        bought_groups,
        relevant,
        relevant_alikes,
    })
}

/// What is scored: a ranker's strategy (through the served code), or a
/// fixed best-seller list (the filters applied).
pub(super) enum Method {
    /// Ranked by [`suggest`] with these weights.
    Ranker(Weights),
    /// The first k of this list the household may be offered.
    Fixed(Vec<ItemIx>),
}

impl Method {
    fn list(&self, model: &Model, case: &Case, k: usize) -> Vec<ItemIx> {
        match self {
            Method::Ranker(weights) => suggest(model, &case.signals(model), weights, k)
                .into_iter()
                .map(|x| x.item)
                .collect(),
            Method::Fixed(list) => {
                let filters = Filters {
                    bought_groups: case.bought_groups.clone(),
                    ..Filters::default()
                };
                list.iter()
                    .copied()
                    .filter(|&i| filters.check(&model.catalog, i).is_ok())
                    .take(k)
                    .collect()
            }
        }
    }
}

/// Per method: hits (one mark per household scored), summed NDCG, items
/// ever suggested, violations.
#[derive(Default)]
pub(super) struct Tally {
    pub(super) marks: Vec<bool>,
    alike_hits: usize,
    ndcg: f64,
    seen: HashSet<ItemIx>,
    violations: u64,
}

impl Tally {
    fn add(&mut self, model: &Model, case: &Case, list: &[ItemIx], k: usize) {
        let catalog = &model.catalog;
        let marks: Vec<bool> = list.iter().map(|i| case.relevant.contains(i)).collect();
        self.marks.push(marks.iter().any(|m| *m));
        let alike = |i: ItemIx| catalog.items[i as usize].alike;
        if list
            .iter()
            .any(|&i| case.relevant.contains(&i) || case.relevant_alikes.contains(&alike(i)))
        {
            self.alike_hits += 1;
        }
        let ideal = dcg(&vec![true; case.relevant.len().min(k)]);
        if ideal > 0.0 {
            self.ndcg += dcg(&marks) / ideal;
        }
        self.seen.extend(list.iter().copied());
        // Checked apart from the ranker's own filters.
        let bad = |i: &ItemIx| {
            let it = &catalog.items[*i as usize];
            case.bought_groups.contains(&it.group) || !it.available || !it.merchandise
        };
        self.violations += list.iter().filter(|i| bad(i)).count() as u64;
    }

    pub(super) fn scores(&self, suggestable: usize) -> Scores {
        let n = self.marks.len().max(1) as f64;
        Scores {
            hit_rate: self.marks.iter().filter(|m| **m).count() as f64 / n,
            alike_hit_rate: self.alike_hits as f64 / n,
            ndcg: self.ndcg / n,
            coverage: self.seen.len() as f64 / suggestable.max(1) as f64,
            violations: self.violations,
        }
    }
}

/// What scoring the households gave.
pub(super) struct Outcome {
    /// Households with two orders or more (of those visited).
    pub(super) with_two: usize,
    /// One tally per method, in the order given.
    pub(super) tallies: Vec<Tally>,
}

/// Scores every method on every `stride`-th household with two orders or
/// more (1: all of them), against `model` built on the protocol's training
/// orders. CPU-bound.
pub(super) fn score(
    model: &Model,
    homes: &[Household<'_>],
    methods: &[Method],
    k: usize,
    stride: usize,
) -> Outcome {
    let mut tallies: Vec<Tally> = methods.iter().map(|_| Tally::default()).collect();
    let mut with_two = 0;
    for h in homes.iter().filter(|h| h.orders.len() >= 2) {
        with_two += 1;
        if (with_two - 1) % stride.max(1) != 0 {
            continue;
        }
        let Some(case) = case_of(model, h) else {
            continue;
        };
        for (method, tally) in methods.iter().zip(tallies.iter_mut()) {
            tally.add(model, &case, &method.list(model, &case, k), k);
        }
    }
    Outcome { with_two, tallies }
}

/// The learned trees' examples from every `stride`-th household with two
/// orders or more: the blend's first candidates for it (through the served
/// code), each marked bought when its held-out order holds it new.
pub(super) fn examples(
    model: &Model,
    homes: &[Household<'_>],
    blend: &Weights,
    stride: usize,
) -> Vec<Example> {
    let mut out = Vec::new();
    let with_two = homes.iter().filter(|h| h.orders.len() >= 2);
    for h in with_two.step_by(stride.max(1)) {
        let Some(case) = case_of(model, h) else {
            continue;
        };
        let s = case.signals(model);
        out.extend(
            super::rank::examples(model, &s, blend)
                .into_iter()
                .map(|(item, features)| Example {
                    features,
                    bought: case.relevant.contains(&item),
                }),
        );
    }
    out
}

/// Items that may be suggested (merchandise, available).
pub(super) fn suggestable(model: &Model) -> usize {
    model
        .catalog
        .items
        .iter()
        .filter(|i| i.merchandise && i.available)
        .count()
}

/// The all-time best-sellers by `count` (merchandise only), most first.
fn best_sellers(model: &Model, count: &[u32]) -> Vec<ItemIx> {
    let catalog = &model.catalog;
    let n = |i: ItemIx| count.get(i as usize).copied().unwrap_or(0);
    let mut all: Vec<ItemIx> = (0..catalog.items.len() as ItemIx)
        .filter(|&i| catalog.items[i as usize].merchandise && n(i) > 0)
        .collect();
    all.sort_by(|&a, &b| n(b).cmp(&n(a)).then(a.cmp(&b)));
    all.truncate(1000);
    all
}

/// Runs one split: every candidate ranker over `weights` (the blend's),
/// what the build would pick, and the baselines. CPU-bound: call it on a
/// blocking thread.
pub fn evaluate(
    inputs: &ModelInputs,
    config: &ModelConfig,
    weights: &Weights,
    k: usize,
    split: Split,
    moved_back: usize,
) -> Report {
    let started = Instant::now();
    let p = protocol(inputs, split, moved_back);
    let train_orders = p
        .homes
        .iter()
        .map(|h| h.orders.len() - usize::from(h.orders.len() >= 2))
        .sum();
    let mut model = Model::build(&p.train, config, 0);
    // The learned ranker's trees: trained on the order before the held-out
    // one, as a build trains them on its own.
    model.ranking.learned = validate::learn(inputs, config, weights, split, moved_back + 1);
    let train_secs = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let picked = validate::validate(&p.train, config, weights).served;
    let validate_secs = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let rankers: Vec<Ranker> = Ranker::ALL
        .into_iter()
        .filter(|r| *r != Ranker::Learned || model.ranking.learned.is_some())
        .collect();
    let mut methods: Vec<Method> = rankers
        .iter()
        .map(|r| Method::Ranker(r.weights_over(weights)))
        .collect();
    methods.push(Method::Fixed(best_sellers(&model, &model.baskets)));
    methods.push(Method::Fixed(best_sellers(&model, &model.buyers)));
    methods.push(Method::Fixed(model.catalog.popular.clone()));
    let outcome = score(&model, &p.homes, &methods, k, 1);
    let suggestable = suggestable(&model);
    let mut scores = outcome.tallies.iter().map(|t| t.scores(suggestable));
    let rankers = rankers
        .into_iter()
        .map(|r| (r, scores.next().unwrap_or_default()))
        .collect();
    Report {
        split,
        moved_back,
        with_two_orders: outcome.with_two,
        customers: outcome.tallies[0].marks.len(),
        train_orders,
        suggestable,
        k,
        rankers,
        picked,
        popularity: scores.next().unwrap_or_default(),
        by_households: scores.next().unwrap_or_default(),
        popular_now: scores.next().unwrap_or_default(),
        train_secs,
        validate_secs,
        score_secs: started.elapsed().as_secs_f64(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::CatalogRow;

    fn product(id: &str, category: &str) -> CatalogRow {
        CatalogRow {
            product_id: id.into(),
            name: id.into(),
            group_id: id.into(),
            category_path: category.into(),
            price_minor: 100,
            available: true,
            brand: String::new(),
            replenish_days: None,
            merchandise: None,
            size: None,
        }
    }

    fn line(customer: &str, order: &str, at: i64, product: &str) -> PurchaseRow {
        PurchaseRow {
            customer_id: customer.into(),
            order_id: order.into(),
            placed_at: at,
            product_id: product.into(),
        }
    }

    #[test]
    fn splits_follow_the_household_number() {
        assert!(Split::Even.holds("cj-900") && !Split::Odd.holds("cj-900"));
        assert!(Split::Odd.holds("h7") && Split::All.holds("h7"));
        assert!(Split::Even.holds("x") != Split::Odd.holds("x"));
    }

    #[test]
    fn holds_out_the_last_order_and_scores_new_items_only() {
        let catalog = vec![
            product("bread", "BAKERY > BREAD"),
            product("butter", "DAIRY > BUTTER"),
            product("jam", "GROCERY > JAM"),
            product("coupon", "COUPON > STORE"),
        ];
        // Many households buy bread with butter; "a" bought bread before and
        // butter in its last order; "b" has only repeats in its last order.
        let mut rows = Vec::new();
        for h in 0..5 {
            let c = format!("h{h}");
            rows.push(line(&c, &format!("{c}-1"), 1, "bread"));
            rows.push(line(&c, &format!("{c}-1"), 1, "butter"));
            rows.push(line(&c, &format!("{c}-1"), 1, "coupon"));
            rows.push(line(&c, &format!("{c}-2"), 2, "bread"));
            rows.push(line(&c, &format!("{c}-2"), 2, "butter"));
        }
        rows.extend([
            line("a", "a-1", 1, "bread"),
            line("a", "a-2", 2, "butter"),
            line("b", "b-1", 1, "jam"),
            line("b", "b-2", 2, "jam"),
        ]);
        rows.sort_by(|x, y| {
            (&x.customer_id, x.placed_at, &x.order_id).cmp(&(
                &y.customer_id,
                y.placed_at,
                &y.order_id,
            ))
        });
        let inputs = ModelInputs {
            catalog,
            purchases: rows,
            ..ModelInputs::default()
        };
        let report = evaluate(
            &inputs,
            &ModelConfig::default(),
            &Weights::default(),
            10,
            Split::All,
            0,
        );
        assert_eq!(report.with_two_orders, 7);
        assert_eq!(
            report.customers, 1,
            "only a's held-out order has something new"
        );
        for (ranker, scores) in &report.rankers {
            assert_eq!(scores.hit_rate, 1.0, "{ranker:?}: butter goes with bread");
            assert_eq!(scores.violations, 0);
        }
        assert_eq!(
            report.picked,
            Ranker::Blend,
            "too few households to pick another"
        );
        assert_eq!(report.suggestable, 3, "the coupon is not merchandise");
    }
}
