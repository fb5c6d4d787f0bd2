//! Stylists' curations: create, update, archive and list them (with each
//! item's availability and the curation's feedback numbers), and serve
//! curated cross-sells through the suggestion core. Knows nothing of gRPC.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};

use crate::{
    domain::{
        Curation, CurationDraft, CurationState, CustomerKey, Error, Timestamp, curation_id_from,
    },
    store::{CurationCounts, CurationFilter, CurationQuery, Store},
    suggest::{Model, SuggestOutcome, SuggestQuery, SuggestService, preview::CurationPreview},
};

/// Default and maximum page size of ListCurations.
pub const PAGE_SIZE: (u32, u32) = (20, 100);

/// A curation as listed: its state now, each item's availability, and the
/// feedback on its items.
#[derive(Debug, Clone)]
pub struct CurationView {
    /// The curation.
    pub curation: Curation,
    /// Its state now.
    pub state: CurationState,
    /// Per item, whether any variant of its style can be sold now.
    pub available: Vec<bool>,
    /// Feedback on its items, all together.
    pub counts: CurationCounts,
    /// Feedback per item (by its style), in the curation's order.
    pub item_counts: Vec<CurationCounts>,
}

/// What ListCurations asks for (the page token still opaque).
#[derive(Debug, Clone)]
pub struct ListQuery {
    /// Most per page.
    pub page_size: u32,
    /// The previous page's token ("" for the first page).
    pub page_token: String,
    /// Only this stylist's.
    pub stylist: Option<String>,
    /// Only those anchored on this product's style.
    pub anchor_product: Option<String>,
    /// Only those anchored on exactly this category (stored form).
    pub anchor_category: Option<String>,
    /// Which states.
    pub filter: ListFilter,
}

/// Which curations to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ListFilter {
    /// Not archived.
    NotArchived,
    /// Served now.
    Active,
    /// Archived.
    Archived,
    /// All.
    All,
}

/// Curations over a store, served through `suggest`.
#[derive(Debug, Clone)]
pub struct CurateService {
    store: Store,
    suggest: SuggestService,
}

impl CurateService {
    /// A service over `store`, serving through `suggest`.
    pub fn new(store: Store, suggest: SuggestService) -> Self {
        Self { store, suggest }
    }

    /// Creates a curation (a retry with the same `request_id` returns the
    /// first one).
    pub async fn create(
        &self,
        draft: &CurationDraft,
        request_id: Option<&str>,
    ) -> Result<CurationView, Error> {
        let mut bytes = [0u8; 10];
        getrandom::fill(&mut bytes)
            .map_err(|e| Error::Internal(anyhow::anyhow!("no randomness for an id: {e}")))?;
        let c = self
            .store
            .create_curation(&curation_id_from(bytes), request_id, draft)
            .await?;
        self.view(c).await
    }

    /// Replaces a curation's content.
    pub async fn update(&self, id: &str, draft: &CurationDraft) -> Result<CurationView, Error> {
        let c = self.store.update_curation(id, draft).await?;
        self.view(c).await
    }

    /// Archives a curation.
    pub async fn archive(&self, id: &str) -> Result<CurationView, Error> {
        let c = self.store.archive_curation(id).await?;
        self.view(c).await
    }

    /// One page, and the token of the next ("" on the last page).
    pub async fn list(&self, q: &ListQuery) -> Result<(Vec<CurationView>, String), Error> {
        let fingerprint = filters_fingerprint(q);
        let after = match q.page_token.as_str() {
            "" => None,
            t => Some(decode_token(t, fingerprint).ok_or_else(|| {
                Error::invalid(
                    "page_token",
                    "is not a token of this listing (tokens are only valid with the same filters)",
                )
            })?),
        };
        self.suggest.live().ensure_current(&self.store).await?;
        let anchor_group = q.anchor_product.as_deref().map(|p| {
            self.suggest.live().read(|m| {
                m.item(p)
                    .map(|i| m.groups.names[m.catalog.items[i as usize].group as usize].clone())
                    .unwrap_or_else(|| p.to_owned())
            })
        });
        let now = Timestamp::now();
        let (page, more) = self
            .store
            .list_curations(&CurationQuery {
                page_size: q.page_size,
                after,
                stylist: q.stylist.clone(),
                anchor_group,
                anchor_category: q.anchor_category.clone(),
                filter: match q.filter {
                    ListFilter::NotArchived => CurationFilter::NotArchived,
                    ListFilter::Active => CurationFilter::ActiveAt(now),
                    ListFilter::Archived => CurationFilter::Archived,
                    ListFilter::All => CurationFilter::All,
                },
            })
            .await?;
        let next = match (more, page.last()) {
            (true, Some(last)) => {
                encode_token(last.created_at.millis(), &last.curation_id, fingerprint)
            }
            _ => String::new(),
        };
        let views = self.views(page).await?;
        Ok((views, next))
    }

    /// PreviewCuration: the curation as the customer `key` names would get
    /// it.
    pub async fn preview(&self, id: &str, key: &CustomerKey) -> Result<CurationPreview, Error> {
        let curation = self
            .store
            .curation(id)
            .await?
            .ok_or_else(|| Error::NotFound("no such curation".into()))?;
        self.suggest.preview(&curation, key).await
    }

    /// GetCuratedCrossSells.
    pub async fn curated(&self, query: &SuggestQuery) -> Result<SuggestOutcome, Error> {
        self.suggest.curated(query).await
    }

    async fn view(&self, c: Curation) -> Result<CurationView, Error> {
        self.suggest.live().ensure_current(&self.store).await?;
        Ok(self.views(vec![c]).await?.remove(0))
    }

    /// Availability (as this replica's model knows it, current with the
    /// change feed) and feedback numbers for each curation.
    async fn views(&self, page: Vec<Curation>) -> Result<Vec<CurationView>, Error> {
        let ids: Vec<&str> = page.iter().map(|c| c.curation_id.as_str()).collect();
        let counts = self.store.curation_counts(&ids).await?;
        let now = Timestamp::now();
        let available: Vec<Vec<bool>> = self.suggest.live().read(|m| {
            page.iter()
                .map(|c| {
                    c.draft
                        .items
                        .iter()
                        .zip(&c.item_groups)
                        .map(|(i, g)| style_available(m, g, i.product_id.as_str()))
                        .collect()
                })
                .collect()
        });
        Ok(page
            .into_iter()
            .zip(available)
            .map(|(c, available)| {
                let item_counts: Vec<CurationCounts> = c
                    .item_groups
                    .iter()
                    .map(|g| {
                        let key = (c.curation_id.clone(), g.clone());
                        counts.get(&key).copied().unwrap_or_default()
                    })
                    .collect();
                // Feedback on a style no longer in the curation still
                // counts for the curation.
                let mut total = CurationCounts::default();
                for ((id, _), n) in &counts {
                    if *id == c.curation_id {
                        total += *n;
                    }
                }
                CurationView {
                    state: c.state(now),
                    counts: total,
                    item_counts,
                    curation: c,
                    available,
                }
            })
            .collect())
    }
}

/// Whether any variant of a style can be sold now.
fn style_available(m: &Model, group: &str, product: &str) -> bool {
    let item = |i: u32| {
        m.catalog
            .items
            .get(i as usize)
            .is_some_and(|it| it.available)
    };
    let variants = m
        .groups
        .get(group)
        .and_then(|g| m.variants.get(g as usize))
        .map_or(&[][..], Vec::as_slice);
    variants.iter().any(|&v| item(v)) || m.item(product).is_some_and(item)
}

/// A hash of a listing's filters, carried in its page tokens.
fn filters_fingerprint(q: &ListQuery) -> u64 {
    let mut h = blake3::Hasher::new();
    for part in [
        q.stylist.as_deref().unwrap_or("\u{0}"),
        q.anchor_product.as_deref().unwrap_or("\u{0}"),
        q.anchor_category.as_deref().unwrap_or("\u{0}"),
        match q.filter {
            ListFilter::NotArchived => "n",
            ListFilter::Active => "a",
            ListFilter::Archived => "r",
            ListFilter::All => "*",
        },
    ] {
        h.update(part.as_bytes());
        h.update(&[0x1f]);
    }
    let mut out = [0u8; 8];
    out.copy_from_slice(&h.finalize().as_bytes()[..8]);
    u64::from_le_bytes(out)
}

/// An opaque page token: where the page ended and which filters it is for.
fn encode_token(created_at: i64, id: &str, fingerprint: u64) -> String {
    URL_SAFE_NO_PAD.encode(format!("{created_at}.{fingerprint:016x}.{id}"))
}

fn decode_token(token: &str, fingerprint: u64) -> Option<(i64, String)> {
    if token.len() > 512 {
        return None;
    }
    let raw = String::from_utf8(URL_SAFE_NO_PAD.decode(token).ok()?).ok()?;
    let mut parts = raw.splitn(3, '.');
    let created_at: i64 = parts.next()?.parse().ok()?;
    let f = u64::from_str_radix(parts.next()?, 16).ok()?;
    let id = parts.next()?;
    (f == fingerprint && id.starts_with("cur_") && id.len() <= 64)
        .then(|| (created_at, id.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_tokens_round_trip_only_with_their_filters() {
        let q = ListQuery {
            page_size: 20,
            page_token: String::new(),
            stylist: Some("ana".into()),
            anchor_product: None,
            anchor_category: None,
            filter: ListFilter::NotArchived,
        };
        let f = filters_fingerprint(&q);
        let t = encode_token(123, "cur_00ff", f);
        assert_eq!(decode_token(&t, f), Some((123, "cur_00ff".into())));
        let other = ListQuery {
            stylist: Some("bo".into()),
            ..q.clone()
        };
        assert_eq!(decode_token(&t, filters_fingerprint(&other)), None);
        assert_eq!(decode_token("not a token", f), None);
    }
}
