//! A generated retailer at any scale, deterministic by seed, for benchmarks
//! and load tests: a power-law catalogue across apparel, footwear,
//! accessories, home and electronics (sized styles in apparel and
//! footwear), customers whose browsing sessions sometimes end in an order
//! (baskets with a complement), about 8 % of ordered lines returned with
//! reasons (size reasons concentrated in apparel and footwear), tickets for a
//! few percent of orders, anonymous sessions later identified, and a few
//! customers with very long histories. Generation is pure (this module);
//! [`write`] stores it through the same store calls as ingestion.
//! [`fit`] is a second, smaller shop where every customer has a true size
//! per size domain, for scoring the size inference (`evaluate-fit`).

mod catalog;
pub mod fit;
mod write;

pub use catalog::{Catalog, catalog};
pub use write::{Written, write};

use crate::{domain::*, rng::Rng};

/// The shop to generate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Same seed, same shop.
    pub seed: u64,
    /// Customers (with accounts).
    pub customers: usize,
    /// Catalogue products (variants).
    pub products: usize,
    /// Browsing events, about (the total lands within a few percent).
    pub events: usize,
    /// Customers with a very long history (the first ones).
    pub long_customers: usize,
    /// Events of each long history.
    pub long_events: usize,
}

impl Plan {
    /// A plan with the default share of long histories: one per 200,000
    /// customers (at least one), each of 100,000 events, when the events
    /// budget allows it.
    pub fn new(seed: u64, customers: usize, products: usize, events: usize) -> Self {
        let long_events = 100_000;
        let long_customers = if events >= 10 * long_events {
            (customers / 200_000).max(1)
        } else {
            0
        };
        Self {
            seed,
            customers,
            products,
            events,
            long_customers,
            long_events,
        }
    }

    /// Events the ordinary customers share, on average each.
    fn mean_events(&self) -> f64 {
        let ordinary = self.customers.saturating_sub(self.long_customers).max(1);
        let budget = self
            .events
            .saturating_sub(self.long_customers * self.long_events);
        budget as f64 / ordinary as f64
    }
}

/// One customer's generated history.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct History {
    /// The customer (identities, anonymous ids).
    pub customer: Option<Customer>,
    /// Their browsing, oldest first (anonymous sessions first).
    pub events: Vec<BrowsingEvent>,
    /// Their orders.
    pub orders: Vec<Order>,
    /// Returns of those orders.
    pub returns: Vec<Return>,
    /// Support tickets.
    pub tickets: Vec<Ticket>,
}

const DAY: i64 = 86_400_000;
const MINUTE: i64 = 60_000;
const FIRST: &[&str] = &[
    "Ana", "Ben", "Chloe", "Dev", "Elif", "Femi", "Greta", "Hugo", "Ines", "Jon", "Kai", "Lea",
    "Mei", "Noor", "Omar", "Pia", "Quinn", "Rosa", "Sam", "Tess", "Umar", "Vera", "Wim", "Yara",
];
const LAST: &[&str] = &[
    "Adler", "Brooks", "Costa", "Dubois", "Evans", "Fischer", "Garcia", "Haddad", "Ito", "Jensen",
    "Kowalski", "Larsen", "Moreau", "Novak", "Okafor", "Park", "Rossi", "Silva",
];
const SIZE_REASONS: &[(&str, &str)] = &[
    ("too_small", "Runs small, I need the next size up"),
    ("too_large", "Too big across the shoulders"),
    ("too_small", "Tight around the toes"),
];
const OTHER_REASONS: &[(&str, &str)] = &[
    ("defective", "Stopped working after a week"),
    (
        "not_as_described",
        "The colour is different from the photos",
    ),
    ("changed_mind", "Found something I like better"),
];
const SUBJECTS: &[&str] = &[
    "Where is my order?",
    "Refund not received yet",
    "Wrong size delivered",
    "Item arrived damaged",
    "Change my delivery address",
];

fn id<T>(parse: fn(&str) -> Result<T, String>, s: &str) -> T {
    parse(s).unwrap_or_else(|e| panic!("generated id {s:?} is invalid: {e}"))
}

/// A generator for customer `index` alone: histories can be made in any
/// order (or in parallel) and come out the same.
fn rng_for(plan: &Plan, index: usize) -> Rng {
    let mut r = Rng::new(plan.seed ^ (index as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    r.next();
    r
}

/// Customer `index`'s history (0-based), as of `now`.
pub fn history(plan: &Plan, catalog: &Catalog, index: usize, now: Timestamp) -> History {
    let mut rng = rng_for(plan, index);
    let cid = id(CustomerId::parse, &format!("gen-c{index:07}"));
    let (first, last) = (FIRST[rng.below(FIRST.len())], LAST[rng.below(LAST.len())]);
    let anonymous = rng
        .chance(15)
        .then(|| id(AnonymousId::parse, &format!("gen-a{index:07}")));
    let customer = Customer {
        customer_id: cid.clone(),
        display_name: format!("{first} {last}"),
        email: Email::parse(&format!(
            "{}.{}.{index}@gen.example.com",
            first.to_lowercase(),
            last.to_lowercase()
        ))
        .ok(),
        phone: rng
            .chance(50)
            .then(|| Phone::parse(&format!("+1555{:07}", index % 10_000_000)).ok())
            .flatten(),
        loyalty_id: rng
            .chance(30)
            .then(|| id(LoyaltyId::parse, &format!("GL-{index:07}"))),
        customer_since: Timestamp::from_millis(now.millis() - (30 + rng.below(1500) as i64) * DAY)
            .ok(),
        anonymous_ids: anonymous.iter().cloned().collect(),
        consents: Vec::new(),
    };
    let target = if index < plan.long_customers {
        plan.long_events
    } else {
        // Mean-preserving spread: most customers near the mean, a tail of
        // heavy browsers (one in ten at three times it).
        let mean = plan.mean_events();
        let u = rng.below(1000) as f64 / 1000.0;
        let heavy = if rng.chance(10) { 3.0 } else { 0.78 };
        ((mean * heavy * (0.5 + u)).round() as usize).max(1)
    };
    let mut h = History {
        customer: Some(customer),
        ..Default::default()
    };
    let favourite = rng.below(catalog.departments());
    let mut session = 0usize;
    // Long histories span two years, ordinary ones up to 700 days.
    let span_days = if index < plan.long_customers {
        730
    } else {
        1 + rng.below(700)
    };
    while h.events.len() < target {
        let anon_session = session == 0 && anonymous.is_some();
        let actor = Actor::new(
            (!anon_session).then(|| cid.clone()),
            anon_session.then(|| anonymous.clone()).flatten(),
        )
        .expect("an actor has an id");
        let start = now.millis() - (rng.below(span_days * 24 * 60) as i64 + 10) * MINUTE;
        catalog::session(
            &mut rng, catalog, &mut h, &cid, &actor, favourite, index, session, start, now, target,
        );
        session += 1;
    }
    h
}

/// Returns and tickets of a delivered order (8 % of lines come back).
fn aftermath(rng: &mut Rng, h: &mut History, order: &Order, catalog: &Catalog, now: Timestamp) {
    let sized = |p: &ProductId| catalog.is_sized(p);
    for (k, line) in order.lines.iter().enumerate() {
        if !rng.chance(8) {
            continue;
        }
        let reasons = if sized(&line.product_id) && rng.chance(75) {
            SIZE_REASONS
        } else {
            OTHER_REASONS
        };
        let (code, text) = reasons[rng.below(reasons.len())];
        let requested =
            (order.placed_at.millis() + (3 + rng.below(20) as i64) * DAY).min(now.millis());
        h.returns.push(Return {
            return_id: id(
                ReturnId::parse,
                &format!("{}-r{k}", order.order_id.as_str()),
            ),
            order_id: order.order_id.clone(),
            customer_id: order.actor.customer_id().cloned(),
            status: if rng.chance(80) {
                ReturnStatus::Refunded
            } else {
                ReturnStatus::Received
            },
            reason_code: code.into(),
            reason_text: text.into(),
            requested_at: Timestamp::from_millis(requested).unwrap_or(now),
            lines: vec![ReturnLine {
                product_id: line.product_id.clone(),
                quantity: 1,
            }],
            refund: None,
        });
    }
    if rng.chance(4) {
        let created =
            (order.placed_at.millis() + (1 + rng.below(10) as i64) * DAY).min(now.millis());
        let created = Timestamp::from_millis(created).unwrap_or(now);
        h.tickets.push(Ticket {
            ticket_id: id(TicketId::parse, &format!("{}-t", order.order_id.as_str())),
            customer_id: order
                .actor
                .customer_id()
                .cloned()
                .expect("orders have customers"),
            subject: SUBJECTS[rng.below(SUBJECTS.len())].into(),
            status: if rng.chance(25) {
                TicketStatus::Open
            } else {
                TicketStatus::Solved
            },
            priority: if rng.chance(20) {
                TicketPriority::High
            } else {
                TicketPriority::Normal
            },
            channel: "email".into(),
            order_id: Some(order.order_id.clone()),
            created_at: created,
            updated_at: created,
        });
    }
}

#[cfg(test)]
mod tests;
