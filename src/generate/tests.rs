use super::*;

fn now() -> Timestamp {
    Timestamp::from_millis(1_790_000_000_000).expect("a time")
}

#[test]
fn the_same_seed_makes_the_same_shop_and_another_seed_another() {
    let plan = Plan::new(7, 200, 1000, 6000);
    let (a, b) = (
        catalog(plan.seed, plan.products),
        catalog(plan.seed, plan.products),
    );
    assert_eq!(a.products, b.products);
    for i in [0, 1, 57, 199] {
        assert_eq!(history(&plan, &a, i, now()), history(&plan, &b, i, now()));
    }
    let other = Plan {
        seed: 8,
        ..plan.clone()
    };
    let c = catalog(other.seed, other.products);
    assert_ne!(a.products, c.products);
    assert_ne!(history(&plan, &a, 3, now()), history(&other, &c, 3, now()));
}

#[test]
fn the_shop_has_the_planned_size_and_shape() {
    let plan = Plan {
        long_customers: 1,
        long_events: 3000,
        ..Plan::new(1, 2000, 5000, 43_000)
    };
    let cat = catalog(plan.seed, plan.products);
    let n = cat.products.len();
    assert!((4500..=5000).contains(&n), "{n} products");
    let sized = cat.products.iter().filter(|p| p.size.0.is_some()).count();
    assert!(
        sized * 100 / n >= 50,
        "apparel and footwear come in sizes: {sized}/{n}"
    );
    let hs: Vec<History> = (0..plan.customers)
        .map(|i| history(&plan, &cat, i, now()))
        .collect();
    let events: usize = hs.iter().map(|h| h.events.len()).sum();
    assert!(
        events.abs_diff(plan.events) * 100 / plan.events <= 10,
        "{events} events for {} planned",
        plan.events
    );
    assert_eq!(hs[0].events.len(), 3000, "the long history");
    let lines: usize = hs
        .iter()
        .flat_map(|h| &h.orders)
        .map(|o| o.lines.len())
        .sum();
    let returned: usize = hs.iter().map(|h| h.returns.len()).sum();
    let delivered: usize = hs
        .iter()
        .flat_map(|h| &h.orders)
        .filter(|o| o.status == OrderStatus::Delivered)
        .map(|o| o.lines.len())
        .sum();
    assert!(lines > 1000, "{lines} ordered lines");
    let share = returned as f64 / delivered as f64;
    assert!(
        (0.05..0.11).contains(&share),
        "{returned} of {delivered} delivered lines returned"
    );
    let size_returns = hs
        .iter()
        .flat_map(|h| &h.returns)
        .filter(|r| r.reason_code.starts_with("too_"))
        .all(|r| cat.is_sized(&r.lines[0].product_id));
    assert!(size_returns, "size reasons only for sized products");
    let tickets: usize = hs.iter().map(|h| h.tickets.len()).sum();
    assert!(tickets > 0 && tickets * 10 < hs.iter().map(|h| h.orders.len()).sum::<usize>());
    let anonymous_first = hs.iter().filter(|h| {
        h.customer
            .as_ref()
            .is_some_and(|c| !c.anonymous_ids.is_empty())
            && h.events
                .first()
                .is_some_and(|e| e.actor.customer_id().is_none())
    });
    assert!(
        anonymous_first.count() > plan.customers / 20,
        "anonymous sessions later identified"
    );
    let later = now().millis() + 5 * 60_000;
    assert!(
        hs.iter()
            .flat_map(|h| &h.events)
            .all(|e| e.occurred_at.millis() <= later)
    );
}
