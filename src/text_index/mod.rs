//! The catalogue's word index: each replica's own, in memory (tantivy),
//! built from the catalogue at start and kept current by the change feed's
//! product entries, so a price or stock change shows on the next search.
//!
//! It answers "which products do these words name" — words in any order,
//! stems ("jackets" finds "jacket"), one or two typos, the last word as a
//! prefix while typing — within filters (category, brand, price range,
//! in stock). Who asks, and what they own or wear, is the search service's
//! business (`crate::search`), not the index's.

mod answers;
mod query;
#[cfg(test)]
mod tests;

use std::collections::HashSet;
use std::sync::{Arc, Mutex, atomic::Ordering};

use tantivy::{
    Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term,
    collector::TopDocs,
    schema::{
        FAST, Field, INDEXED, IndexRecordOption, STORED, STRING, Schema, TextFieldIndexing,
        TextOptions, Value,
    },
};

use answers::{Answers, Question};
pub use query::{Filters, MAX_WORDS, Words};

use crate::{domain::CategoryPath, store::CatalogRow};

/// Analyzer of the stemmed fields: words, lower case, accents folded,
/// English stems.
const STEMMED: &str = "cc_stemmed";
/// Analyzer of the unstemmed fields (typos and prefixes match whole words
/// as written, not stems).
const PLAIN: &str = "cc_plain";
/// Memory the writer may buffer before it writes a segment (tantivy's
/// minimum is 15 MB per thread).
const WRITER_BUDGET: usize = 50_000_000;

/// The schema's fields.
#[derive(Debug, Clone, Copy)]
struct Fields {
    /// Product id: stored (the hit's answer) and a term (updates).
    id: Field,
    /// Name, brand and category words, stemmed: what a product must name.
    /// The name is written twice, so a word in the name counts twice the
    /// term frequency of one only in the brand or category.
    all: Field,
    /// The same unstemmed (typos and prefixes as written).
    all_plain: Field,
    /// Every level of the category path, lower case ("apparel",
    /// "apparel > jackets"): the category filter.
    category: Field,
    /// The brand, lower case: the brand filter.
    brand: Field,
    /// Price in minor units: the price filter.
    price: Field,
    /// 1 when active and in stock.
    available: Field,
}

impl Fields {
    fn schema() -> (Schema, Fields) {
        let mut b = Schema::builder();
        let text = |analyzer: &str| {
            TextOptions::default().set_indexing_options(
                TextFieldIndexing::default()
                    .set_tokenizer(analyzer)
                    .set_index_option(IndexRecordOption::WithFreqs),
            )
        };
        let fields = Fields {
            id: b.add_text_field("id", STRING | STORED),
            all: b.add_text_field("all", text(STEMMED)),
            all_plain: b.add_text_field("all_plain", text(PLAIN)),
            category: b.add_text_field("category", STRING),
            brand: b.add_text_field("brand", STRING),
            price: b.add_i64_field("price", INDEXED | FAST),
            available: b.add_u64_field("available", INDEXED | FAST),
        };
        (b.build(), fields)
    }
}

/// One product as the index holds it.
fn document(f: &Fields, row: &CatalogRow) -> TantivyDocument {
    let mut doc = TantivyDocument::default();
    doc.add_text(f.id, &row.product_id);
    let path = CategoryPath::from_stored(&row.category_path);
    let all = format!("{} {} {}", row.name, row.brand, path.levels().join(" "));
    doc.add_text(f.all, format!("{} {all}", row.name));
    doc.add_text(f.all_plain, &all);
    for depth in 1..=path.levels().len() {
        doc.add_text(f.category, category_key(&path.levels()[..depth]));
    }
    if !row.brand.trim().is_empty() {
        doc.add_text(f.brand, row.brand.trim().to_lowercase());
    }
    doc.add_i64(f.price, row.price_minor);
    doc.add_u64(f.available, u64::from(row.available));
    doc
}

/// The category filter's term for a path's first levels.
fn category_key(levels: &[String]) -> String {
    levels
        .iter()
        .map(|l| l.trim().to_lowercase())
        .collect::<Vec<_>>()
        .join(CategoryPath::SEPARATOR)
}

fn question(words: &Words, filters: &Filters, limit: usize, all_words: bool) -> Question {
    Question {
        words: words.clone(),
        filters: filters.clone(),
        limit,
        all_words,
    }
}

/// A product the words name, with how well (comparable within one search).
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    /// Product id.
    pub product_id: String,
    /// Text relevance (BM25 over name, brand and category; typo and prefix
    /// matches count less than exact words).
    pub score: f32,
    /// It names every word of the query (not only some).
    pub all_words: bool,
}

/// Why the index could not answer.
#[derive(Debug, thiserror::Error)]
#[error("text index: {0}")]
pub struct IndexError(#[from] tantivy::TantivyError);

/// The state of a build from the catalogue.
#[derive(Debug, Default)]
struct Building {
    /// A bulk load is running: products upserted meanwhile (by the feed)
    /// are newer than its rows and must not be overwritten by them.
    running: bool,
    touched: HashSet<String>,
}

/// The index.
pub struct TextIndex {
    reader: IndexReader,
    writer: Mutex<IndexWriter<TantivyDocument>>,
    fields: Fields,
    building: Mutex<Building>,
    ready: tokio::sync::watch::Sender<bool>,
    /// Products held, for metrics and logs.
    docs: std::sync::atomic::AtomicU64,
    /// Answers remembered for the index as it is.
    answers: Answers,
}

impl std::fmt::Debug for TextIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextIndex")
            .field("docs", &self.len())
            .field("ready", &self.is_ready())
            .finish_non_exhaustive()
    }
}

impl TextIndex {
    /// An empty index, not ready until [`TextIndex::finish_load`].
    pub fn new() -> Result<Self, IndexError> {
        let (schema, fields) = Fields::schema();
        let index = Index::create_in_ram(schema);
        index.tokenizers().register(STEMMED, query::analyzer(true));
        index.tokenizers().register(PLAIN, query::analyzer(false));
        let writer = index.writer_with_num_threads(1, WRITER_BUDGET)?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        Ok(Self {
            reader,
            writer: Mutex::new(writer),
            fields,
            building: Mutex::default(),
            ready: tokio::sync::watch::channel(false).0,
            docs: Default::default(),
            answers: Answers::default(),
        })
    }

    /// Products held.
    pub fn len(&self) -> u64 {
        self.docs.load(Ordering::Relaxed)
    }

    /// Bytes the index's segments take in memory (0 when unknown).
    pub fn bytes(&self) -> u64 {
        self.reader
            .searcher()
            .space_usage()
            .map_or(0, |u| u.total().get_bytes())
    }

    /// Whether it holds no product.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the load from the catalogue finished.
    pub fn is_ready(&self) -> bool {
        *self.ready.borrow()
    }

    /// Waits until the load from the catalogue finished.
    pub async fn wait_ready(&self) {
        let mut rx = self.ready.subscribe();
        // The sender lives as long as `self`, so this cannot fail.
        let _ = rx.wait_for(|r| *r).await;
    }

    /// Starts a load from the catalogue: pages of [`TextIndex::load`]
    /// follow, then [`TextIndex::finish_load`].
    pub fn start_load(&self) {
        let mut b = self.building.lock().unwrap_or_else(|e| e.into_inner());
        b.running = true;
        b.touched.clear();
    }

    /// Adds one page of the catalogue read by a load, leaving out the
    /// products the feed upserted since the load started (their rows are
    /// newer than the page's). Blocking: call off the async runtime.
    pub fn load(&self, rows: &[CatalogRow]) -> Result<(), IndexError> {
        let b = self.building.lock().unwrap_or_else(|e| e.into_inner());
        let writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        for row in rows.iter().filter(|r| !b.touched.contains(&r.product_id)) {
            writer.delete_term(Term::from_field_text(self.fields.id, &row.product_id));
            writer.add_document(document(&self.fields, row))?;
        }
        Ok(())
    }

    /// Ends a load: commits what it added and makes the index ready.
    /// Blocking: call off the async runtime.
    pub fn finish_load(&self) -> Result<(), IndexError> {
        let mut b = self.building.lock().unwrap_or_else(|e| e.into_inner());
        self.commit()?;
        b.running = false;
        b.touched.clear();
        drop(b);
        self.ready.send_replace(true);
        Ok(())
    }

    /// Puts the current rows of changed products in place (the feed's
    /// product entries), visible to the next search. Blocking (a commit):
    /// call off the async runtime for large batches.
    pub fn upsert(&self, rows: &[CatalogRow]) -> Result<(), IndexError> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut b = self.building.lock().unwrap_or_else(|e| e.into_inner());
        {
            let writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
            for row in rows {
                writer.delete_term(Term::from_field_text(self.fields.id, &row.product_id));
                writer.add_document(document(&self.fields, row))?;
            }
        }
        if b.running {
            b.touched.extend(rows.iter().map(|r| r.product_id.clone()));
        }
        drop(b);
        self.commit()
    }

    fn commit(&self) -> Result<(), IndexError> {
        self.writer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .commit()?;
        self.reader.reload()?;
        let n = self.reader.searcher().num_docs();
        self.docs.store(n, Ordering::Relaxed);
        Ok(())
    }

    /// Searches answered from remembered answers, and computed by the
    /// index, since start.
    pub fn answered(&self) -> (u64, u64) {
        (
            self.answers.remembered.load(Ordering::Relaxed),
            self.answers.computed.load(Ordering::Relaxed),
        )
    }

    /// [`TextIndex::search`]'s answer when remembered for the index as it
    /// is now (cheap: callable on the async runtime).
    pub fn remembered(
        &self,
        words: &Words,
        filters: &Filters,
        limit: usize,
        all_words: bool,
    ) -> Option<Arc<Vec<Hit>>> {
        let generation = self.reader.searcher().generation().generation_id();
        self.answers.get(
            generation,
            &question(words, filters, limit, all_words),
            false,
        )
    }

    /// The products `words` name within `filters`, best first, at most
    /// `limit`: those naming every word (`all_words`), or any of them. The
    /// same question on the same index state is answered from memory.
    /// Blocking (CPU): call off the async runtime.
    pub fn search(
        &self,
        words: &Words,
        filters: &Filters,
        limit: usize,
        all_words: bool,
    ) -> Result<Arc<Vec<Hit>>, IndexError> {
        let searcher = self.reader.searcher();
        let generation = searcher.generation().generation_id();
        let question = question(words, filters, limit, all_words);
        if let Some(hits) = self.answers.get(generation, &question, true) {
            return Ok(hits);
        }
        let q = query::build(&searcher, &self.fields, words, filters, all_words);
        let top = searcher.search(&q, &TopDocs::with_limit(limit).order_by_score())?;
        let mut hits = Vec::with_capacity(top.len());
        for (score, address) in top {
            let doc: TantivyDocument = searcher.doc(address)?;
            if let Some(id) = doc.get_first(self.fields.id).and_then(|v| v.as_str()) {
                hits.push(Hit {
                    product_id: id.to_owned(),
                    score,
                    all_words,
                });
            }
        }
        let hits = Arc::new(hits);
        self.answers.put(generation, question, hits.clone());
        Ok(hits)
    }
}
