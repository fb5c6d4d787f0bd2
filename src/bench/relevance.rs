//! `evaluate-search`: relevance of SearchProducts on judged queries,
//! through the served code (the replica's word index and the search
//! service, without a customer), as precision@5 and MRR.
//!
//! A judged file holds one JSON object per line: the `query`, its `kind`
//! (words, stem, order, typo, prefix, synonym, …) and what should come
//! first: `categories` (a product is relevant when its category path is one
//! of them or under one) and/or `groups` (style ids).

use std::collections::BTreeMap;

use anyhow::Context as _;
use serde::Deserialize;

use crate::{
    domain::CategoryPath,
    search::{SearchQuery, SearchService},
    text_index::{Filters, Words},
};

/// One judged query.
#[derive(Debug, Clone, Deserialize)]
pub struct Judged {
    /// As typed.
    pub query: String,
    /// What it tests.
    #[serde(default)]
    pub kind: String,
    /// Relevant category paths ("A > B > C").
    #[serde(default)]
    pub categories: Vec<String>,
    /// Relevant style ids.
    #[serde(default)]
    pub groups: Vec<String>,
}

/// Reads a judged file.
pub fn read(path: &std::path::Path) -> anyhow::Result<Vec<Judged>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {path:?}"))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| serde_json::from_str(l).with_context(|| format!("{path:?} line {}", i + 1)))
        .collect()
}

/// One query's outcome.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The judged query.
    pub judged: Judged,
    /// Relevant results among the first 5, over min(5, relevant results the
    /// catalogue can give: styles that are not look-alikes of each other):
    /// 1 when the first five are as good as they can be.
    pub precision_at_5: f64,
    /// 1 / rank of the first relevant result (0 when none in the top 10).
    pub reciprocal_rank: f64,
    /// The first three results' names, for reading.
    pub top: Vec<String>,
}

/// Whether a result (category path, style) is relevant to `j`.
pub fn relevant(j: &Judged, category: &CategoryPath, group: &str) -> bool {
    let path = category.levels().join(" > ");
    j.groups.iter().any(|g| g == group)
        || j.categories
            .iter()
            .any(|c| path == *c || path.starts_with(&format!("{c} > ")))
}

/// Runs every judged query through `search` (10 results, no customer).
/// `relevant_styles` counts a query's relevant results in the catalogue
/// (styles, look-alikes counted once).
pub async fn run(
    search: &SearchService,
    judged: &[Judged],
    relevant_styles: impl Fn(&Judged) -> usize,
) -> anyhow::Result<Vec<Outcome>> {
    let mut out = Vec::with_capacity(judged.len());
    for j in judged {
        let q = SearchQuery {
            words: Words::parse(&j.query),
            customer: None,
            filters: Filters::default(),
            currency: None,
            limit: 10,
        };
        let found = search
            .search(&q)
            .await
            .map_err(|e| anyhow::anyhow!("searching {:?}: {e:?}", j.query))?;
        let marks: Vec<bool> = found
            .results
            .iter()
            .map(|f| relevant(j, &f.product.category, &f.product.group_id))
            .collect();
        let ideal = relevant_styles(j).clamp(1, 5);
        let hits = marks.iter().take(5).filter(|m| **m).count();
        out.push(Outcome {
            judged: j.clone(),
            precision_at_5: hits as f64 / ideal as f64,
            reciprocal_rank: marks
                .iter()
                .position(|m| *m)
                .map_or(0.0, |r| 1.0 / (r + 1) as f64),
            top: found
                .results
                .iter()
                .take(3)
                .map(|f| f.product.name.clone())
                .collect(),
        });
    }
    Ok(out)
}

/// The outcomes as Markdown: every query, then the means by kind and
/// overall.
pub fn table(name: &str, outcomes: &[Outcome]) -> String {
    let mut out = format!(
        "### {name}\n\n| query | kind | P@5 | RR | first results |\n| --- | --- | ---: | ---: | --- |\n"
    );
    let mut by_kind: BTreeMap<&str, (f64, f64, usize)> = BTreeMap::new();
    for o in outcomes {
        out.push_str(&format!(
            "| {} | {} | {:.2} | {:.2} | {} |\n",
            o.judged.query,
            o.judged.kind,
            o.precision_at_5,
            o.reciprocal_rank,
            o.top.join("; ")
        ));
        for kind in [o.judged.kind.as_str(), "all"] {
            let e = by_kind.entry(kind).or_default();
            e.0 += o.precision_at_5;
            e.1 += o.reciprocal_rank;
            e.2 += 1;
        }
    }
    out.push_str("\n| kind | queries | mean P@5 | MRR |\n| --- | ---: | ---: | ---: |\n");
    for (kind, (p, rr, n)) in by_kind {
        out.push_str(&format!(
            "| {kind} | {n} | {:.3} | {:.3} |\n",
            p / n as f64,
            rr / n as f64
        ));
    }
    out
}
