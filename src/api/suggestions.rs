//! Conversions for the suggestion RPCs: requests into validated core
//! queries (every violation names its field), answers into protos.

use super::convert::{bounded, customer_in, product_snapshot, timestamp, ts};
use crate::{
    domain::{self as d, Violations},
    fit::Confidence,
    proto as pb,
    suggest::{
        FeedbackInput, FeedbackKind, Fit, FitView, ReasonCode, SuggestQuery, SuggestedItem,
        SuggestionList, VariantReport, Weights,
        experiment::{Experiment, Variant},
        limits,
    },
};

/// Product ids of a request list, at most `max`.
pub(crate) fn product_ids(
    v: &mut Violations,
    field: &str,
    raw: &[String],
    max: usize,
) -> Vec<d::ProductId> {
    if raw.len() > max {
        v.add(
            field,
            format!("has {} ids; at most {max} are allowed", raw.len()),
        );
        return Vec::new();
    }
    let mut out: Vec<d::ProductId> = Vec::with_capacity(raw.len());
    for (i, id) in raw.iter().enumerate() {
        if let Some(p) = v.check(format!("{field}[{i}]"), d::ProductId::parse(id))
            && !out.contains(&p)
        {
            out.push(p);
        }
    }
    out
}

/// A SuggestCrossSells request, with defaults applied and limits checked.
pub fn suggest_query(r: pb::SuggestCrossSellsRequest) -> Result<SuggestQuery, Violations> {
    let pb::SuggestCrossSellsRequest {
        customer,
        anchor_product_ids,
        exclude_product_ids,
        limit,
    } = r;
    let mut v = Violations::new();
    let key = customer_in(&mut v, "customer", customer);
    let anchors = product_ids(
        &mut v,
        "anchor_product_ids",
        &anchor_product_ids,
        limits::ANCHORS,
    );
    let exclude = product_ids(
        &mut v,
        "exclude_product_ids",
        &exclude_product_ids,
        limits::EXCLUDED,
    );
    let limit = bounded(&mut v, "limit", limit, limits::ITEMS);
    v.build(|| {
        Some(SuggestQuery {
            key: key?,
            anchors,
            exclude,
            limit,
        })
    })
}

fn reason_code(c: ReasonCode) -> pb::ReasonCode {
    match c {
        ReasonCode::BoughtTogether => pb::ReasonCode::BoughtTogether,
        ReasonCode::ViewedTogether => pb::ReasonCode::ViewedTogether,
        ReasonCode::NewCategory => pb::ReasonCode::NewCategory,
        ReasonCode::PopularInCategory => pb::ReasonCode::PopularInCategory,
        ReasonCode::Popular => pb::ReasonCode::Popular,
        ReasonCode::AlsoBought => pb::ReasonCode::AlsoBought,
        ReasonCode::Curated => pb::ReasonCode::Curated,
    }
}

pub(super) fn item(i: SuggestedItem) -> pb::SuggestedItem {
    let SuggestedItem {
        suggestion_id,
        product,
        rank,
        score,
        reason,
        fit,
        curated,
    } = i;
    pb::SuggestedItem {
        suggestion_id,
        product: Some(product_snapshot(product)),
        rank,
        score,
        fit: Some(size_choice(fit)),
        curated: curated.map(|c| pb::CuratedBy {
            curation_id: c.curation_id,
            title: c.title,
            stylist: c.stylist,
            note: c.note,
        }),
        reason: Some(pb::SuggestionReason {
            code: reason_code(reason.code).into(),
            product_ids: reason.product_ids,
            category: reason.category,
            from_category: reason.from_category,
            text: reason.text,
        }),
    }
}

/// The proto form of how an item's size was chosen.
pub(super) fn size_choice(f: FitView) -> pb::SizeChoice {
    let FitView {
        fit,
        size,
        domain,
        confidence,
        sizes_in_stock,
        text,
    } = f;
    pb::SizeChoice {
        status: match fit {
            Fit::NotSized => pb::SizeFit::NotSized,
            Fit::CustomerSize => pb::SizeFit::CustomerSize,
            Fit::Unknown => pb::SizeFit::Unknown,
            Fit::Probable => pb::SizeFit::Probable,
        }
        .into(),
        size,
        size_domain: domain,
        confidence: confidence
            .map_or(pb::SizeConfidence::Unspecified, size_confidence)
            .into(),
        sizes_in_stock,
        text,
    }
}

/// The proto form of a size estimate's confidence.
pub fn size_confidence(c: Confidence) -> pb::SizeConfidence {
    match c {
        Confidence::Low => pb::SizeConfidence::Low,
        Confidence::Medium => pb::SizeConfidence::Medium,
        Confidence::High => pb::SizeConfidence::High,
    }
}

/// The proto form of a suggestion list.
pub fn suggestions(l: SuggestionList) -> pb::Suggestions {
    let SuggestionList {
        items,
        experiment,
        variant,
        personalised,
        note,
    } = l;
    pb::Suggestions {
        items: items.into_iter().map(item).collect(),
        experiment,
        variant,
        personalised,
        note,
    }
}

/// One piece of feedback.
pub fn feedback(f: pb::SuggestionFeedback) -> Result<FeedbackInput, Violations> {
    let pb::SuggestionFeedback {
        suggestion_id,
        kind,
        occurred_at,
    } = f;
    let mut v = Violations::new();
    if suggestion_id.trim().is_empty() {
        v.add("suggestion_id", "is required");
    } else if suggestion_id.len() > 2048 {
        v.add(
            "suggestion_id",
            "is not a suggestion id issued by this service",
        );
    }
    let kind = match pb::FeedbackKind::try_from(kind) {
        Ok(pb::FeedbackKind::Shown) => Some(FeedbackKind::Shown),
        Ok(pb::FeedbackKind::ThumbsUp) => Some(FeedbackKind::ThumbsUp),
        Ok(pb::FeedbackKind::ThumbsDown) => Some(FeedbackKind::ThumbsDown),
        Ok(pb::FeedbackKind::SentToCustomer) => Some(FeedbackKind::SentToCustomer),
        Ok(pb::FeedbackKind::AddedToCart) => Some(FeedbackKind::AddedToCart),
        Ok(pb::FeedbackKind::Purchased) => Some(FeedbackKind::Purchased),
        Ok(pb::FeedbackKind::Unspecified) | Err(_) => {
            v.add("kind", "is required: one of the FeedbackKind values");
            None
        }
    };
    let occurred_at = timestamp(&mut v, "occurred_at", occurred_at, false);
    if let Some(at) = occurred_at
        && at.millis() > d::Timestamp::now().millis() + 5 * 60_000
    {
        v.add("occurred_at", "is in the future");
    }
    v.build(|| {
        Some(FeedbackInput {
            suggestion_id,
            kind: kind?,
            occurred_at,
        })
    })
}

fn weights(w: Option<pb::StrategyWeights>) -> Weights {
    let mut out = Weights::default();
    let Some(pb::StrategyWeights {
        bought_together,
        popular_in_category,
        popular,
        viewed_together,
        new_category,
        price_fit,
        per_category,
        brand_affinity,
        affinity_categories,
        new_categories,
        also_bought,
        curated,
        learned_reranker,
    }) = w
    else {
        return out;
    };
    let set = |slot: &mut f32, value: Option<f32>| {
        if let Some(x) = value {
            *slot = if x.is_finite() { x } else { -1.0 };
        }
    };
    set(&mut out.complement, bought_together);
    set(&mut out.affinity, popular_in_category);
    set(&mut out.popular, popular);
    set(&mut out.coviewed, viewed_together);
    set(&mut out.new_category, new_category);
    set(&mut out.price_fit, price_fit);
    set(&mut out.brand, brand_affinity);
    set(&mut out.also_bought, also_bought);
    set(&mut out.curated, curated);
    if let Some(n) = per_category {
        out.per_category = n as usize;
    }
    if let Some(n) = affinity_categories {
        out.affinity_categories = n as usize;
    }
    if let Some(n) = new_categories {
        out.new_categories = n as usize;
    }
    if let Some(on) = learned_reranker {
        out.learned = if on { 1.0 } else { 0.0 };
    }
    out
}

/// An experiment from a SetExperiment request (checked by the core).
pub fn experiment_in(r: pb::SetExperimentRequest) -> Result<Experiment, Violations> {
    let pb::SetExperimentRequest { experiment } = r;
    let Some(pb::Experiment {
        name,
        variants,
        running,
        updated_at: _,
    }) = experiment
    else {
        return Err(Violations::single("experiment", "is required"));
    };
    Ok(Experiment {
        name: name.trim().to_owned(),
        variants: variants
            .into_iter()
            .map(|v| Variant {
                name: v.name.trim().to_owned(),
                traffic_weight: v.traffic_weight,
                weights: weights(v.weights),
            })
            .collect(),
        running,
    })
}

/// The proto form of an experiment.
pub fn experiment_out(e: Experiment, updated_at: d::Timestamp) -> pb::Experiment {
    let Experiment {
        name,
        variants,
        running,
    } = e;
    pb::Experiment {
        name,
        variants: variants
            .into_iter()
            .map(|v| pb::Variant {
                name: v.name,
                traffic_weight: v.traffic_weight,
                weights: Some(pb::StrategyWeights {
                    bought_together: Some(v.weights.complement),
                    popular_in_category: Some(v.weights.affinity),
                    popular: Some(v.weights.popular),
                    viewed_together: Some(v.weights.coviewed),
                    new_category: Some(v.weights.new_category),
                    price_fit: Some(v.weights.price_fit),
                    per_category: Some(v.weights.per_category as u32),
                    brand_affinity: Some(v.weights.brand),
                    affinity_categories: Some(v.weights.affinity_categories as u32),
                    new_categories: Some(v.weights.new_categories as u32),
                    also_bought: Some(v.weights.also_bought),
                    curated: Some(v.weights.curated),
                    learned_reranker: Some(v.weights.learned > 0.0),
                }),
            })
            .collect(),
        running,
        updated_at: Some(ts(updated_at)),
    }
}

fn rate((value, low, high): (f64, f64, f64)) -> pb::Rate {
    pb::Rate { value, low, high }
}

/// The proto form of an experiment's numbers.
pub fn stats(experiment: String, reports: Vec<VariantReport>) -> pb::SuggestionStats {
    pb::SuggestionStats {
        experiment,
        variants: reports
            .into_iter()
            .map(|r| pb::VariantStats {
                variant: r.variant,
                shown: r.shown,
                accepted: r.accepted,
                purchased: r.purchased,
                rejected: r.rejected,
                acceptance: Some(rate(r.acceptance)),
                conversion: Some(rate(r.conversion)),
            })
            .collect(),
        as_of: Some(ts(d::Timestamp::now())),
    }
}
