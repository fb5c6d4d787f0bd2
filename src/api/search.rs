//! Conversions for SearchProducts: the request into a validated query
//! (every violation names its field), the answer into its proto.

use super::{
    convert::{bounded, customer_in, money, product_snapshot, ts},
    suggestions::size_choice,
};
use crate::{
    domain::Violations,
    proto as pb,
    search::{Found, SearchOutcome, SearchQuery, limits},
    text_index::{Filters, Words},
};

/// Longest brand or category level a filter may name, in characters.
const NAME_CHARS: usize = 200;

/// A SearchProducts request, with defaults applied and limits checked.
pub fn search_query(r: pb::SearchProductsRequest) -> Result<SearchQuery, Violations> {
    let pb::SearchProductsRequest {
        query,
        customer,
        filter,
        limit,
    } = r;
    let mut v = Violations::new();
    let chars = query.chars().count();
    let words = Words::parse(&query);
    if query.trim().is_empty() {
        v.add("query", "is required");
    } else if chars > limits::QUERY_CHARS {
        v.add(
            "query",
            format!(
                "has {chars} characters; at most {} are allowed",
                limits::QUERY_CHARS
            ),
        );
    } else if words.is_empty() {
        v.add("query", "has no letters or digits to search for");
    }
    let customer = customer.and_then(|c| customer_in(&mut v, "customer", Some(c)));
    let (filters, currency) = filters(&mut v, filter.unwrap_or_default());
    let limit = bounded(&mut v, "limit", limit, limits::RESULTS);
    v.finish(|| SearchQuery {
        words,
        customer,
        filters,
        currency,
        limit,
    })
}

/// The filters of a request, and the currency of its price bounds.
fn filters(v: &mut Violations, f: pb::ProductFilter) -> (Filters, Option<String>) {
    let pb::ProductFilter {
        category_path,
        brand,
        min_price,
        max_price,
        in_stock_only,
    } = f;
    let mut levels = Vec::new();
    if category_path.len() > limits::CATEGORY_LEVELS {
        v.add(
            "filter.category_path",
            format!(
                "has {} levels; at most {} are allowed",
                category_path.len(),
                limits::CATEGORY_LEVELS
            ),
        );
    } else {
        for (i, level) in category_path.iter().enumerate() {
            let n = level.trim().chars().count();
            if n == 0 || level.chars().count() > NAME_CHARS {
                v.add(
                    format!("filter.category_path[{i}]"),
                    format!("must have 1 to {NAME_CHARS} characters"),
                );
            }
            levels.push(level.trim().to_owned());
        }
    }
    if brand.chars().count() > NAME_CHARS {
        v.add(
            "filter.brand",
            format!("has more than {NAME_CHARS} characters"),
        );
    }
    let min = money(v, "filter.min_price", min_price, false);
    let max = money(v, "filter.max_price", max_price, false);
    if let (Some(lo), Some(hi)) = (&min, &max) {
        if lo.currency != hi.currency {
            v.add(
                "filter.max_price.currency_code",
                "must be min_price's currency",
            );
        } else if lo.minor > hi.minor {
            v.add("filter.max_price", "is below min_price");
        }
    }
    let currency = min
        .as_ref()
        .or(max.as_ref())
        .map(|m| m.currency.as_str().to_owned());
    let filters = Filters {
        category: (!levels.is_empty()).then_some(levels),
        brand: (!brand.trim().is_empty()).then(|| brand.trim().to_owned()),
        min_price: min.map(|m| m.minor),
        max_price: max.map(|m| m.minor),
        in_stock: in_stock_only,
    };
    (filters, currency)
}

/// The proto answer.
pub fn search_response(out: SearchOutcome) -> pb::SearchProductsResponse {
    let SearchOutcome {
        customer_id,
        anonymous_id: _,
        as_of,
        results,
        personalised,
        note,
    } = out;
    pb::SearchProductsResponse {
        customer_id: customer_id
            .map(|c| c.as_str().to_owned())
            .unwrap_or_default(),
        as_of: Some(ts(as_of)),
        results: results.into_iter().map(found).collect(),
        personalised,
        note,
    }
}

fn found(f: Found) -> pb::FoundProduct {
    let Found {
        suggestion_id,
        product,
        rank,
        score,
        fit,
        available,
        owned,
        returned,
    } = f;
    pb::FoundProduct {
        suggestion_id,
        product: Some(product_snapshot(product)),
        rank,
        score,
        fit: Some(size_choice(fit)),
        available,
        owned,
        returned,
    }
}
