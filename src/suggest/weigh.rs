//! What a remembered value holds, in bytes, for the replica memory's
//! budget: each record's own size plus the text it owns, from lengths read
//! once when the value is remembered (not exact accounting: allocator
//! rounding and a hash table's slack are in flat allowances; see
//! "Replica memory" in docs/performance.md for how it compares with the
//! process's resident memory).

use std::mem::size_of;

use super::{
    memo::{Customer, Ranking},
    reasons::Ranked,
    signals::History,
};
use crate::{
    reads::{Browsed, ContextReads, RecentSearch},
    store::{OrderRow, ProductRow, ProfileRow, PurchasedLine, ReturnRow, TicketRow},
};

/// A hash table's bytes per entry beyond the entry (control byte, load
/// factor below one).
const TABLE_SLACK: usize = 16;
/// What an item served from a remembered list adds once it is served
/// (its catalogue view, reason and fit sentences, signed id), per item
/// ranked: served items are kept after the list is weighed.
const SERVED_PER_RANKED: usize = 512;

fn text(s: &str) -> usize {
    s.len()
}

fn opt(s: &Option<String>) -> usize {
    s.as_deref().map_or(0, text)
}

/// A list's records and what each owns.
fn list<T>(items: &[T], owned: impl Fn(&T) -> usize) -> usize {
    std::mem::size_of_val(items) + items.iter().map(owned).sum::<usize>()
}

/// A set or map of text keys (and fixed-size values).
fn table<'a, V>(keys: impl ExactSizeIterator<Item = &'a String>) -> usize {
    let n = keys.len();
    n * (size_of::<String>() + size_of::<V>() + TABLE_SLACK) + keys.map(|k| text(k)).sum::<usize>()
}

/// One remembered customer: their context reads per request shape, their
/// consents, their suggestion history and their ranked lists.
pub fn customer(c: &Customer) -> usize {
    let contexts = list(&c.context, |(key, r)| text(key) + reads(r));
    let consents = c
        .consents
        .as_ref()
        .map_or(0, |v| list(v, |r| text(&r.source)));
    let lists = list(&c.lists, |(key, _, l)| text(key) + ranking(l));
    size_of::<Customer>() + contexts + consents + c.history.as_deref().map_or(0, history) + lists
}

/// What suggestions read of a customer's history.
pub fn history(h: &History) -> usize {
    let line = |l: &PurchasedLine| text(&l.product_id) + text(&l.category_path) + text(&l.order_id);
    size_of::<History>()
        + list(&h.lines, line)
        + list(&h.viewed, |s| text(s))
        + list(&h.in_cart, |s| text(s))
        + table::<()>(h.returned_groups.iter())
        + table::<()>(h.rejected_groups.iter())
        + table::<crate::domain::Timestamp>(h.bought_groups.keys())
        + list(&h.size_evidence, |e| text(&e.domain.category))
}

/// A context's reads for one request shape.
pub fn reads(r: &ContextReads) -> usize {
    let browsed = |b: &Browsed| text(&b.product_id) + text(&b.last_channel);
    let search = |s: &RecentSearch| text(&s.query);
    let pairs = |v: &(Vec<String>, Vec<String>)| list(&v.0, |s| text(s)) + list(&v.1, |s| text(s));
    size_of::<ContextReads>()
        + r.profile.as_ref().map_or(0, profile)
        + list(&r.browsed, browsed)
        + pairs(&r.signals)
        + list(&r.searches, search)
        + list(&r.bought, |(p, _)| text(p))
        + list(&r.orders, order)
        + list(&r.returns, returned)
        + list(&r.tickets, ticket)
        + list(&r.size_evidence, |e| text(&e.domain.category))
}

fn profile(p: &ProfileRow) -> usize {
    let affinities = |v: &[crate::store::AffinityRow]| list(v, |a| text(&a.name));
    text(&p.display_name)
        + text(&p.email)
        + text(&p.phone)
        + text(&p.loyalty_id)
        + list(&p.spend, |(c, _)| text(c))
        + affinities(&p.top_categories)
        + affinities(&p.top_brands)
}

fn order(o: &OrderRow) -> usize {
    text(&o.order_id)
        + text(&o.currency)
        + text(&o.channel)
        + list(&o.lines, |l| {
            text(&l.product_id) + text(&l.name) + text(&l.brand) + text(&l.category_path)
        })
}

fn returned(r: &ReturnRow) -> usize {
    text(&r.return_id)
        + text(&r.order_id)
        + text(&r.reason_code)
        + text(&r.reason_text)
        + r.refund.as_ref().map_or(0, |(c, _)| text(c))
        + list(&r.lines, |(p, _)| text(p))
}

fn ticket(t: &TicketRow) -> usize {
    text(&t.ticket_id) + text(&t.subject) + text(&t.channel) + opt(&t.order_id)
}

/// A ranked list, with room for the items served from it.
fn ranking(r: &Ranking) -> usize {
    let ranked = |x: &Ranked| {
        text(&x.product_id)
            + opt(&x.with)
            + text(&x.category)
            + text(&x.from_category)
            + opt(&x.brand)
            + text(&x.fit.size)
            + text(&x.fit.domain)
            + text(&x.fit.text)
            + list(&x.fit.sizes_in_stock, |s| text(s))
            + x.curated.as_ref().map_or(0, |c| {
                text(&c.curation_id) + text(&c.title) + text(&c.stylist) + text(&c.note)
            })
            + SERVED_PER_RANKED
    };
    size_of::<Ranking>() + list(&r.ranked, ranked)
}

/// One remembered catalogue row.
pub fn product(p: &ProductRow) -> usize {
    size_of::<ProductRow>()
        + text(&p.product_id)
        + text(&p.name)
        + text(&p.brand)
        + text(&p.category_path)
        + text(&p.currency)
        + text(&p.group_id)
        + text(&p.url)
        + text(&p.image_url)
}
