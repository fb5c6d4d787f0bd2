//! Fit: the size a customer keeps in each size domain (a category subtree
//! with one size system), inferred from what they kept and what they sent
//! back as too small or too large. Pure: the store reads the evidence,
//! suggestions and the context use the profile.
//!
//! The estimate per domain is a weighted vote. Each line kept (bought and
//! not returned) votes for its size; a return as too small votes against
//! its size and every smaller one and, more weakly, for the next size up
//! (too large: the mirror image). Votes
//! fade with a half-life of [`HALF_LIFE_DAYS`], so recent evidence weighs
//! more. Sizes with no order (`SizeSystem::Other`) are only ever voted for
//! by keeping them.

use std::collections::BTreeMap;

use crate::domain::{CategoryPath, Size, SizeDomain, SizeSystem, Timestamp};

/// Evidence this old counts half as much as evidence from today.
pub const HALF_LIFE_DAYS: f64 = 365.0;
/// How much a size return says about the neighbouring size, relative to a
/// kept item (the customer did not try that size on).
const NEIGHBOUR_VOTE: f64 = 0.75;

/// One purchased line of a sized product.
#[derive(Debug, Clone, PartialEq)]
pub struct SizedPurchase {
    /// The order.
    pub order_id: String,
    /// The product (a variant).
    pub product_id: String,
    /// Units bought.
    pub quantity: i64,
    /// Its size, as the catalogue says.
    pub size: Size,
    /// Its stored category path, as the catalogue says.
    pub category_path: String,
    /// When the order was placed.
    pub placed_at: Timestamp,
}

/// One returned line of a sized product (rejected returns left out).
#[derive(Debug, Clone, PartialEq)]
pub struct SizedReturn {
    /// The order it came from.
    pub order_id: String,
    /// The product (a variant).
    pub product_id: String,
    /// Units returned.
    pub quantity: i64,
    /// Its size, as the catalogue says.
    pub size: Size,
    /// Its stored category path, as the catalogue says.
    pub category_path: String,
    /// The return's reason code.
    pub reason_code: String,
    /// When the return was requested.
    pub requested_at: Timestamp,
}

/// What became of one sized item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Bought and not returned.
    Kept,
    /// Returned as too small.
    TooSmall,
    /// Returned as too large.
    TooLarge,
}

/// One piece of evidence about a customer's size.
#[derive(Debug, Clone, PartialEq)]
pub struct Evidence {
    /// Where it applies.
    pub domain: SizeDomain,
    /// The size of the item.
    pub size: Size,
    /// Kept or sent back for its size.
    pub outcome: Outcome,
    /// When (ordered, or return requested).
    pub at: Timestamp,
}

/// The size outcome a return's reason code means, if any. Codes read:
/// `too_small`, `too_tight`, `runs_small`, `size_too_small`, `too_large`,
/// `too_big`, `too_loose`, `runs_large`, `size_too_large` (any case).
pub fn size_reason(code: &str) -> Option<Outcome> {
    match code.trim().to_ascii_lowercase().replace('-', "_").as_str() {
        "too_small" | "too_tight" | "runs_small" | "size_too_small" => Some(Outcome::TooSmall),
        "too_large" | "too_big" | "too_loose" | "runs_large" | "size_too_large" => {
            Some(Outcome::TooLarge)
        }
        _ => None,
    }
}

/// The evidence in a customer's sized purchases and returns: each line
/// with units left after every (non-rejected) return of it is kept; each
/// returned line with a size reason says its size was wrong. A line
/// returned for another reason says nothing about size.
pub fn evidence(purchases: &[SizedPurchase], returns: &[SizedReturn]) -> Vec<Evidence> {
    let mut returned: BTreeMap<(&str, &str), i64> = BTreeMap::new();
    for r in returns {
        *returned
            .entry((r.order_id.as_str(), r.product_id.as_str()))
            .or_insert(0) += r.quantity;
    }
    let domain =
        |path: &str, system: SizeSystem| SizeDomain::of(&CategoryPath::from_stored(path), system);
    let mut out = Vec::new();
    for p in purchases {
        let back = returned
            .get_mut(&(p.order_id.as_str(), p.product_id.as_str()))
            .map_or(0, |n| {
                let taken = (*n).min(p.quantity);
                *n -= taken;
                taken
            });
        if p.quantity > back {
            out.push(Evidence {
                domain: domain(&p.category_path, p.size.system()),
                size: p.size.clone(),
                outcome: Outcome::Kept,
                at: p.placed_at,
            });
        }
    }
    for r in returns {
        if let Some(outcome) = size_reason(&r.reason_code) {
            out.push(Evidence {
                domain: domain(&r.category_path, r.size.system()),
                size: r.size.clone(),
                outcome,
                at: r.requested_at,
            });
        }
    }
    out
}

/// How sure an estimate is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Confidence {
    /// It rests on size returns only (one up from what was too small).
    Low,
    /// One item kept in this size.
    Medium,
    /// Two or more items kept in this size, and no other size close.
    High,
}

/// The customer's size in one domain, with its evidence.
#[derive(Debug, Clone, PartialEq)]
pub struct Estimate {
    /// The domain.
    pub domain: SizeDomain,
    /// The size they keep; `None` when the evidence points nowhere (only
    /// returns that contradict each other).
    pub size: Option<Size>,
    /// How sure.
    pub confidence: Confidence,
    /// Items kept in the domain, any size.
    pub kept: u32,
    /// Items kept in `size`.
    pub kept_in_size: u32,
    /// Sizes returned as too small, newest first (repeats kept).
    pub too_small: Vec<Size>,
    /// Sizes returned as too large, newest first.
    pub too_large: Vec<Size>,
    /// The latest evidence.
    pub last_at: Timestamp,
}

impl Estimate {
    /// For the agent: "L — kept 2, returned M as too small" ("kept 2 of
    /// 3 in L" when other sizes were kept too).
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        let size = self.size.as_ref().map_or("unclear", Size::label);
        if self.kept > 0 && self.kept_in_size == self.kept {
            parts.push(format!("kept {}", self.kept));
        } else if self.kept > 0 {
            parts.push(format!(
                "kept {} of {} in {size}",
                self.kept_in_size, self.kept
            ));
        }
        for (sizes, how) in [
            (&self.too_small, "too small"),
            (&self.too_large, "too large"),
        ] {
            if !sizes.is_empty() {
                let mut labels: Vec<&str> = sizes.iter().map(Size::label).collect();
                labels.dedup();
                parts.push(format!("returned {} as {how}", labels.join(", ")));
            }
        }
        format!("{size} — {}", parts.join(", "))
    }
}

/// A customer's sizes, one estimate per domain with evidence.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SizeProfile {
    /// Estimates, by domain.
    pub estimates: Vec<Estimate>,
}

impl SizeProfile {
    /// The estimate for `domain`, when there is evidence in it.
    pub fn get(&self, domain: &SizeDomain) -> Option<&Estimate> {
        self.estimates.iter().find(|e| &e.domain == domain)
    }

    /// Where `domain` has no evidence, the estimate of a related domain
    /// whose size probably carries over: the same size system in the same
    /// department (the first level of the category: sandals from running
    /// shoes, knitwear from tops), one `carries` accepts (the shop's
    /// customers keep the same size in both), with an item kept in its
    /// size; the one with most items kept in it, then the newest. Never
    /// across departments: a shoe 9 says nothing of a numeric dress size,
    /// nor a men's M of a women's.
    pub fn related(
        &self,
        domain: &SizeDomain,
        carries: &dyn Fn(&SizeDomain) -> bool,
    ) -> Option<&Estimate> {
        if self.get(domain).is_some() || domain.system == SizeSystem::Other {
            return None;
        }
        let department = |d: &SizeDomain| d.category.split(" > ").next().map(str::to_owned);
        self.estimates
            .iter()
            .filter(|e| {
                e.domain.system == domain.system
                    && department(&e.domain) == department(domain)
                    && e.size.is_some()
                    && e.kept_in_size > 0
                    && carries(&e.domain)
            })
            .max_by(|a, b| {
                a.kept_in_size
                    .cmp(&b.kept_in_size)
                    .then(a.last_at.cmp(&b.last_at))
                    .then(b.domain.category.cmp(&a.domain.category))
            })
    }
}

/// Infers the profile. `catalogue_sizes` gives the sizes the shop sells in
/// a domain (they define "one size up" for numeric and waist×length
/// sizes; letter sizes have a fixed order).
pub fn infer(
    evidence: &[Evidence],
    catalogue_sizes: &dyn Fn(&SizeDomain) -> Vec<Size>,
    now: Timestamp,
) -> SizeProfile {
    let mut by_domain: BTreeMap<&SizeDomain, Vec<&Evidence>> = BTreeMap::new();
    for e in evidence {
        by_domain.entry(&e.domain).or_default().push(e);
    }
    let estimates = by_domain
        .into_iter()
        .map(|(domain, items)| {
            estimate(domain, &items, &scale(domain, &items, catalogue_sizes), now)
        })
        .collect();
    SizeProfile { estimates }
}

/// The ordered sizes of a domain (none for sizes without an order).
fn scale(
    domain: &SizeDomain,
    items: &[&Evidence],
    catalogue_sizes: &dyn Fn(&SizeDomain) -> Vec<Size>,
) -> Vec<Size> {
    let mut sizes: Vec<Size> = match domain.system {
        SizeSystem::Other => return Vec::new(),
        SizeSystem::Alpha => crate::domain::alpha_sizes(),
        _ => catalogue_sizes(domain),
    };
    sizes.extend(items.iter().map(|e| e.size.clone()));
    // Each rank parsed once, not once per comparison.
    let mut ranked: Vec<(f64, Size)> = sizes
        .into_iter()
        .filter_map(|s| Some((s.rank()?, s)))
        .collect();
    ranked.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(std::cmp::Ordering::Equal));
    let mut sizes: Vec<Size> = ranked.into_iter().map(|(_, s)| s).collect();
    sizes.dedup();
    sizes
}

/// Per size: the vote, items kept in it, and the latest evidence for it.
#[derive(Default)]
struct Tally {
    vote: f64,
    kept: u32,
    latest: i64,
}

fn estimate(domain: &SizeDomain, items: &[&Evidence], scale: &[Size], now: Timestamp) -> Estimate {
    let mut tally: BTreeMap<String, (Size, Tally)> = BTreeMap::new();
    let mut add = |size: &Size, vote: f64, kept: bool, at: i64| {
        let t = &mut tally
            .entry(size.label().to_owned())
            .or_insert_with(|| (size.clone(), Tally::default()))
            .1;
        t.vote += vote;
        t.kept += u32::from(kept);
        if vote > 0.0 {
            t.latest = t.latest.max(at);
        }
    };
    let step = |size: &Size, up: bool| -> Option<&Size> {
        let at = scale.iter().position(|s| s == size)?;
        if up {
            scale.get(at + 1)
        } else {
            at.checked_sub(1).and_then(|k| scale.get(k))
        }
    };
    let mut sorted: Vec<&&Evidence> = items.iter().collect();
    sorted.sort_by_key(|e| std::cmp::Reverse(e.at));
    let (mut too_small, mut too_large, mut kept) = (Vec::new(), Vec::new(), 0u32);
    // (size sent back, its rank, too small, weight): applied once every
    // size is in.
    let mut against: Vec<(&Size, Option<f64>, bool, f64)> = Vec::new();
    for e in &sorted {
        let age_days = (now.millis() - e.at.millis()).max(0) as f64 / 86_400_000.0;
        let w = 0.5f64.powf(age_days / HALF_LIFE_DAYS);
        let at = e.at.millis();
        match e.outcome {
            Outcome::Kept => {
                kept += 1;
                add(&e.size, w, true, at);
            }
            Outcome::TooSmall | Outcome::TooLarge => {
                let up = e.outcome == Outcome::TooSmall;
                add(&e.size, 0.0, false, at);
                if let Some(next) = step(&e.size, up) {
                    add(next, NEIGHBOUR_VOTE * w, false, at);
                }
                against.push((&e.size, e.size.rank(), up, w));
                if up {
                    too_small.push(e.size.clone())
                } else {
                    too_large.push(e.size.clone())
                }
            }
        }
    }
    // Too small at M says every size up to M is too small (too large: every
    // size from it up), so a return never moves the estimate the wrong way.
    for (size, t) in tally.values_mut() {
        let rank = size.rank();
        for (back, back_rank, up, w) in &against {
            let hit = match (rank, *back_rank) {
                (Some(r), Some(b)) => {
                    if *up {
                        r <= b
                    } else {
                        r >= b
                    }
                }
                _ => size == *back,
            };
            if hit {
                t.vote -= w;
            }
        }
    }
    // The strongest vote wins; ties go to more items kept, then to the
    // newer evidence, then to the smaller size (deterministic).
    let mut ranked: Vec<&(Size, Tally)> = tally.values().filter(|(_, t)| t.vote > 1e-9).collect();
    ranked.sort_by(|(a, x), (b, y)| {
        y.vote
            .total_cmp(&x.vote)
            .then(y.kept.cmp(&x.kept))
            .then(y.latest.cmp(&x.latest))
            .then(
                a.rank()
                    .partial_cmp(&b.rank())
                    .unwrap_or(std::cmp::Ordering::Equal),
            )
            .then(a.label().cmp(b.label()))
    });
    let best = ranked.first();
    let kept_in_size = best.map_or(0, |(_, t)| t.kept);
    let runner_up = ranked.get(1).map_or(0.0, |(_, t)| t.vote);
    let confidence = match best {
        Some((_, t)) if t.kept >= 2 && t.vote >= 2.0 * runner_up => Confidence::High,
        Some((_, t)) if t.kept >= 1 => Confidence::Medium,
        _ => Confidence::Low,
    };
    Estimate {
        domain: domain.clone(),
        size: best.map(|(s, _)| s.clone()),
        confidence,
        kept,
        kept_in_size,
        too_small,
        too_large,
        last_at: sorted.first().map_or(Timestamp::MIN, |e| e.at),
    }
}

#[cfg(test)]
mod tests;
