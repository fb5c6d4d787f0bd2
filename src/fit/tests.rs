use proptest::prelude::*;

use super::*;

const DAY: i64 = 86_400_000;

fn now() -> Timestamp {
    Timestamp::from_millis(2_000_000_000_000).unwrap()
}

fn domain(category: &str, system: SizeSystem) -> SizeDomain {
    SizeDomain {
        category: category.into(),
        system,
    }
}

fn jackets() -> SizeDomain {
    domain("Apparel > Jackets", SizeSystem::Alpha)
}

fn ev(size: &str, outcome: Outcome, days_ago: i64) -> Evidence {
    let size = Size::parse(size, None).unwrap();
    Evidence {
        domain: domain("Apparel > Jackets", size.system()),
        size,
        outcome,
        at: Timestamp::from_millis(now().millis() - days_ago * DAY).unwrap(),
    }
}

fn no_catalogue(_: &SizeDomain) -> Vec<Size> {
    Vec::new()
}

fn one(evidence: &[Evidence]) -> Estimate {
    let p = infer(evidence, &no_catalogue, now());
    assert_eq!(p.estimates.len(), 1, "{p:?}");
    p.estimates[0].clone()
}

fn label(e: &Estimate) -> Option<&str> {
    e.size.as_ref().map(Size::label)
}

#[test]
fn kept_sizes_make_the_estimate() {
    let e = one(&[
        ev("M", Outcome::Kept, 10),
        ev("M", Outcome::Kept, 100),
        ev("L", Outcome::Kept, 200),
    ]);
    assert_eq!(label(&e), Some("M"));
    assert_eq!(e.confidence, Confidence::High);
    assert_eq!((e.kept, e.kept_in_size), (3, 2));
    let e = one(&[ev("M", Outcome::Kept, 10)]);
    assert_eq!(e.confidence, Confidence::Medium);
}

#[test]
fn size_returns_move_the_estimate_the_right_way() {
    // Only a return: one up from what was too small, one down from what
    // was too large, with low confidence.
    let e = one(&[ev("M", Outcome::TooSmall, 10)]);
    assert_eq!((label(&e), e.confidence), (Some("L"), Confidence::Low));
    let e = one(&[ev("M", Outcome::TooLarge, 10)]);
    assert_eq!(label(&e), Some("S"));
    // Kept L long ago, bought M and sent it back as too small: L.
    let e = one(&[ev("L", Outcome::Kept, 400), ev("M", Outcome::TooSmall, 10)]);
    assert_eq!((label(&e), e.confidence), (Some("L"), Confidence::Medium));
    assert_eq!(e.summary(), "L — kept 1, returned M as too small");
    // Kept M once, then M came back as too small twice recently: L now.
    let e = one(&[
        ev("M", Outcome::Kept, 700),
        ev("M", Outcome::TooSmall, 20),
        ev("M", Outcome::TooSmall, 5),
    ]);
    assert_eq!(label(&e), Some("L"));
    assert_eq!(e.confidence, Confidence::Low, "no L was ever kept");
}

#[test]
fn recent_evidence_weighs_more() {
    let e = one(&[
        ev("M", Outcome::Kept, 3 * 365),
        ev("M", Outcome::Kept, 3 * 365 + 10),
        ev("L", Outcome::Kept, 30),
        ev("L", Outcome::Kept, 60),
    ]);
    assert_eq!(label(&e), Some("L"));
}

#[test]
fn sizes_without_an_order_are_only_voted_for_by_keeping_them() {
    let e = one(&[
        ev("Petite", Outcome::Kept, 10),
        ev("Petite", Outcome::Kept, 20),
        ev("Tall", Outcome::Kept, 300),
    ]);
    assert_eq!(
        (label(&e), e.confidence),
        (Some("Petite"), Confidence::High)
    );
    let e = one(&[ev("Petite", Outcome::TooSmall, 10)]);
    assert_eq!(label(&e), None, "no neighbour to move to");
}

#[test]
fn each_system_is_its_own_domain() {
    let p = infer(
        &[
            ev("M", Outcome::Kept, 10),
            ev("40", Outcome::Kept, 10),
            ev("40", Outcome::Kept, 20),
        ],
        &no_catalogue,
        now(),
    );
    assert_eq!(p.estimates.len(), 2);
    let numeric = p
        .get(&domain("Apparel > Jackets", SizeSystem::Numeric))
        .unwrap();
    assert_eq!(label(numeric), Some("40"));
    assert_eq!(label(p.get(&jackets()).unwrap()), Some("M"));
    assert!(
        p.get(&domain("Apparel > Tops", SizeSystem::Alpha))
            .is_none()
    );
}

#[test]
fn numeric_steps_follow_the_catalogue() {
    let shoes = domain("Footwear > Running", SizeSystem::Numeric);
    let catalogue = |d: &SizeDomain| -> Vec<Size> {
        if d.category == "Footwear > Running" {
            ["8", "8.5", "9", "9.5", "10"]
                .iter()
                .map(|s| Size::parse(s, None).unwrap())
                .collect()
        } else {
            Vec::new()
        }
    };
    let mut e = ev("9", Outcome::TooSmall, 5);
    e.domain = shoes.clone();
    let p = infer(&[e], &catalogue, now());
    assert_eq!(label(p.get(&shoes).unwrap()), Some("9.5"));
}

#[test]
fn a_related_domain_of_the_same_department_and_system_carries_its_size() {
    let at = |d: SizeDomain, size: &str, days_ago: i64| Evidence {
        domain: d,
        ..ev(size, Outcome::Kept, days_ago)
    };
    let shoes = |c: &str| domain(&format!("Footwear > {c}"), SizeSystem::Numeric);
    let profile = infer(
        &[
            at(shoes("Running"), "9", 10),
            at(shoes("Running"), "9", 20),
            at(shoes("Boots"), "9.5", 5),
            at(jackets(), "L", 30),
            at(domain("Men > Tops", SizeSystem::Alpha), "XL", 1),
        ],
        &no_catalogue,
        now(),
    );
    // Sandals: from running shoes (two kept in 9 beat one newer 9.5).
    let sandals = profile
        .related(&shoes("Sandals"), &|_| true)
        .expect("carried");
    assert_eq!(sandals.domain, shoes("Running"));
    assert_eq!(label(sandals), Some("9"));
    // Knitwear: from jackets, never from another department's tops.
    let knit = profile
        .related(&domain("Apparel > Knitwear", SizeSystem::Alpha), &|_| true)
        .expect("carried");
    assert_eq!(knit.domain, jackets());
    // Not across systems or departments, nor over the domain's own evidence.
    assert!(
        profile
            .related(&domain("Apparel > Dresses", SizeSystem::Numeric), &|_| true)
            .is_none()
    );
    assert!(
        profile
            .related(&domain("Women > Tops", SizeSystem::Alpha), &|_| true)
            .is_none()
    );
    assert!(profile.related(&jackets(), &|_| true).is_none());
    // Nor where the shop's customers say sizes do not carry.
    assert!(
        profile
            .related(&shoes("Sandals"), &|d| d.category != "Footwear > Running")
            .is_some_and(|e| e.domain == shoes("Boots"))
    );
    // A domain known only from a size return does not carry.
    let returned = infer(&[ev("M", Outcome::TooSmall, 3)], &no_catalogue, now());
    assert!(
        returned
            .related(&domain("Apparel > Knitwear", SizeSystem::Alpha), &|_| true)
            .is_none()
    );
}

fn purchase(order: &str, product: &str, quantity: i64, size: &str) -> SizedPurchase {
    SizedPurchase {
        order_id: order.into(),
        product_id: product.into(),
        quantity,
        size: Size::parse(size, None).unwrap(),
        category_path: "Apparel > Jackets".into(),
        placed_at: Timestamp::from_millis(now().millis() - 30 * DAY).unwrap(),
    }
}

fn returned(order: &str, product: &str, quantity: i64, size: &str, code: &str) -> SizedReturn {
    SizedReturn {
        order_id: order.into(),
        product_id: product.into(),
        quantity,
        size: Size::parse(size, None).unwrap(),
        category_path: "Apparel > Jackets > Rain".into(),
        reason_code: code.into(),
        requested_at: Timestamp::from_millis(now().millis() - 20 * DAY).unwrap(),
    }
}

#[test]
fn evidence_counts_what_was_kept_and_what_came_back_for_its_size() {
    let purchases = [
        // Ordered M and L, sent the M back as too small.
        purchase("o1", "shell-m", 1, "M"),
        purchase("o1", "shell-l", 1, "L"),
        // Two of one tee, one returned damaged: one kept.
        purchase("o2", "tee-m", 2, "M"),
        // Returned for a reason that is not about size: not kept.
        purchase("o3", "fleece-s", 1, "S"),
    ];
    let returns = [
        returned("o1", "shell-m", 1, "M", "Too_Small"),
        returned("o2", "tee-m", 1, "M", "damaged"),
        returned("o3", "fleece-s", 1, "S", "changed_mind"),
    ];
    let e = evidence(&purchases, &returns);
    let got: Vec<(&str, Outcome)> = e.iter().map(|e| (e.size.label(), e.outcome)).collect();
    assert_eq!(
        got,
        [
            ("L", Outcome::Kept),
            ("M", Outcome::Kept),
            ("M", Outcome::TooSmall)
        ]
    );
    assert!(
        e.iter().all(|e| e.domain == jackets()),
        "two levels of the path"
    );
}

/// A customer with a true letter size: items kept in it, and wrong sizes
/// sent back with the right reason, at any times.
fn true_size_history() -> impl Strategy<Value = (usize, Vec<Evidence>)> {
    (
        1usize..9,
        prop::collection::vec(0i64..2000, 2..6),
        prop::collection::vec((prop::bool::ANY, 0i64..2000), 0..6),
    )
        .prop_map(|(t, kept, wrong)| {
            let scale = crate::domain::alpha_sizes();
            let mut out: Vec<Evidence> = kept
                .iter()
                .map(|&d| ev(scale[t].label(), Outcome::Kept, d))
                .collect();
            for (smaller, d) in wrong {
                let (size, outcome) = if smaller {
                    (&scale[t - 1], Outcome::TooSmall)
                } else {
                    (&scale[t + 1], Outcome::TooLarge)
                };
                out.push(ev(size.label(), outcome, d));
            }
            (t, out)
        })
}

fn any_evidence() -> impl Strategy<Value = Vec<Evidence>> {
    let sizes = [
        "XS", "S", "M", "L", "XL", "9", "9.5", "10", "Petite", "Tall",
    ];
    prop::collection::vec(
        (
            prop::sample::select(sizes.to_vec()),
            prop::sample::select(vec![Outcome::Kept, Outcome::TooSmall, Outcome::TooLarge]),
            0i64..3000,
        ),
        0..20,
    )
    .prop_map(|v| v.into_iter().map(|(s, o, d)| ev(s, o, d)).collect())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// Two or more items kept in the true size, and wrong sizes returned
    /// for the right reason: the estimate is the true size, confidently.
    #[test]
    fn the_true_size_is_found((t, history) in true_size_history()) {
        let e = one(&history);
        let truth = crate::domain::alpha_sizes()[t].clone();
        prop_assert_eq!(label(&e), Some(truth.label()));
        prop_assert_eq!(e.confidence, Confidence::High);
    }

    /// A confident estimate is a size the customer kept at least twice;
    /// every estimate is a size kept or next to one sent back.
    #[test]
    fn estimates_rest_on_evidence(history in any_evidence()) {
        let p = infer(&history, &no_catalogue, now());
        for e in &p.estimates {
            let mine: Vec<&Evidence> = history.iter().filter(|h| h.domain == e.domain).collect();
            prop_assert!(!mine.is_empty());
            let Some(size) = &e.size else { continue };
            let kept = mine.iter().filter(|h| h.outcome == Outcome::Kept && &h.size == size).count();
            prop_assert_eq!(kept as u32, e.kept_in_size);
            if e.confidence == Confidence::High {
                prop_assert!(kept >= 2);
            }
            if kept == 0 {
                prop_assert_eq!(e.confidence, Confidence::Low);
                prop_assert!(size.rank().is_some(), "an unordered size is never a neighbour");
            }
        }
    }

    /// A new return of the estimated size as too small never moves the
    /// estimate down (too large: never up).
    #[test]
    fn a_size_return_moves_the_estimate_the_right_way(
        history in any_evidence(),
        smaller in prop::bool::ANY,
    ) {
        let before = infer(&history, &no_catalogue, now());
        for e in &before.estimates {
            let (Some(size), Some(rank)) = (&e.size, e.size.as_ref().and_then(Size::rank)) else {
                continue;
            };
            let mut more = history.clone();
            more.push(Evidence {
                domain: e.domain.clone(),
                size: size.clone(),
                outcome: if smaller { Outcome::TooSmall } else { Outcome::TooLarge },
                at: now(),
            });
            let after = infer(&more, &no_catalogue, now());
            let moved = after.get(&e.domain).and_then(|a| a.size.as_ref()).and_then(Size::rank);
            if let Some(moved) = moved {
                if smaller {
                    prop_assert!(moved >= rank, "{:?} -> {:?}", size, moved);
                } else {
                    prop_assert!(moved <= rank, "{:?} -> {:?}", size, moved);
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// Time passing changes no estimate: every piece of evidence loses
    /// weight alike, so what one replica inferred an hour ago (and
    /// remembers) is what it would infer now.
    #[test]
    fn the_clock_does_not_change_the_estimate(
        history in any_evidence(),
        later_ms in 0i64..(400 * DAY),
    ) {
        let later = Timestamp::from_millis(now().millis() + later_ms).unwrap();
        prop_assert_eq!(
            infer(&history, &no_catalogue, now()),
            infer(&history, &no_catalogue, later)
        );
    }
}
