//! A/B experiments: named strategies (source weights and limits), a stable
//! assignment of each customer to one, and the statistics that compare
//! them.

use serde::{Deserialize, Serialize};

use super::Weights;
use crate::domain::Violations;

/// Name of the strategy served when no experiment runs.
pub const DEFAULT_VARIANT: &str = "default";
/// Most variants in one experiment.
pub const MAX_VARIANTS: usize = 10;
/// Largest traffic weight of one variant.
pub const MAX_TRAFFIC: u32 = 1000;
/// Largest source weight.
pub const MAX_WEIGHT: f32 = 10.0;

/// One variant: a strategy and its share of customers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Variant {
    /// Name.
    pub name: String,
    /// Relative share of customers.
    pub traffic_weight: u32,
    /// The strategy.
    pub weights: Weights,
}

/// An experiment as configured.
#[derive(Debug, Clone, PartialEq)]
pub struct Experiment {
    /// Name.
    pub name: String,
    /// Variants, in configured order.
    pub variants: Vec<Variant>,
    /// Running now.
    pub running: bool,
}

/// The strategy one request is served with.
#[derive(Debug, Clone, PartialEq)]
pub struct Assignment {
    /// The experiment ("" for none).
    pub experiment: String,
    /// The variant name.
    pub variant: String,
    /// Its strategy.
    pub weights: Weights,
}

impl Assignment {
    /// The default strategy, outside any experiment.
    pub fn default_strategy() -> Self {
        Self {
            experiment: String::new(),
            variant: DEFAULT_VARIANT.into(),
            weights: Weights::default(),
        }
    }
}

/// Whether `s` is a valid experiment or variant name: 1 to 64 ASCII
/// letters, digits, `-` or `_`.
pub fn valid_name(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl Experiment {
    /// Checks a configuration; violations name the fields of
    /// `experiment` in the request.
    pub fn validate(&self) -> Result<(), Violations> {
        let mut v = Violations::new();
        if !valid_name(&self.name) {
            v.add(
                "experiment.name",
                "must be 1 to 64 letters, digits, '-' or '_'",
            );
        }
        if !(2..=MAX_VARIANTS).contains(&self.variants.len()) {
            v.add(
                "experiment.variants",
                format!(
                    "has {} variants; an experiment needs 2 to {MAX_VARIANTS}",
                    self.variants.len()
                ),
            );
        }
        for (i, variant) in self.variants.iter().enumerate() {
            let field = |f: &str| format!("experiment.variants[{i}].{f}");
            if !valid_name(&variant.name) {
                v.add(field("name"), "must be 1 to 64 letters, digits, '-' or '_'");
            } else if self.variants[..i].iter().any(|o| o.name == variant.name) {
                v.add(field("name"), format!("{:?} is used twice", variant.name));
            }
            if !(1..=MAX_TRAFFIC).contains(&variant.traffic_weight) {
                v.add(
                    field("traffic_weight"),
                    format!("must be 1 to {MAX_TRAFFIC}"),
                );
            }
            let w = &variant.weights;
            for (name, value) in [
                ("bought_together", w.complement),
                ("popular_in_category", w.affinity),
                ("popular", w.popular),
                ("viewed_together", w.coviewed),
                ("new_category", w.new_category),
                ("brand_affinity", w.brand),
                ("also_bought", w.also_bought),
                ("curated", w.curated),
            ] {
                if !(0.0..=MAX_WEIGHT).contains(&value) {
                    v.add(
                        field(&format!("weights.{name}")),
                        format!("must be 0 to {MAX_WEIGHT}"),
                    );
                }
            }
            if !(0.0..=1.0).contains(&w.price_fit) {
                v.add(field("weights.price_fit"), "must be 0 to 1");
            }
            if !(1..=50).contains(&w.per_category) {
                v.add(field("weights.per_category"), "must be 1 to 50");
            }
            for (name, n) in [
                ("affinity_categories", w.affinity_categories),
                ("new_categories", w.new_categories),
            ] {
                if n > 20 {
                    v.add(field(&format!("weights.{name}")), "must be 0 to 20");
                }
            }
        }
        v.finish(|| ())
    }

    /// The variant of a customer (or visitor), by a hash of the experiment
    /// name and `who`: the same on every call and every replica, and
    /// independent between experiments.
    pub fn assign(&self, who: &str) -> Assignment {
        let total: u64 = self
            .variants
            .iter()
            .map(|v| u64::from(v.traffic_weight))
            .sum();
        if total == 0 {
            return Assignment::default_strategy();
        }
        let hash = blake3::hash(format!("{}\0{who}", self.name).as_bytes());
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(&hash.as_bytes()[..8]);
        let mut bucket = u64::from_le_bytes(bytes) % total;
        for v in &self.variants {
            let w = u64::from(v.traffic_weight);
            if bucket < w {
                return Assignment {
                    experiment: self.name.clone(),
                    variant: v.name.clone(),
                    weights: v.weights.clone(),
                };
            }
            bucket -= w;
        }
        Assignment::default_strategy()
    }
}

/// A proportion with its 95% Wilson score interval: (value, low, high).
/// All zero when `n` is 0.
pub fn wilson(successes: u64, n: u64) -> (f64, f64, f64) {
    if n == 0 {
        return (0.0, 0.0, 0.0);
    }
    let z = 1.959_963_984_540_054_f64;
    let n_f = n as f64;
    let p = (successes.min(n)) as f64 / n_f;
    let z2 = z * z;
    let centre = (p + z2 / (2.0 * n_f)) / (1.0 + z2 / n_f);
    let half = z * (p * (1.0 - p) / n_f + z2 / (4.0 * n_f * n_f)).sqrt() / (1.0 + z2 / n_f);
    (p, (centre - half).max(0.0), (centre + half).min(1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn experiment(weights: &[u32]) -> Experiment {
        Experiment {
            name: "spring".into(),
            variants: weights
                .iter()
                .enumerate()
                .map(|(i, w)| Variant {
                    name: format!("v{i}"),
                    traffic_weight: *w,
                    weights: Weights::default(),
                })
                .collect(),
            running: true,
        }
    }

    #[test]
    fn assignment_is_stable_and_follows_the_weights() {
        let e = experiment(&[1, 3]);
        let mut counts = [0usize; 2];
        for i in 0..20_000 {
            let who = format!("customer-{i}");
            let a = e.assign(&who);
            assert_eq!(a, e.assign(&who), "same customer, same variant");
            counts[usize::from(a.variant == "v1")] += 1;
        }
        // 1:3 within a few percent (deterministic: the hash is fixed).
        let share = counts[1] as f64 / 20_000.0;
        assert!((0.72..0.78).contains(&share), "{share}");
        // Another experiment reshuffles independently.
        let mut other = experiment(&[1, 3]);
        other.name = "summer".into();
        let moved = (0..1000)
            .filter(|i| {
                let who = format!("customer-{i}");
                e.assign(&who).variant != other.assign(&who).variant
            })
            .count();
        assert!(moved > 100, "{moved}");
    }

    #[test]
    fn validation_names_the_fields() {
        let mut e = experiment(&[1, 0]);
        e.variants[1].name = "v0".into();
        e.variants[0].weights.price_fit = 2.0;
        e.variants[0].weights.affinity_categories = 21;
        let err = e.validate().unwrap_err();
        let fields: Vec<String> = err.iter().map(|f| f.field.clone()).collect();
        assert!(
            fields.contains(&"experiment.variants[1].name".to_string()),
            "{fields:?}"
        );
        assert!(fields.contains(&"experiment.variants[1].traffic_weight".to_string()));
        assert!(fields.contains(&"experiment.variants[0].weights.price_fit".to_string()));
        assert!(fields.contains(&"experiment.variants[0].weights.affinity_categories".to_string()));
        assert!(experiment(&[1, 1]).validate().is_ok());
        assert!(
            experiment(&[1]).validate().is_err(),
            "one variant is no experiment"
        );
    }

    #[test]
    fn wilson_interval_brackets_the_rate() {
        assert_eq!(wilson(0, 0), (0.0, 0.0, 0.0));
        let (p, lo, hi) = wilson(20, 100);
        assert!((p - 0.2).abs() < 1e-12);
        // Known values for 20/100: [0.1333, 0.2888].
        assert!(
            (lo - 0.1333).abs() < 1e-3 && (hi - 0.2888).abs() < 1e-3,
            "{lo} {hi}"
        );
        let (_, lo, hi) = wilson(0, 10);
        assert!(lo == 0.0 && hi > 0.0 && hi < 0.35);
    }
}
