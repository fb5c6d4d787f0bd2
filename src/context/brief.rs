//! The agent brief: two or three sentences an agent reads in five seconds.
//! Who this is, what just happened, what they are looking at now.

use super::CustomerContext;
use crate::reads::ProductView;
use crate::store::AffinityRow;
use crate::{
    domain::{Currency, Money, ReturnStatus, SizeDomain, TicketPriority, TicketStatus, Timestamp},
    fit::{Confidence, Outcome, size_reason},
};

/// A return or browsing this recent counts as "just happened" / "now".
const RECENT_RETURN_DAYS: i64 = 30;
const BROWSING_NOW_HOURS: i64 = 24;

/// Writes the brief for an assembled context.
pub fn agent_brief(ctx: &CustomerContext) -> String {
    let now = ctx.as_of;
    if ctx.history_withheld {
        let name = ctx
            .profile
            .as_ref()
            .map(|p| p.display_name.as_str())
            .filter(|n| !n.is_empty());
        return format!(
            "{} withdrew consent to the use of their history in support: ask them directly what they need.",
            name.unwrap_or("This customer")
        );
    }
    let mut sentences = Vec::with_capacity(3);
    sentences.push(who(ctx, now));
    if let Some(s) = what_happened(ctx, now) {
        sentences.push(s);
    }
    if let Some(s) = browsing_now(ctx, now) {
        sentences.push(s);
    }
    if let Some(s) = fit(ctx) {
        sentences.push(s);
    }
    sentences.join(" ")
}

/// The size a customer keeps in a product's domain, when known with at
/// least one item kept.
fn kept_size<'a>(ctx: &'a CustomerContext, p: &ProductView) -> Option<(SizeDomain, &'a str)> {
    let size = p.size.as_ref()?;
    let domain = SizeDomain::of(&p.category, size.system());
    let e = ctx.sizes.iter().find(|e| e.domain == domain)?;
    let kept = e
        .size
        .as_ref()
        .filter(|_| e.confidence >= Confidence::Medium)?;
    Some((domain, kept.label()))
}

/// A product's name with its size, unless the name already says it.
fn sized_name(p: &ProductView) -> String {
    let name = p.display_name();
    match &p.size {
        Some(s) if !name.contains(s.label()) => format!("{name} ({})", s.label()),
        _ => name.to_owned(),
    }
}

/// Fit, when it bears on the conversation: an open return for size, and
/// items in the cart or just browsed in a size other than the one the
/// customer keeps.
fn fit(ctx: &CustomerContext) -> Option<String> {
    let mut parts = Vec::new();
    let open_size_return = ctx.returns.iter().find_map(|r| {
        let open = matches!(
            r.ret.status,
            ReturnStatus::Requested | ReturnStatus::Approved | ReturnStatus::Received
        );
        let how = match size_reason(&r.ret.reason_code)? {
            Outcome::TooSmall => "too small",
            Outcome::TooLarge => "too large",
            Outcome::Kept => return None,
        };
        let (p, _) = r.lines.iter().find(|(p, _)| p.size.is_some())?;
        open.then_some((p, how))
    });
    let mut returned_in = None;
    if let Some((p, how)) = open_size_return {
        let keep = kept_size(ctx, p)
            .filter(|(_, kept)| Some(*kept) != p.size.as_ref().map(|s| s.label()))
            .map(|(d, kept)| {
                let said = format!("; they keep {kept} in {}", d.spoken());
                returned_in = Some(d);
                said
            })
            .unwrap_or_default();
        parts.push(format!("{} came back {how}{keep}", sized_name(p)));
    }
    for b in ctx.recent_browsing.iter().take(5) {
        let Some((domain, kept)) = kept_size(ctx, &b.product) else {
            continue;
        };
        let theirs = b.product.size.as_ref().is_some_and(|s| s.label() == kept);
        if theirs && b.in_cart && returned_in.as_ref() == Some(&domain) {
            // The replacement for what came back, in the right size.
            parts.push(format!(
                "{} in the cart is their size",
                sized_name(&b.product)
            ));
        } else if !theirs {
            let where_ = if b.in_cart {
                "in the cart"
            } else {
                "just viewed"
            };
            parts.push(format!(
                "{} {where_} is not the {kept} they keep in {}",
                sized_name(&b.product),
                domain.spoken()
            ));
        }
        if parts.len() >= 3 {
            break;
        }
    }
    if parts.is_empty() {
        None
    } else {
        Some(format!("Fit: {}.", parts.join("; ")))
    }
}

fn money(currency: &str, minor: i64) -> String {
    match Currency::parse(currency) {
        Ok(c) => Money { currency: c, minor }.to_string(),
        Err(_) => format!("{minor} {currency}"),
    }
}

fn plural(n: i64, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

fn who(ctx: &CustomerContext, now: Timestamp) -> String {
    let Some(p) = &ctx.profile else {
        return if ctx.customer_id.is_some() {
            "Known customer.".into()
        } else {
            "Anonymous visitor (not signed in, no order history).".into()
        };
    };
    let name = if p.display_name.is_empty() {
        "This customer"
    } else {
        p.display_name.as_str()
    };
    let since = p.customer_since.short_date(Timestamp::MAX);
    let since = since
        .split_once(' ')
        .map_or(since.as_str(), |(_, month_year)| month_year)
        .to_owned();
    if p.order_count == 0 {
        return format!("{name}, customer since {since}, has no orders yet.");
    }
    let spend = p
        .spend
        .first()
        .map(|(c, m)| format!(", {} spent", money(c, *m)))
        .unwrap_or_default();
    let mostly = match (most_often(&p.top_categories), most_often(&p.top_brands)) {
        (Some(c), Some(b)) => format!(", mostly {} ({})", c.name, b.name),
        (Some(c), None) => format!(", mostly {}", c.name),
        _ => String::new(),
    };
    let returns = if p.units_purchased >= 5 && p.units_returned * 100 >= p.units_purchased * 30 {
        format!(
            "; returns often ({}% of units)",
            p.units_returned * 100 / p.units_purchased.max(1)
        )
    } else {
        String::new()
    };
    let last = p
        .last_order_at
        .map(|t| format!(", last on {}", t.short_date(now)))
        .unwrap_or_default();
    format!(
        "{name}, customer since {since}: {}{spend}{last}{mostly}{returns}.",
        plural(p.order_count, "order", "orders")
    )
}

/// The category or brand in the most orders (then the most units): what a
/// customer buys often, not what is sold by the gallon.
fn most_often(rows: &[AffinityRow]) -> Option<&AffinityRow> {
    rows.iter().max_by(|a, b| {
        (a.orders, a.units)
            .cmp(&(b.orders, b.units))
            .then(b.name.cmp(&a.name))
    })
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}

fn what_happened(ctx: &CustomerContext, now: Timestamp) -> Option<String> {
    let mut parts = Vec::new();
    // The most pressing open issue: highest priority, then most recent.
    let ticket = ctx.open_tickets.iter().max_by_key(|t| {
        let rank = match t.priority {
            TicketPriority::Urgent => 3,
            TicketPriority::High => 2,
            TicketPriority::Normal => 1,
            TicketPriority::Low => 0,
        };
        (rank, t.updated_at)
    });
    if let Some(t) = ticket {
        let urgency = match t.priority {
            TicketPriority::Urgent => "urgent",
            TicketPriority::High => "high priority",
            TicketPriority::Normal | TicketPriority::Low => "",
        };
        let state = match t.status {
            TicketStatus::Pending => "waiting on the customer",
            _ => "open",
        };
        let order = match (&t.order_id, &t.order) {
            (Some(id), Some((status, _))) => format!(" (order {id}, {})", status.as_str()),
            (Some(id), None) => format!(" (order {id})"),
            _ => String::new(),
        };
        let more = if ctx.open_tickets.len() > 1 {
            format!(", +{} more open", ctx.open_tickets.len() - 1)
        } else {
            String::new()
        };
        let label = if urgency.is_empty() {
            format!("Issue {state}")
        } else {
            format!("{} issue {state}", capitalise(urgency))
        };
        parts.push(format!(
            "{label} since {}: \"{}\"{order}{more}",
            t.created_at.short_date(now),
            t.subject
        ));
    }
    let cutoff = now.millis() - RECENT_RETURN_DAYS * 86_400_000;
    if let Some(r) = ctx
        .returns
        .iter()
        .find(|r| r.ret.requested_at.millis() >= cutoff)
    {
        let what = match r.lines.as_slice() {
            [] => "items".to_owned(),
            [(p, _)] => p.display_name().to_owned(),
            [(p, _), rest @ ..] => format!(
                "{} and {}",
                p.display_name(),
                plural(rest.len() as i64, "more item", "more items")
            ),
        };
        let reason = r.ret.reason_code.replace('_', " ");
        let text = if r.ret.reason_text.is_empty() {
            String::new()
        } else {
            let t: String = r.ret.reason_text.chars().take(80).collect();
            format!(": \"{t}\"")
        };
        parts.push(format!(
            "Returned {what} on {} ({reason}{text}), {}",
            r.ret.requested_at.short_date(now),
            r.ret.status.as_str()
        ));
    }
    if parts.is_empty() {
        None
    } else {
        Some(format!("{}.", parts.join(". ")))
    }
}

fn browsing_now(ctx: &CustomerContext, now: Timestamp) -> Option<String> {
    let first = ctx.recent_browsing.first()?;
    let recent = now.millis() - first.last_seen_at.millis() <= BROWSING_NOW_HOURS * 3_600_000;
    let lead = if recent {
        "Browsing now"
    } else {
        "Last browsed"
    };
    let items: Vec<String> = ctx
        .recent_browsing
        .iter()
        .take(2)
        .map(|b| {
            if b.view_count > 1 {
                format!("{} (viewed {}×)", b.product.display_name(), b.view_count)
            } else {
                b.product.display_name().to_owned()
            }
        })
        .collect();
    let when = if recent {
        String::new()
    } else {
        format!(" on {}", first.last_seen_at.short_date(now))
    };
    let cart: Vec<&str> = ctx
        .recent_browsing
        .iter()
        .filter(|b| b.in_cart)
        .map(|b| b.product.display_name())
        .take(2)
        .collect();
    let cart = match cart.as_slice() {
        [] => String::new(),
        [one] => format!("; {one} is in the cart, not bought"),
        [a, b] => format!("; {a} and {b} are in the cart, not bought"),
        _ => String::new(),
    };
    Some(format!("{lead}: {}{when}{cart}.", items.join(", ")))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::{
        context::{BrowsedProduct, ProductView, ReturnView},
        domain::{CategoryPath, CustomerId, EventKind, ReturnStatus},
        store::{AffinityRow, ProfileRow, ReturnRow, TicketRow},
    };

    pub(crate) fn at(s: &str) -> Timestamp {
        Timestamp::parse_rfc3339(s).unwrap()
    }

    pub(crate) fn product(name: &str) -> ProductView {
        ProductView {
            product_id: format!("id-{name}"),
            in_catalog: true,
            name: name.into(),
            brand: String::new(),
            category: CategoryPath::default(),
            price: None,
            available: true,
            stock_quantity: None,
            group_id: String::new(),
            url: String::new(),
            image_url: String::new(),
            size: None,
        }
    }

    /// A customer with a profile, a cart, a return and an open ticket.
    pub(crate) fn context() -> CustomerContext {
        CustomerContext {
            customer_id: Some(CustomerId::parse("c1").unwrap()),
            anonymous_id: None,
            as_of: at("2026-11-21T10:00:00Z"),
            profile: Some(ProfileRow {
                display_name: "Maya Chen".into(),
                email: String::new(),
                phone: String::new(),
                loyalty_id: String::new(),
                customer_since: at("2023-03-02T00:00:00Z"),
                last_activity_at: None,
                order_count: 7,
                units_purchased: 9,
                units_returned: 1,
                last_order_at: Some(at("2026-10-03T00:00:00Z")),
                spend: vec![("USD".into(), 84_250)],
                top_categories: vec![AffinityRow {
                    name: "Footwear".into(),
                    units: 4,
                    orders: 3,
                }],
                top_brands: vec![AffinityRow {
                    name: "Northpeak".into(),
                    units: 3,
                    orders: 2,
                }],
            }),
            recent_browsing: vec![BrowsedProduct {
                product: product("Trail Runner 2"),
                view_count: 3,
                last_seen_at: at("2026-11-21T09:50:00Z"),
                last_event: EventKind::AddedToCart,
                last_channel: "web".into(),
                in_cart: true,
                added_to_cart_at: Some(at("2026-11-21T09:50:00Z")),
                wishlisted: false,
            }],
            recent_searches: vec![],
            recent_orders: vec![],
            returns: vec![ReturnView {
                ret: ReturnRow {
                    return_id: "r1".into(),
                    order_id: "o1".into(),
                    status: ReturnStatus::Received,
                    reason_code: "too_small".into(),
                    reason_text: String::new(),
                    requested_at: at("2026-11-10T00:00:00Z"),
                    refund: None,
                    lines: vec![],
                },
                lines: vec![(product("Rain Shell"), 1)],
            }],
            open_tickets: vec![TicketRow {
                ticket_id: "t1".into(),
                subject: "Where is my refund?".into(),
                status: TicketStatus::Open,
                priority: TicketPriority::High,
                channel: "email".into(),
                order_id: Some("o1".into()),
                order: None,
                created_at: at("2026-11-18T00:00:00Z"),
                updated_at: at("2026-11-19T00:00:00Z"),
            }],
            agent_brief: None,
            browsing_events_scanned: 3,
            consents: vec![],
            history_withheld: false,
            contact_details_masked: false,
            suggestions: None,
            sizes: vec![],
        }
    }

    /// Fuel sold by the gallon (86,075 units in 10 orders) is not what a
    /// grocery shopper (965 units in 629 orders) is "mostly" about.
    #[test]
    fn mostly_counts_orders_not_units() {
        let mut c = context();
        let profile = c.profile.as_mut().unwrap();
        profile.top_categories = vec![
            AffinityRow {
                name: "FUEL".into(),
                units: 86_075,
                orders: 10,
            },
            AffinityRow {
                name: "GROCERY".into(),
                units: 965,
                orders: 629,
            },
        ];
        profile.top_brands = vec![
            AffinityRow {
                name: "Private".into(),
                units: 86_100,
                orders: 40,
            },
            AffinityRow {
                name: "National".into(),
                units: 900,
                orders: 600,
            },
        ];
        let brief = agent_brief(&c);
        assert!(brief.contains("mostly GROCERY (National)"), "{brief}");
        // Equal orders: more units wins.
        let profile = c.profile.as_mut().unwrap();
        profile.top_categories[0].orders = 629;
        assert!(agent_brief(&c).contains("mostly FUEL"));
    }

    #[test]
    fn brief_says_who_what_happened_and_what_now() {
        let brief = agent_brief(&context());
        assert_eq!(
            brief,
            "Maya Chen, customer since Mar 2023: 7 orders, $842.50 spent, last on 3 Oct, mostly Footwear (Northpeak). \
             High priority issue open since 18 Nov: \"Where is my refund?\" (order o1). \
             Returned Rain Shell on 10 Nov (too small), received. \
             Browsing now: Trail Runner 2 (viewed 3×); Trail Runner 2 is in the cart, not bought."
        );
    }

    fn sized(name: &str, category: &[&str], size: &str) -> ProductView {
        ProductView {
            category: CategoryPath::parse(category, true).unwrap(),
            size: Some(crate::domain::Size::parse(size, None).unwrap()),
            ..product(name)
        }
    }

    #[test]
    fn brief_mentions_fit_when_it_bears_on_the_conversation() {
        let jackets = ["Apparel", "Jackets"];
        let mut ctx = context();
        ctx.returns[0].lines = vec![(sized("Rain Shell (M)", &jackets, "M"), 1)];
        ctx.recent_browsing[0].product = sized("Fleece Jacket", &jackets, "XXL");
        ctx.sizes = vec![crate::fit::Estimate {
            domain: SizeDomain::of(
                &CategoryPath::parse(&jackets, true).unwrap(),
                crate::domain::SizeSystem::Alpha,
            ),
            size: Some(crate::domain::Size::parse("L", None).unwrap()),
            confidence: Confidence::Medium,
            kept: 1,
            kept_in_size: 1,
            too_small: vec![crate::domain::Size::parse("M", None).unwrap()],
            too_large: vec![],
            last_at: at("2026-11-10T00:00:00Z"),
        }];
        let brief = agent_brief(&ctx);
        assert!(
            brief.ends_with(
                "Fit: Rain Shell (M) came back too small; they keep L in jackets; \
                 Fleece Jacket (XXL) in the cart is not the L they keep in jackets."
            ),
            "{brief}"
        );
        // The right size in the cart while the return is open.
        ctx.recent_browsing[0].product = sized("Fleece Jacket", &jackets, "L");
        assert!(
            agent_brief(&ctx).ends_with(
                "Fit: Rain Shell (M) came back too small; they keep L in jackets; \
                 Fleece Jacket (L) in the cart is their size."
            ),
            "{}",
            agent_brief(&ctx)
        );
        // In their size, and the return settled: nothing to say.
        ctx.returns[0].ret.status = ReturnStatus::Refunded;
        assert!(!agent_brief(&ctx).contains("Fit:"));
    }

    #[test]
    fn brief_for_anonymous_visitor_and_quiet_customer() {
        let mut ctx = context();
        ctx.profile = None;
        ctx.customer_id = None;
        ctx.returns.clear();
        ctx.open_tickets.clear();
        ctx.recent_browsing.clear();
        assert_eq!(
            agent_brief(&ctx),
            "Anonymous visitor (not signed in, no order history)."
        );
        let mut ctx = context();
        if let Some(p) = ctx.profile.as_mut() {
            p.order_count = 0;
        }
        ctx.returns.clear();
        ctx.open_tickets.clear();
        ctx.recent_browsing.clear();
        assert_eq!(
            agent_brief(&ctx),
            "Maya Chen, customer since Mar 2023, has no orders yet."
        );
    }
}
