//! Which ranker a shop is served: every model build scores the candidate
//! rankers on the shop's own latest orders (the protocol of
//! [`super::evaluate`]: each customer's last order held out, a model built
//! from the rest) and serves a candidate only when it beats the blend on
//! them by more than chance (McNemar's test on the customers where exactly
//! one of the two hit), and is at least as good on the order before the
//! latest too (one lucky order does not decide). Otherwise, and when the shop has too little
//! history to tell, the blend is served.

use std::sync::Arc;

use super::{
    ModelConfig, Weights,
    evaluate::{self, Method, Split},
    learned::Forest,
    snapshot::Model,
};
use crate::store::ModelInputs;

/// Items per list, as served to an agent.
pub const K: usize = 10;
/// Customers scored at least (their last order holding something new)
/// before any candidate may replace the blend.
pub const MIN_CUSTOMERS: usize = 200;
/// Customers scored at most (every n-th of those with two orders): the
/// validation of a large shop costs a bounded time.
pub const MAX_CUSTOMERS: usize = 5_000;
/// How far above chance a candidate's extra hits must be (one-sided 5 %).
pub const Z_TO_SERVE: f64 = 1.645;
/// Each order back weighs this much less as a seed of the recency-weighted
/// blend (0.8: an order 3 back counts half as much as the newest).
pub const ORDER_DECAY: f32 = 0.8;

/// A way of ranking a build may serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Ranker {
    /// The blend of sources with the default weights.
    #[default]
    Blend,
    /// The blend, with collaborative seeds weighted by how recently the
    /// customer bought them (each order a time, each order back
    /// [`ORDER_DECAY`] as much: the user vector of TIFU-KNN).
    RecentBlend,
    /// The blend's first candidates re-ordered by a tree ensemble trained
    /// on the shop's earlier orders ([`super::learned`]); a candidate only
    /// where the shop has enough history to train it.
    Learned,
}

impl Ranker {
    /// Every candidate, the blend first.
    pub const ALL: [Ranker; 3] = [Ranker::Blend, Ranker::RecentBlend, Ranker::Learned];

    /// Its name in metrics and reports.
    pub fn name(self) -> &'static str {
        match self {
            Ranker::Blend => "blend",
            Ranker::RecentBlend => "recent_blend",
            Ranker::Learned => "learned",
        }
    }

    /// Its strategy over the blend's weights (the recency-weighted blend
    /// takes their `order_decay` when one is set, [`ORDER_DECAY`] if not).
    pub fn weights_over(self, blend: &Weights) -> Weights {
        match self {
            Ranker::Blend => Weights {
                order_decay: 0.0,
                learned: 0.0,
                ..blend.clone()
            },
            Ranker::RecentBlend => Weights {
                order_decay: if blend.order_decay > 0.0 {
                    blend.order_decay
                } else {
                    ORDER_DECAY
                },
                learned: 0.0,
                ..blend.clone()
            },
            Ranker::Learned => Weights {
                order_decay: 0.0,
                learned: 1.0,
                ..blend.clone()
            },
        }
    }

    /// Its code in a stored model.
    pub fn code(self) -> u32 {
        match self {
            Ranker::Blend => 0,
            Ranker::RecentBlend => 1,
            Ranker::Learned => 2,
        }
    }

    /// The ranker of a stored code (`None`: unknown).
    pub fn of_code(code: u32) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.code() == code)
    }
}

/// One candidate's numbers on the shop's own latest orders.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Validation {
    /// The candidate.
    pub ranker: Ranker,
    /// Share of customers whose held-out order holds one of its 10.
    pub hit_rate: f64,
    /// Mean NDCG@10.
    pub ndcg: f64,
    /// Its hit rate on the order before the latest (a model built without
    /// the latest two).
    pub previous_hit_rate: f64,
    /// How far its extra hits over the blend, on both held-out orders,
    /// are above chance (McNemar z; 0 for the blend).
    pub z: f64,
}

/// What a build validated and serves.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Ranking {
    /// The ranker served.
    pub served: Ranker,
    /// Customers the candidates were scored on (0: not validated).
    pub customers: u32,
    /// Each candidate's numbers, in [`Ranker::ALL`] order (empty when
    /// the shop had too little history; no learned ranker when it had too
    /// little to train one).
    pub validations: Vec<Validation>,
    /// The learned ranker's trees, as validated (trained on the order
    /// before both held-out ones), when the shop had enough history.
    pub learned: Option<Arc<Forest>>,
}

/// McNemar's z of `candidate` over `blend` (one mark per customer: hit or
/// not): positive when the candidate hits where the blend misses more
/// often than the other way round.
pub fn mcnemar_z(blend: &[bool], candidate: &[bool]) -> f64 {
    let (mut won, mut lost) = (0f64, 0f64);
    for (b, c) in blend.iter().zip(candidate) {
        match (b, c) {
            (false, true) => won += 1.0,
            (true, false) => lost += 1.0,
            _ => {}
        }
    }
    if won + lost == 0.0 {
        0.0
    } else {
        (won - lost) / (won + lost).sqrt()
    }
}

/// The ranker to serve: the candidate with the highest hit rate among those
/// at least as good as the blend on both held-out orders whose z over the
/// blend (both pooled) reaches [`Z_TO_SERVE`]; else the blend.
pub fn pick(validations: &[Validation]) -> Ranker {
    let Some(blend) = validations.iter().find(|v| v.ranker == Ranker::Blend) else {
        return Ranker::Blend;
    };
    validations
        .iter()
        .filter(|v| {
            v.ranker != Ranker::Blend
                && v.z >= Z_TO_SERVE
                && v.hit_rate >= blend.hit_rate
                && v.previous_hit_rate >= blend.previous_hit_rate
        })
        .max_by(|a, b| a.hit_rate.total_cmp(&b.hit_rate))
        .map_or(Ranker::Blend, |v| v.ranker)
}

/// The rankers to validate: the learned one only with trees.
fn candidates(trees: &Option<Arc<Forest>>) -> Vec<Ranker> {
    Ranker::ALL
        .into_iter()
        .filter(|r| *r != Ranker::Learned || trees.is_some())
        .collect()
}

/// The protocol of `split` held out `back` orders before the latest, the
/// model built on its training orders, and the stride that scores at most
/// [`MAX_CUSTOMERS`]; `None` with fewer than [`MIN_CUSTOMERS`] customers
/// of two orders or more. CPU-bound: builds one model.
fn held_out<'a>(
    inputs: &'a ModelInputs,
    config: &ModelConfig,
    split: Split,
    back: usize,
) -> Option<(evaluate::Protocol<'a>, Model, usize)> {
    let p = evaluate::protocol(inputs, split, back);
    let with_two = p.homes.iter().filter(|h| h.orders.len() >= 2).count();
    if with_two < MIN_CUSTOMERS {
        return None;
    }
    let model = Model::build(&p.train, config, 0);
    Some((p, model, with_two.div_ceil(MAX_CUSTOMERS)))
}

/// Each candidate's tally on one held-out order (`back` orders before the
/// latest), with the customers scored; the learned ranker ranks with
/// `trees`.
fn holdout(
    inputs: &ModelInputs,
    config: &ModelConfig,
    blend: &Weights,
    back: usize,
    trees: &Option<Arc<Forest>>,
) -> Option<(Vec<evaluate::Scores>, Vec<Vec<bool>>)> {
    let (p, mut model, stride) = held_out(inputs, config, Split::All, back)?;
    model.ranking.learned = trees.clone();
    let methods: Vec<Method> = candidates(trees)
        .iter()
        .map(|r| Method::Ranker(r.weights_over(blend)))
        .collect();
    let outcome = evaluate::score(&model, &p.homes, &methods, K, stride);
    if outcome.tallies[0].marks.len() < MIN_CUSTOMERS {
        return None;
    }
    let suggestable = evaluate::suggestable(&model);
    Some(
        outcome
            .tallies
            .into_iter()
            .map(|t| (t.scores(suggestable), t.marks))
            .unzip(),
    )
}

/// Orders each customer's trees learn from: the one `back` orders before
/// the latest and the one before it (twice the examples of one order).
pub const LEARN_ORDERS: usize = 2;

/// Trees trained on the households of `split`: for each of
/// [`LEARN_ORDERS`] orders from `back` orders before their latest, a model
/// built without that order and the newer ones, each customer's next order
/// as labels; `None` when the shop has too little history to learn from.
/// CPU-bound: builds [`LEARN_ORDERS`] models.
pub fn learn(
    inputs: &ModelInputs,
    config: &ModelConfig,
    blend: &Weights,
    split: Split,
    back: usize,
) -> Option<Arc<Forest>> {
    let mut examples = Vec::new();
    for back in back..back + LEARN_ORDERS {
        let Some((p, model, stride)) = held_out(inputs, config, split, back) else {
            break;
        };
        examples.extend(evaluate::examples(&model, &p.homes, blend, stride));
    }
    Forest::train(&examples).map(Arc::new)
}

/// Validates every candidate on `inputs` (as [`Model::build`] takes them)
/// and picks the one to serve. Two held-out orders, so that one lucky
/// order does not decide: each customer's latest (the numbers reported),
/// and the one before it (with the latest dropped); the learned ranker's
/// trees are trained on the order before both. CPU-bound: builds three
/// models.
pub fn validate(inputs: &ModelInputs, config: &ModelConfig, blend: &Weights) -> Ranking {
    let trees = learn(inputs, config, blend, Split::All, 2);
    let Some((latest, marks)) = holdout(inputs, config, blend, 0, &trees) else {
        return Ranking::default();
    };
    let customers = marks[0].len() as u32;
    // Too little history a step back: only the latest order speaks.
    let (previous, previous_marks) = holdout(inputs, config, blend, 1, &trees)
        .unwrap_or_else(|| (latest.clone(), marks.clone()));
    let pooled =
        |k: usize| -> Vec<bool> { marks[k].iter().chain(&previous_marks[k]).copied().collect() };
    let blend_marks = pooled(0);
    let validations = candidates(&trees)
        .into_iter()
        .enumerate()
        .map(|(k, ranker)| Validation {
            ranker,
            hit_rate: latest[k].hit_rate,
            ndcg: latest[k].ndcg,
            previous_hit_rate: previous[k].hit_rate,
            z: mcnemar_z(&blend_marks, &pooled(k)),
        })
        .collect::<Vec<_>>();
    Ranking {
        served: pick(&validations),
        customers,
        validations,
        learned: trees,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(ranker: Ranker, hit_rate: f64, z: f64) -> Validation {
        Validation {
            ranker,
            hit_rate,
            ndcg: 0.0,
            previous_hit_rate: hit_rate,
            z,
        }
    }

    #[test]
    fn mcnemar_counts_only_disagreements() {
        let blend = [true, true, false, false, false];
        let same = mcnemar_z(&blend, &blend);
        assert_eq!(same, 0.0);
        // Wins 3, loses 1: (3 - 1) / sqrt(4).
        let c = [true, false, true, true, true];
        assert_eq!(mcnemar_z(&blend, &c), 1.0);
        assert_eq!(mcnemar_z(&c, &blend), -1.0);
    }

    #[test]
    fn the_blend_is_served_unless_a_candidate_wins_beyond_chance() {
        assert_eq!(pick(&[]), Ranker::Blend);
        let blend = v(Ranker::Blend, 0.10, 0.0);
        assert_eq!(
            pick(&[blend, v(Ranker::RecentBlend, 0.09, -2.0)]),
            Ranker::Blend
        );
        assert_eq!(
            pick(&[blend, v(Ranker::RecentBlend, 0.11, 1.0)]),
            Ranker::Blend,
            "better, but within chance"
        );
        assert_eq!(
            pick(&[blend, v(Ranker::RecentBlend, 0.12, 2.5)]),
            Ranker::RecentBlend
        );
        let lucky = Validation {
            previous_hit_rate: 0.09,
            ..v(Ranker::RecentBlend, 0.14, 2.5)
        };
        assert_eq!(
            pick(&[blend, lucky]),
            Ranker::Blend,
            "worse on the order before"
        );
    }

    /// One product per id, each its own style and category.
    fn catalog_of(ids: &[String]) -> Vec<crate::store::CatalogRow> {
        ids.iter()
            .map(|id| crate::store::CatalogRow {
                product_id: id.clone(),
                name: id.clone(),
                group_id: id.clone(),
                category_path: format!("C{id} > x"),
                price_minor: 100,
                available: true,
                brand: String::new(),
                replenish_days: None,
                merchandise: None,
                size: None,
            })
            .collect()
    }

    /// The build's inputs, purchases in the order the store reads them.
    fn inputs_of(
        catalog: Vec<crate::store::CatalogRow>,
        mut purchases: Vec<crate::store::PurchaseRow>,
    ) -> ModelInputs {
        purchases.sort_by(|x, y| {
            (&x.customer_id, x.placed_at, &x.order_id).cmp(&(
                &y.customer_id,
                y.placed_at,
                &y.order_id,
            ))
        });
        ModelInputs {
            catalog,
            purchases,
            ..ModelInputs::default()
        }
    }

    /// A shop where 60 customers show what goes with A (X0..X9) and with
    /// B (Y0..Y9), and 200 bought A in three old orders and B in their two
    /// newest, then (held out) `next`'s ten items.
    fn shop(next: char) -> ModelInputs {
        use crate::store::PurchaseRow;
        let mut ids = vec!["A".to_string(), "B".to_string()];
        for k in 0..10 {
            ids.push(format!("X{k}"));
            ids.push(format!("Y{k}"));
        }
        let catalog = catalog_of(&ids);
        let day = 86_400_000;
        let mut purchases = Vec::new();
        let mut order = |customer: &str, n: usize, at: i64, products: Vec<String>| {
            for p in products {
                purchases.push(PurchaseRow {
                    customer_id: customer.into(),
                    order_id: format!("{customer}-{n}"),
                    placed_at: at,
                    product_id: p,
                });
            }
        };
        let ten = |c: char| (0..10).map(move |k| format!("{c}{k}"));
        for t in 0..30 {
            order(
                &format!("ta{t:03}"),
                0,
                day,
                ["A".into()].into_iter().chain(ten('X')).collect(),
            );
            order(
                &format!("tb{t:03}"),
                0,
                day,
                ["B".into()].into_iter().chain(ten('Y')).collect(),
            );
        }
        for c in 0..MIN_CUSTOMERS {
            let who = format!("c{c:03}");
            for n in 0..5 {
                let bought = if n < 3 { "A" } else { "B" };
                order(&who, n, (2 + n as i64) * day, vec![bought.into()]);
            }
            order(&who, 5, 8 * day, ten(next).collect());
        }
        inputs_of(catalog, purchases)
    }

    #[test]
    fn the_build_serves_the_ranker_that_wins_on_the_shops_own_orders() {
        let config = ModelConfig::default();
        // The newest purchases tell what comes next: recency wins.
        let recent = validate(&shop('Y'), &config, &Weights::default());
        assert_eq!(recent.customers as usize, MIN_CUSTOMERS);
        assert_eq!(recent.served, Ranker::RecentBlend, "{recent:?}");
        assert!(recent.validations[1].hit_rate > recent.validations[0].hit_rate);
        // The most repeated purchase tells it: the candidate loses, and
        // the blend is served.
        let repeated = validate(&shop('X'), &config, &Weights::default());
        assert_eq!(repeated.served, Ranker::Blend, "{repeated:?}");
        assert!(repeated.validations[1].z < 0.0);
        // Too few customers to tell: the blend, not validated.
        let mut small = shop('Y');
        small
            .purchases
            .retain(|p| p.customer_id.as_str() < "c100" || p.customer_id.starts_with('t'));
        assert_eq!(
            validate(&small, &config, &Weights::default()),
            Ranking::default()
        );
    }

    /// A shop with a long history: 30 customers per pair show (five times
    /// each) that S{n} goes with S{n+1}; 300 customers bought S0, S1, ... S7, one order
    /// each, a day apart.
    fn chain_shop() -> ModelInputs {
        use crate::store::PurchaseRow;
        let ids: Vec<String> = (0..9).map(|n| format!("S{n}")).collect();
        let catalog = catalog_of(&ids);
        let day = 86_400_000;
        let mut purchases = Vec::new();
        let mut order = |customer: String, n: usize, at: i64, products: &[&String]| {
            for p in products {
                purchases.push(PurchaseRow {
                    customer_id: customer.clone(),
                    order_id: format!("{customer}-{n}"),
                    placed_at: at,
                    product_id: (*p).clone(),
                });
            }
        };
        for n in 0..8 {
            // Each in five orders, so the pairs stay known with the
            // newest orders dropped.
            for t in 0..30 {
                for k in 0..5 {
                    let at = (1 + k as i64) * day;
                    order(format!("t{n}-{t:03}"), k, at, &[&ids[n], &ids[n + 1]]);
                }
            }
        }
        for c in 0..300 {
            for (n, id) in ids.iter().take(8).enumerate() {
                order(format!("c{c:03}"), n, (2 + n as i64) * day, &[id]);
            }
        }
        inputs_of(catalog, purchases)
    }

    #[test]
    fn with_enough_history_the_learned_ranker_is_trained_and_validated() {
        let config = ModelConfig::default();
        let ranking = validate(&chain_shop(), &config, &Weights::default());
        let trees = ranking.learned.as_ref().expect("trained");
        assert!(trees.trees() > 0);
        let learned = ranking
            .validations
            .iter()
            .find(|v| v.ranker == Ranker::Learned)
            .expect("validated");
        // What goes with the newest purchase is bought next: the trees
        // learned it from the orders before the held-out ones.
        assert!(learned.hit_rate > 0.9, "{ranking:?}");
        assert!(learned.previous_hit_rate > 0.9, "{ranking:?}");
        // The pick follows the rule whatever won.
        assert_eq!(ranking.served, pick(&ranking.validations));
        // Without that history (the shop of two old orders), no trees,
        // and the learned ranker is no candidate.
        let short = validate(&shop('Y'), &config, &Weights::default());
        assert_eq!(short.learned, None);
        assert!(
            short
                .validations
                .iter()
                .all(|v| v.ranker != Ranker::Learned)
        );
    }

    #[test]
    fn codes_round_trip() {
        for r in Ranker::ALL {
            assert_eq!(Ranker::of_code(r.code()), Some(r));
        }
        assert_eq!(Ranker::of_code(9), None);
    }
}
