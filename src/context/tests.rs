//! The context's pure steps without a database: assembly from rows and
//! catalogue, consent withholding, and trimming to what was asked.

use proptest::prelude::*;

use super::{
    Sections,
    assemble::{Parts, assemble, shown_browsing, shown_products},
    brief::tests::{at, context},
    policy::{finish, for_audience, mask_email, mask_phone, readable},
};
use crate::{
    domain::{ConsentRecord, EventKind, OrderStatus, Purpose, ReturnStatus},
    reads::{Browsed, ContextReads},
    store::{OrderLineRow, OrderRow, ProductRow, ProductRows, ReturnRow},
};

fn consent(purpose: Purpose, granted: bool) -> ConsentRecord {
    ConsentRecord {
        purpose,
        granted,
        source: "api".into(),
        updated_at: at("2026-11-01T00:00:00Z"),
    }
}

fn withdrawn() -> Vec<ConsentRecord> {
    vec![consent(Purpose::SupportContext, false)]
}

#[test]
fn read_mask_names_select_sections() {
    let mut s = Sections::NONE;
    for name in Sections::NAMES {
        assert!(s.select(name), "{name}");
    }
    assert_eq!(s, Sections::ALL);
    assert!(!s.select("orders"));
}

#[test]
fn each_selection_of_sections_has_its_own_bits() {
    let mut seen = std::collections::HashSet::new();
    for mask in 0u16..256 {
        let mut s = Sections::NONE;
        for (i, name) in Sections::NAMES.iter().enumerate() {
            if mask & (1 << i) != 0 {
                s.select(name);
            }
        }
        assert_eq!(u16::from(s.bits()), mask);
        assert!(seen.insert(s.bits()));
    }
}

#[test]
fn consent_decides_which_sections_are_read() {
    let granted = vec![consent(Purpose::SupportContext, true)];
    assert_eq!(readable(Sections::ALL, &granted), (Sections::ALL, false));
    assert_eq!(readable(Sections::ALL, &[]), (Sections::ALL, false));
    let (read, withheld) = readable(Sections::ALL, &withdrawn());
    assert!(withheld);
    assert_eq!(
        read,
        Sections {
            profile: true,
            ..Sections::NONE
        },
        "only the account is read"
    );
    let mut brief_only = Sections::NONE;
    brief_only.agent_brief = true;
    assert!(
        readable(brief_only, &withdrawn()).0.profile,
        "the brief needs the name"
    );
    let mut orders_only = Sections::NONE;
    orders_only.recent_orders = true;
    assert_eq!(readable(orders_only, &withdrawn()).0, Sections::NONE);
}

#[test]
fn a_withdrawal_keeps_the_account_and_drops_what_the_history_says() {
    let mut ctx = context();
    ctx.history_withheld = true;
    let (read, _) = readable(Sections::ALL, &withdrawn());
    let ctx = finish(ctx, Sections::ALL, read, 5, 5);
    let profile = ctx.profile.as_ref().expect("the account stays");
    assert_eq!(profile.display_name, "Maya Chen");
    assert_eq!((profile.order_count, profile.units_purchased), (0, 0));
    assert!(profile.spend.is_empty() && profile.top_categories.is_empty());
    assert!(profile.last_order_at.is_none() && ctx.sizes.is_empty());
    assert!(ctx.returns.is_empty() && ctx.open_tickets.is_empty());
    assert!(ctx.recent_browsing.is_empty());
    let brief = ctx.agent_brief.expect("a brief was asked for");
    assert!(!brief.contains("Rain Shell"), "{brief}");
}

#[test]
fn sections_read_only_for_the_brief_do_not_leave() {
    let mut asked = Sections::NONE;
    asked.agent_brief = true;
    // The reads fetch the profile, returns and tickets for the brief
    // (`context()` holds them); the sections returned are those asked.
    let (read, _) = readable(asked, &[]);
    let ctx = finish(context(), asked, read, 5, 5);
    let brief = ctx.agent_brief.as_deref().expect("a brief");
    assert!(
        brief.contains("Rain Shell") && brief.contains("refund"),
        "{brief}"
    );
    assert!(ctx.profile.is_none() && ctx.returns.is_empty() && ctx.open_tickets.is_empty());
    assert!(ctx.recent_browsing.is_empty(), "browsing was not read");
}

#[test]
fn lists_are_cut_to_their_limits_after_the_brief() {
    let mut ctx = context();
    ctx.open_tickets.push(ctx.open_tickets[0].clone());
    let ctx = finish(ctx, Sections::ALL, Sections::ALL, 0, 1);
    assert!(ctx.returns.is_empty());
    assert_eq!(ctx.open_tickets.len(), 1);
    assert!(ctx.agent_brief.expect("a brief").contains("Rain Shell"));
}

proptest! {
    /// Whatever is asked and whatever consent says, no section leaves
    /// that was not asked for, and a withdrawal leaves no history.
    #[test]
    fn nothing_leaves_that_was_not_asked_or_allowed(
        mask in proptest::collection::vec(any::<bool>(), 8),
        withdraw in any::<bool>(),
    ) {
        let mut asked = Sections::NONE;
        for (name, on) in Sections::NAMES.iter().zip(&mask) {
            if *on {
                asked.select(name);
            }
        }
        let consents = if withdraw { withdrawn() } else { Vec::new() };
        let (read, withheld) = readable(asked, &consents);
        let mut ctx = context();
        ctx.history_withheld = withheld;
        let ctx = finish(ctx, asked, read, 5, 5);
        prop_assert_eq!(ctx.profile.is_some(), asked.profile);
        prop_assert_eq!(ctx.agent_brief.is_some(), asked.agent_brief);
        prop_assert!(asked.recent_browsing && !withdraw || ctx.recent_browsing.is_empty());
        prop_assert!(asked.returns && !withdraw || ctx.returns.is_empty());
        prop_assert!(asked.open_tickets && !withdraw || ctx.open_tickets.is_empty());
        if let Some(p) = ctx.profile.filter(|_| withdraw) {
            prop_assert!(p.order_count == 0 && p.spend.is_empty());
        }
    }
}

fn row(id: &str, name: &str) -> ProductRow {
    ProductRow {
        product_id: id.into(),
        name: name.into(),
        active: true,
        in_stock: true,
        ..ProductRow::default()
    }
}

fn line(product: &str, name: &str) -> OrderLineRow {
    OrderLineRow {
        product_id: product.into(),
        quantity: 1,
        unit_price_minor: 1000,
        name: name.into(),
        brand: "Kestrel".into(),
        category_path: "Apparel > Jackets".into(),
        returned_quantity: 0,
    }
}

fn browsed(product: &str, added_at: &str) -> Browsed {
    Browsed {
        product_id: product.into(),
        view_count: 1,
        last_seen_at: at(added_at),
        last_event: EventKind::AddedToCart,
        last_channel: "web".into(),
        cart: Some(true),
        in_cart: true,
        added_to_cart_at: Some(at(added_at)),
        wishlisted: false,
    }
}

fn reads() -> ContextReads {
    ContextReads {
        browsed: vec![
            browsed("boot", "2026-11-20T10:00:00Z"),
            browsed("shell-l", "2026-11-19T10:00:00Z"),
            browsed("cap", "2026-11-18T10:00:00Z"),
        ],
        // The boot was bought after it was added; the shell before.
        bought: vec![
            ("boot".into(), at("2026-11-20T11:00:00Z")),
            ("shell-l".into(), at("2026-11-01T00:00:00Z")),
        ],
        orders: vec![OrderRow {
            order_id: "o1".into(),
            status: OrderStatus::Delivered,
            placed_at: at("2026-11-01T00:00:00Z"),
            currency: "USD".into(),
            total_minor: 2000,
            channel: "web".into(),
            line_count: 2,
            lines: vec![
                line("shell-m", "Rain Shell (M)"),
                line("gone", "Old Fleece"),
            ],
        }],
        returns: vec![ReturnRow {
            return_id: "r1".into(),
            order_id: "o1".into(),
            status: ReturnStatus::Received,
            reason_code: "too_small".into(),
            reason_text: String::new(),
            requested_at: at("2026-11-10T00:00:00Z"),
            refund: None,
            lines: vec![("gone".into(), 1), ("never-seen".into(), 1)],
        }],
        scanned: 3,
        ..ContextReads::default()
    }
}

#[test]
fn the_cart_drops_what_was_bought_after_it_was_added_and_the_limit_holds() {
    let r = reads();
    let shown = shown_browsing(&r, 2);
    let carts: Vec<(&str, bool)> = shown
        .iter()
        .map(|b| (b.product_id.as_str(), b.in_cart))
        .collect();
    assert_eq!(carts, [("boot", false), ("shell-l", true)]);
    let ids = shown_products(&shown, &r.orders, &r.returns);
    assert_eq!(ids, ["boot", "gone", "never-seen", "shell-l", "shell-m"]);
}

#[test]
fn products_are_named_by_the_catalogue_else_by_what_the_order_said() {
    let r = reads();
    let catalog: ProductRows = [row("shell-m", "Rain Shell"), row("boot", "Hiking Boot")]
        .into_iter()
        .map(|p| (p.product_id.clone(), std::sync::Arc::new(p)))
        .collect();
    let ctx = assemble(Parts {
        customer_id: None,
        anonymous_id: None,
        as_of: at("2026-11-21T00:00:00Z"),
        reads: &r,
        browsing: shown_browsing(&r, 10),
        catalog: &catalog,
        consents: &[],
        history_withheld: false,
        suggestions: None,
        sizes: Vec::new(),
    });
    let names: Vec<(&str, bool)> = ctx
        .recent_browsing
        .iter()
        .map(|b| (b.product.display_name(), b.product.in_catalog))
        .collect();
    assert_eq!(
        names,
        [("Hiking Boot", true), ("shell-l", false), ("cap", false)]
    );
    let order = &ctx.recent_orders[0];
    assert!(order.order.lines.is_empty(), "lines travel once, as views");
    let lines: Vec<&str> = order
        .lines
        .iter()
        .map(|l| l.product.display_name())
        .collect();
    assert_eq!(lines, ["Rain Shell", "Old Fleece"]);
    let returned: Vec<(&str, &str)> = ctx.returns[0]
        .lines
        .iter()
        .map(|(p, _)| (p.display_name(), p.brand.as_str()))
        .collect();
    assert_eq!(returned, [("Old Fleece", "Kestrel"), ("never-seen", "")]);
    assert_eq!(ctx.browsing_events_scanned, 3);
}

#[test]
fn masking_keeps_enough_to_confirm_identity() {
    assert_eq!(mask_email("jane.doe@example.com"), "j•••@example.com");
    assert_eq!(mask_email("no-at-sign"), "•••");
    assert_eq!(mask_email(""), "");
    assert_eq!(mask_phone("+15550102001"), "•••••••2001");
    assert_eq!(mask_phone("12"), "••");
    assert_eq!(mask_phone(""), "");
}

#[test]
fn an_audience_without_contact_rights_sees_them_masked_and_is_told() {
    let mut ctx = context();
    let p = ctx.profile.as_mut().unwrap();
    p.email = "maya.chen@example.com".into();
    p.phone = "+15550102001".into();
    let agent = for_audience(ctx.clone(), false);
    let p = agent.profile.as_ref().unwrap();
    assert_eq!(
        (p.email.as_str(), p.phone.as_str()),
        ("m•••@example.com", "•••••••2001")
    );
    assert!(agent.contact_details_masked);
    assert_eq!(p.display_name, "Maya Chen", "the name stays");
    let privacy = for_audience(ctx, true);
    let p = privacy.profile.as_ref().unwrap();
    assert_eq!(p.email, "maya.chen@example.com");
    assert!(!privacy.contact_details_masked);
}
