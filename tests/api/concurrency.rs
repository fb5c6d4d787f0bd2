//! Several writers (through two replicas) sending overlapping customers,
//! orders and events at once: no call fails, and every running total
//! matches a recomputation from what was sent.

use std::collections::BTreeMap;

use customer_context::proto::{self as pb, customer_ref::Identity};

use crate::{
    fixtures::*,
    harness::{Backend, Ingest, spawn_app},
    on_both_backends,
};

on_both_backends!(concurrent_writers_never_fail_and_totals_add_up);

const WRITERS: u64 = 4;
const ROUNDS: u64 = 15;
const CUSTOMERS: u64 = 8;

/// A small deterministic generator (PCG-style LCG), one per writer.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

/// What one writer sent that counts: per customer, (orders, spend, units).
type Sent = BTreeMap<String, (u64, i64, u64)>;

async fn writer(id: u64, mut ingest: Ingest) -> (Sent, Vec<String>) {
    let mut rng = Lcg(id * 7919 + 1);
    let mut sent = Sent::new();
    let mut failures = Vec::new();
    let products = ["shell-m", "shell-l", "socks", "mouse"];
    for round in 0..ROUNDS {
        // Customers first, in a random order, overlapping other writers'.
        let customers: Vec<pb::Customer> = (0..3)
            .map(|i| {
                let c = format!("c{}", rng.below(CUSTOMERS));
                customer(&c, &format!("Name {id}-{round}-{i}"), "", "", "")
            })
            .collect();
        if let Err(s) = ingest
            .upsert_customers(pb::UpsertCustomersRequest { customers })
            .await
        {
            failures.push(format!("customers: {s:?}"));
        }
        let mut orders = Vec::new();
        for i in 0..6 {
            let c = format!("c{}", rng.below(CUSTOMERS));
            let quantity = 1 + rng.below(3) as i64;
            let price = 100 * (1 + rng.below(50) as i64);
            let product = products[rng.below(4) as usize];
            orders.push(order(
                &format!("o-{id}-{round}-{i}"),
                &c,
                30,
                vec![line(product, quantity, price)],
            ));
            let entry = sent.entry(c).or_default();
            entry.0 += 1;
            entry.1 += quantity * price;
            entry.2 += quantity as u64;
        }
        // A resend of one of them in the same batch: a duplicate, counted
        // once.
        let resent = orders[rng.below(6) as usize].clone();
        orders.push(resent);
        if let Err(s) = ingest
            .record_orders(pb::RecordOrdersRequest { orders })
            .await
        {
            failures.push(format!("orders: {s:?}"));
        }
        let events: Vec<pb::BrowsingEvent> = (0..10)
            .map(|i| {
                let c = format!("c{}", rng.below(CUSTOMERS));
                let anonymous = format!("anon-{c}");
                event(
                    &format!("m-{id}-{round}-{i}"),
                    &c,
                    &anonymous,
                    pb::BrowsingEventType::ProductViewed,
                    products[rng.below(4) as usize],
                    5,
                )
            })
            .collect();
        if let Err(s) = ingest
            .record_events(pb::RecordEventsRequest { events })
            .await
        {
            failures.push(format!("events: {s:?}"));
        }
    }
    (sent, failures)
}

async fn concurrent_writers_never_fail_and_totals_add_up(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    seed_catalog(&app).await;
    let (replica_ingest, _) = app.replica().await;
    let tasks: Vec<_> = (0..WRITERS)
        .map(|w| {
            let ingest = if w % 2 == 0 {
                app.ingest.clone()
            } else {
                replica_ingest.clone()
            };
            tokio::spawn(writer(w, ingest))
        })
        .collect();
    let mut expected = Sent::new();
    let mut failures = Vec::new();
    for t in tasks {
        let (sent, failed) = t.await.expect("a writer");
        failures.extend(failed);
        for (c, (n, spend, units)) in sent {
            let e = expected.entry(c).or_default();
            e.0 += n;
            e.1 += spend;
            e.2 += units;
        }
    }
    assert!(
        failures.is_empty(),
        "{} calls failed: {failures:?}",
        failures.len()
    );
    for (c, (orders, spend, units)) in expected {
        let ctx = context_of(&app, Identity::CustomerId(c.clone())).await;
        let profile = ctx.profile.expect("a profile");
        assert_eq!(profile.order_count, orders, "{c}");
        assert_eq!(profile.units_purchased, units, "{c}");
        assert_eq!(
            profile.lifetime_spend,
            vec![pb::Money {
                currency_code: "USD".into(),
                amount_minor: spend
            }],
            "{c}"
        );
    }
}
