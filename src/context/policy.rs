//! The rules a context obeys after it is read, as pure functions: which
//! sections consent lets us read, what a withdrawal hides from what was
//! read, which sections (read only for the brief) leave before the
//! answer, and what the caller's role may see of the contact details. No
//! I/O: unit-tested on plain values.

use super::{CustomerContext, Sections, agent_brief};
use crate::domain::{ConsentRecord, Purpose, withdrawn};

/// The sections to read for `requested` given the customer's `consents`,
/// and whether their history is withheld: a customer who withdrew consent
/// for support context keeps only the account (profile, for itself or for
/// the brief); every section drawn from their history is left unread.
pub fn readable(requested: Sections, consents: &[ConsentRecord]) -> (Sections, bool) {
    if !withdrawn(consents, Purpose::SupportContext) {
        return (requested, false);
    }
    let mut s = Sections::NONE;
    s.profile = requested.profile || requested.agent_brief;
    (s, true)
}

/// Numbers drawn from the history leave the profile, and the sizes go:
/// the account details stay.
pub fn withhold_history(ctx: &mut CustomerContext) {
    if let Some(p) = ctx.profile.as_mut() {
        p.order_count = 0;
        p.units_purchased = 0;
        p.units_returned = 0;
        p.spend.clear();
        p.top_categories.clear();
        p.top_brands.clear();
        p.last_order_at = None;
        p.last_activity_at = None;
    }
    ctx.sizes.clear();
}

/// What the caller asked for (`requested`, and of it what consent lets us
/// read: `read`, see [`readable`]): the history withheld when consent was
/// withdrawn, the brief when requested (written before anything leaves),
/// then the sections read only for the brief are emptied, and the lists
/// cut to their limits.
pub fn finish(
    mut ctx: CustomerContext,
    requested: Sections,
    read: Sections,
    returns_limit: u32,
    tickets_limit: u32,
) -> CustomerContext {
    if ctx.history_withheld {
        withhold_history(&mut ctx);
    }
    if requested.agent_brief {
        ctx.agent_brief = Some(agent_brief(&ctx));
    }
    if !requested.profile || !read.profile {
        ctx.profile = None;
    }
    if !read.recent_browsing {
        ctx.recent_browsing.clear();
    }
    if !read.recent_searches {
        ctx.recent_searches.clear();
    }
    if !read.returns {
        ctx.returns.clear();
    }
    if !read.open_tickets {
        ctx.open_tickets.clear();
    }
    ctx.returns.truncate(returns_limit as usize);
    ctx.open_tickets.truncate(tickets_limit as usize);
    ctx
}

/// The context as an audience may see it: a role that may not see contact
/// details gets the email and phone masked (enough to confirm an identity
/// the customer states, not to contact them).
pub fn for_audience(mut ctx: CustomerContext, sees_contact_details: bool) -> CustomerContext {
    if sees_contact_details {
        return ctx;
    }
    ctx.contact_details_masked = true;
    if let Some(p) = ctx.profile.as_mut() {
        p.email = mask_email(&p.email);
        p.phone = mask_phone(&p.phone);
    }
    ctx
}

/// Masks an email for roles that may not see it: `j•••@example.com`.
pub fn mask_email(email: &str) -> String {
    match email.split_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}•••@{domain}")
        }
        None if email.is_empty() => String::new(),
        None => "•••".into(),
    }
}

/// Masks a phone number, keeping its last four digits: `•••••••2001`.
pub fn mask_phone(phone: &str) -> String {
    let digits: Vec<char> = phone.chars().filter(char::is_ascii_digit).collect();
    if digits.len() <= 4 {
        return "•".repeat(digits.len());
    }
    let keep: String = digits[digits.len() - 4..].iter().collect();
    format!("{}{keep}", "•".repeat(digits.len() - 4))
}
