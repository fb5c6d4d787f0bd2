//! Words and filters into one tantivy query.

use std::ops::Bound;

use tantivy::{
    Searcher, Term,
    query::{
        BooleanQuery, BoostQuery, ConstScoreQuery, DisjunctionMaxQuery, FuzzyTermQuery, Occur,
        Query, RangeQuery, TermQuery,
    },
    schema::IndexRecordOption,
    tokenizer::{
        AsciiFoldingFilter, Language, LowerCaser, RemoveLongFilter, SimpleTokenizer, Stemmer,
        TextAnalyzer, TokenStream,
    },
};

use super::{Fields, category_key};

/// Most words of a query that count (the rest are ignored).
pub const MAX_WORDS: usize = 12;

/// A typed query: its words, and whether the last may be a prefix (the
/// agent is still typing it).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Words {
    /// (as written, lower case and folded; its stem), in order.
    words: Vec<(String, String)>,
    /// The last word may be the start of a longer one.
    last_is_prefix: bool,
}

impl Words {
    /// The words of `text` (at most [`MAX_WORDS`]; words longer than 40
    /// characters are dropped). The last word is a prefix unless the text
    /// ends in a space or punctuation.
    pub fn parse(text: &str) -> Self {
        let mut words: Vec<(String, String)> = Vec::new();
        for w in tokens(false, text) {
            let stem = tokens(true, &w)
                .into_iter()
                .next()
                .unwrap_or_else(|| w.clone());
            if !words.iter().any(|(p, _)| *p == w) {
                words.push((w, stem));
            }
            if words.len() == MAX_WORDS {
                break;
            }
        }
        let last_is_prefix = text.chars().last().is_some_and(char::is_alphanumeric);
        Self {
            words,
            last_is_prefix,
        }
    }

    /// How many words count.
    pub fn len(&self) -> usize {
        self.words.len()
    }

    /// Whether no word counts (only punctuation, say).
    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }
}

/// The analyzer of the stemmed (`stem`) or unstemmed fields: words, lower
/// case, accents folded, words over 40 characters dropped.
pub(super) fn analyzer(stem: bool) -> TextAnalyzer {
    let b = TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(40))
        .filter(LowerCaser)
        .filter(AsciiFoldingFilter);
    if stem {
        b.filter(Stemmer::new(Language::English)).build()
    } else {
        b.build()
    }
}

thread_local! {
    /// This thread's analyzers (unstemmed, stemmed), made once: a query's
    /// words are read on every search.
    static ANALYZERS: std::cell::RefCell<[TextAnalyzer; 2]> =
        std::cell::RefCell::new([analyzer(false), analyzer(true)]);
}

/// The words of `text` as the stemmed (`stem`) or unstemmed fields hold them.
fn tokens(stem: bool, text: &str) -> Vec<String> {
    ANALYZERS.with_borrow_mut(|a| {
        let mut out = Vec::new();
        let mut stream = a[usize::from(stem)].token_stream(text);
        while stream.advance() {
            out.push(stream.token().text.clone());
        }
        out
    })
}

/// What results must satisfy besides the words.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Filters {
    /// Under this category path (any depth, case-insensitive).
    pub category: Option<Vec<String>>,
    /// Of this brand (case-insensitive).
    pub brand: Option<String>,
    /// Price at least this (minor units).
    pub min_price: Option<i64>,
    /// Price at most this (minor units).
    pub max_price: Option<i64>,
    /// Active and in stock only.
    pub in_stock: bool,
}

/// Typos allowed in a word of `n` characters: none under 4, one under 8,
/// else two (Elasticsearch's AUTO fuzziness, one notch stricter on short
/// words, where a typo often names another real word).
fn typos(n: usize) -> u8 {
    match n {
        0..=3 => 0,
        4..=7 => 1,
        _ => 2,
    }
}

/// Whether the index holds `text` as a term of `field`.
fn known(searcher: &Searcher, field: tantivy::schema::Field, text: &str) -> bool {
    searcher
        .doc_freq(&Term::from_field_text(field, text))
        .is_ok_and(|n| n > 0)
}

/// What a product must hold to name one word: its stem in name, brand or
/// category (a word in the name scores higher: the name is indexed
/// twice); for a word the catalogue does not use as written, also one a
/// typo away; for the last word while typing, also any it starts. A word
/// the catalogue uses as written is taken as meant: one term, so the
/// query stays an intersection of single postings.
fn word(searcher: &Searcher, f: &Fields, plain: &str, stem: &str, prefix: bool) -> Box<dyn Query> {
    let term = |field, text: &str| -> Box<dyn Query> {
        Box::new(TermQuery::new(
            Term::from_field_text(field, text),
            IndexRecordOption::WithFreqs,
        ))
    };
    let as_written = known(searcher, f.all_plain, plain);
    let n = plain.chars().count();
    // A last word still being typed may be a whole word ("butt") and the
    // start of the one meant ("butter"): it is read as both.
    let typo = !as_written && typos(n) > 0;
    let prefix = prefix && n >= 2;
    if !typo && !prefix {
        return term(f.all, stem);
    }
    // The word as meant scores as it would unexpanded (so an expanded word
    // weighs no more than a known one); a typo or a completion counts a
    // constant below a typical match.
    let mut alternatives: Vec<Box<dyn Query>> = vec![term(f.all, stem)];
    if typo {
        // As written against words as written, and as stemmed against
        // stems: "bananna" is one typo from the stem "banana" of
        // "Bananas", two from the word.
        for (field, text) in [(f.all_plain, plain), (f.all, stem)] {
            alternatives.push(Box::new(BoostQuery::new(
                Box::new(FuzzyTermQuery::new(
                    Term::from_field_text(field, text),
                    typos(n),
                    true,
                )),
                0.5,
            )));
        }
    }
    if prefix {
        alternatives.push(Box::new(FuzzyTermQuery::new_prefix(
            Term::from_field_text(f.all_plain, plain),
            0,
            true,
        )));
    }
    Box::new(DisjunctionMaxQuery::with_tie_breaker(alternatives, 0.1))
}

/// A filter that counts nothing towards the score.
fn filter(q: Box<dyn Query>) -> (Occur, Box<dyn Query>) {
    (Occur::Must, Box::new(ConstScoreQuery::new(q, 0.0)))
}

/// The query: every word (`all_words`) or any word, within the filters.
pub(super) fn build(
    searcher: &Searcher,
    f: &Fields,
    w: &Words,
    filters: &Filters,
    all_words: bool,
) -> BooleanQuery {
    let last = w.words.len().saturating_sub(1);
    let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
    let mut any: Vec<(Occur, Box<dyn Query>)> = Vec::new();
    for (i, (plain, stem)) in w.words.iter().enumerate() {
        let names = word(searcher, f, plain, stem, w.last_is_prefix && i == last);
        if all_words {
            clauses.push((Occur::Must, names));
        } else {
            any.push((Occur::Should, names));
        }
    }
    if !any.is_empty() {
        clauses.push((Occur::Must, Box::new(BooleanQuery::new(any))));
    }
    if let Some(c) = &filters.category {
        clauses.push(filter(Box::new(TermQuery::new(
            Term::from_field_text(f.category, &category_key(c)),
            IndexRecordOption::Basic,
        ))));
    }
    if let Some(b) = &filters.brand {
        clauses.push(filter(Box::new(TermQuery::new(
            Term::from_field_text(f.brand, &b.trim().to_lowercase()),
            IndexRecordOption::Basic,
        ))));
    }
    if filters.min_price.is_some() || filters.max_price.is_some() {
        let bound = |p: Option<i64>| match p {
            Some(p) => Bound::Included(Term::from_field_i64(f.price, p)),
            None => Bound::Unbounded,
        };
        clauses.push(filter(Box::new(RangeQuery::new(
            bound(filters.min_price),
            bound(filters.max_price),
        ))));
    }
    if filters.in_stock {
        clauses.push(filter(Box::new(TermQuery::new(
            Term::from_field_u64(f.available, 1),
            IndexRecordOption::Basic,
        ))));
    }
    BooleanQuery::new(clauses)
}
