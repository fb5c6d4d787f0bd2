//! The learned re-ranker: a small tree ensemble (gradient-boosted trees,
//! trained by the `gbdt` crate) that re-orders the blend's first
//! [`WINDOW`] candidates for a customer from what each source says about
//! them, how popular they are, and how they fit the customer. Trained on
//! the shop's own earlier orders, labelled by what each customer bought new
//! next ([`super::validate`]); served only where it beats the blend there.
//!
//! The trees are copied out of `gbdt` into [`Forest`], a flat form that the
//! snapshot stores with every index checked, so a stored model can never
//! make ranking index out of bounds, and scoring allocates nothing.

use super::codec;

/// Candidates of the blend re-ordered by the trees, best first.
pub const WINDOW: usize = 200;
/// Numbers describing one candidate for one customer.
pub const FEATURES: usize = 14;
/// One candidate's numbers (see [`super::rank`] for what each one is).
pub type Features = [f32; FEATURES];

/// Trees grown.
const TREES: usize = 100;
/// Depth of each tree.
const DEPTH: u32 = 4;
/// Step of each tree.
const SHRINKAGE: f32 = 0.1;
/// Fewest examples in a leaf.
const MIN_LEAF: usize = 50;
/// Negatives kept: one in this many (weighted up as much), so training
/// stays a few seconds on a large shop.
const NEGATIVE_STRIDE: usize = 8;
/// Fewest positive examples (items bought new) to learn from.
pub const MIN_POSITIVES: usize = 100;

/// A node: a split (`feature`, `threshold`, children) or a leaf.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Node {
    /// The feature compared; [`LEAF`] for a leaf.
    feature: u32,
    /// Go left when the feature is below it; a leaf's value.
    value: f32,
    left: u32,
    right: u32,
}

/// `Node::feature` of a leaf.
const LEAF: u32 = u32::MAX;

/// A trained tree ensemble, flat.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Forest {
    nodes: Vec<Node>,
    roots: Vec<u32>,
    bias: f32,
    shrinkage: f32,
}

/// One training example: a candidate's numbers, whether it was bought new,
/// and its weight.
pub struct Example {
    /// The candidate's numbers.
    pub features: Features,
    /// Bought new in the held-out order.
    pub bought: bool,
}

impl Forest {
    /// The score of a candidate (higher is better; the log-odds of being
    /// bought new, up to a factor).
    pub fn score(&self, f: &Features) -> f32 {
        let mut sum = self.bias;
        for &root in &self.roots {
            let mut at = root as usize;
            loop {
                let n = self.nodes[at];
                if n.feature == LEAF {
                    sum += self.shrinkage * n.value;
                    break;
                }
                at = if f[n.feature as usize] < n.value {
                    n.left
                } else {
                    n.right
                } as usize;
            }
        }
        sum
    }

    /// Trees in the ensemble.
    pub fn trees(&self) -> usize {
        self.roots.len()
    }

    /// Trains on `examples`; `None` with fewer than [`MIN_POSITIVES`]
    /// positives (too little history to learn from). Deterministic.
    /// CPU-bound.
    pub fn train(examples: &[Example]) -> Option<Forest> {
        use gbdt::{config::Config, decision_tree::Data, gradient_boost::GBDT};
        if examples.iter().filter(|e| e.bought).count() < MIN_POSITIVES {
            return None;
        }
        let mut negatives = 0usize;
        let mut data: Vec<Data> = Vec::new();
        for e in examples {
            let weight = if e.bought {
                1.0
            } else {
                negatives += 1;
                if !negatives.is_multiple_of(NEGATIVE_STRIDE) {
                    continue;
                }
                NEGATIVE_STRIDE as f32
            };
            let label = if e.bought { 1.0 } else { -1.0 };
            data.push(Data::new_training_data(
                e.features.to_vec(),
                weight,
                label,
                None,
            ));
        }
        let mut config = Config::new();
        config.set_feature_size(FEATURES);
        config.set_max_depth(DEPTH);
        config.set_iterations(TREES);
        config.set_shrinkage(SHRINKAGE);
        config.set_min_leaf_size(MIN_LEAF);
        config.set_loss("LogLikelyhood");
        let mut gbdt = GBDT::new(&config);
        gbdt.fit(&mut data);
        Self::of_gbdt(&serde_json::to_value(&gbdt).ok()?).ok()
    }

    /// The ensemble `gbdt` serialised (its trees' nodes in order, children
    /// after their parent; index 0 is "none"), checked.
    fn of_gbdt(g: &serde_json::Value) -> Result<Forest, String> {
        let num = |v: &serde_json::Value, key: &str| {
            v.get(key)
                .and_then(serde_json::Value::as_f64)
                .ok_or_else(|| format!("no {key}"))
        };
        let mut forest = Forest {
            bias: num(g, "bias")? as f32,
            shrinkage: num(&g["conf"], "shrinkage")? as f32,
            ..Forest::default()
        };
        let trees = g["trees"].as_array().ok_or("no trees")?;
        for tree in trees {
            let nodes = tree["tree"]["tree"].as_array().ok_or("no nodes")?;
            let base = forest.nodes.len() as u32;
            forest.roots.push(base);
            for (k, n) in nodes.iter().enumerate() {
                let v = &n["value"];
                let leaf = v["is_leaf"].as_bool().ok_or("no is_leaf")?;
                let child = |key: &str| -> Result<u32, String> {
                    let c = num(n, key)? as u32;
                    Ok(base + c)
                };
                forest.nodes.push(if leaf {
                    Node {
                        feature: LEAF,
                        value: num(v, "pred")? as f32,
                        left: 0,
                        right: 0,
                    }
                } else {
                    Node {
                        feature: num(v, "feature_index")? as u32,
                        value: num(v, "feature_value")? as f32,
                        left: child("left")?,
                        right: child("right")?,
                    }
                });
                debug_assert_eq!(num(n, "index").ok(), Some(k as f64));
            }
        }
        forest.check()?;
        Ok(forest)
    }

    /// Every split compares a known feature and points forward, inside the
    /// nodes: scoring cannot index out of bounds nor loop.
    fn check(&self) -> Result<(), String> {
        let n = self.nodes.len() as u32;
        let fine = self.roots.iter().all(|&r| r < n)
            && self.nodes.iter().enumerate().all(|(k, node)| {
                node.feature == LEAF
                    || ((node.feature as usize) < FEATURES
                        && node.left > k as u32
                        && node.right > k as u32
                        && node.left < n
                        && node.right < n)
            });
        if fine {
            Ok(())
        } else {
            Err("a tree of the learned ranker is malformed".into())
        }
    }

    /// Writes the ensemble.
    pub fn encode(&self, w: &mut codec::Writer) {
        w.f32(self.bias);
        w.f32(self.shrinkage);
        w.u32s(&self.roots);
        w.u32(self.nodes.len() as u32);
        for n in &self.nodes {
            w.u32(n.feature);
            w.f32(n.value);
            w.u32(n.left);
            w.u32(n.right);
        }
    }

    /// Reads what [`Forest::encode`] wrote, checked.
    pub fn decode(r: &mut codec::Reader<'_>) -> Result<Forest, String> {
        let (bias, shrinkage, roots) = (r.f32()?, r.f32()?, r.u32s()?);
        let n = r.u32()? as usize;
        let mut nodes = Vec::with_capacity(n.min(1 << 20));
        for _ in 0..n {
            nodes.push(Node {
                feature: r.u32()?,
                value: r.f32()?,
                left: r.u32()?,
                right: r.u32()?,
            });
        }
        let forest = Forest {
            nodes,
            roots,
            bias,
            shrinkage,
        };
        forest.check()?;
        Ok(forest)
    }
}

/// Examples where an item is bought when its first feature is high and
/// its second low (for tests of what ranks with trees).
#[cfg(test)]
pub(crate) fn examples() -> Vec<Example> {
    (0..4000u32)
        .map(|k| {
            let a = (k * 7919 % 1000) as f32 / 1000.0;
            let b = (k * 104_729 % 997) as f32 / 997.0;
            let mut features = [0.0; FEATURES];
            features[0] = a;
            features[1] = b;
            features[2] = (k % 13) as f32;
            Example {
                features,
                bought: a > 0.7 && b < 0.4,
            }
        })
        .collect()
}

/// A forest trained on [`examples`], once per test run.
#[cfg(test)]
pub(crate) fn trained() -> Forest {
    static TREES: std::sync::OnceLock<Forest> = std::sync::OnceLock::new();
    TREES
        .get_or_init(|| Forest::train(&examples()).expect("enough positives"))
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(a: f32, b: f32) -> Features {
        let mut f = [0.0; FEATURES];
        f[0] = a;
        f[1] = b;
        f
    }

    #[test]
    fn learns_what_was_bought_and_scores_it_higher() {
        let forest = Forest::train(&examples()).expect("enough positives");
        assert_eq!(forest.trees(), TREES);
        assert!(forest.score(&with(0.9, 0.1)) > forest.score(&with(0.2, 0.1)));
        assert!(forest.score(&with(0.9, 0.1)) > forest.score(&with(0.9, 0.8)));
        // Deterministic: the same examples grow the same trees.
        assert_eq!(Forest::train(&examples()), Some(forest));
    }

    #[test]
    fn the_flat_forest_scores_as_gbdt_predicts() {
        use gbdt::{config::Config, decision_tree::Data, gradient_boost::GBDT};
        let mut config = Config::new();
        config.set_feature_size(FEATURES);
        config.set_max_depth(DEPTH);
        config.set_iterations(20);
        config.set_shrinkage(SHRINKAGE);
        config.set_loss("LogLikelyhood");
        let mut data: Vec<Data> = examples()
            .iter()
            .map(|e| {
                let label = if e.bought { 1.0 } else { -1.0 };
                Data::new_training_data(e.features.to_vec(), 1.0, label, None)
            })
            .collect();
        let mut gbdt = GBDT::new(&config);
        gbdt.fit(&mut data);
        let forest = Forest::of_gbdt(&serde_json::to_value(&gbdt).expect("json")).expect("flat");
        let predicted = gbdt.predict(&data);
        for (d, p) in data.iter().zip(predicted) {
            let f: Features = d.feature.clone().try_into().expect("features");
            // gbdt answers 1 / (1 + e^(-2x)) for log-likelihood.
            let p_flat = 1.0 / (1.0 + (-2.0 * forest.score(&f)).exp());
            assert!((p - p_flat).abs() < 1e-5, "{p} against {p_flat}");
        }
    }

    #[test]
    fn too_few_positives_learn_nothing() {
        let few: Vec<Example> = examples()
            .into_iter()
            .filter(|e| !e.bought || e.features[2] == 0.0)
            .collect();
        assert!(few.iter().any(|e| e.bought));
        assert_eq!(Forest::train(&few), None);
    }

    #[test]
    fn a_stored_forest_reads_back_and_a_damaged_one_is_an_error() {
        let forest = Forest::train(&examples()).expect("enough positives");
        let mut w = codec::Writer::default();
        forest.encode(&mut w);
        let bytes = w.into_bytes();
        let back = Forest::decode(&mut codec::Reader::new(&bytes)).expect("reads back");
        assert_eq!(back, forest);
        // A split pointing backwards (a loop) or past the end is refused.
        let mut bad = forest.clone();
        let split = bad
            .nodes
            .iter()
            .position(|n| n.feature != LEAF)
            .expect("a split");
        bad.nodes[split].left = split as u32;
        let mut w = codec::Writer::default();
        bad.encode(&mut w);
        assert!(Forest::decode(&mut codec::Reader::new(&w.into_bytes())).is_err());
        let mut bad = forest;
        bad.nodes[split].feature = FEATURES as u32;
        let mut w = codec::Writer::default();
        bad.encode(&mut w);
        assert!(Forest::decode(&mut codec::Reader::new(&w.into_bytes())).is_err());
    }
}
