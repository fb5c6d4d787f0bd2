//! StylistService: curations in and out of their protos, each operation
//! as one function every face calls (over the [`Desk`]), and the thin gRPC
//! handlers over them.

use tonic::{Request, Response, Status};

use super::{
    caller_of,
    convert::{self, bounded, customer_in, required, text, timestamp, ts},
    invalid_argument, suggestions,
};
use crate::{
    curate::{CurationView, ListFilter, ListQuery, PAGE_SIZE},
    desk::Desk,
    domain::{self as d, Violations},
    proto as pb,
    suggest::{
        SuggestQuery,
        curated::Match,
        limits,
        preview::{CurationPreview, LeftOut, PreviewItem},
    },
};

/// The handlers.
#[derive(Debug, Clone)]
pub struct StylistApi {
    desk: Desk,
}

impl StylistApi {
    /// An adapter over the desk.
    pub fn new(desk: Desk) -> Self {
        Self { desk }
    }
}

/// A curation's content from its proto (fields named under `curation.`).
fn draft(c: Option<pb::Curation>) -> Result<(String, d::CurationDraft), Violations> {
    let mut v = Violations::new();
    let Some(pb::Curation {
        curation_id,
        title,
        stylist,
        note,
        anchor,
        items,
        starts_at,
        ends_at,
        state: _,
        create_time: _,
        update_time: _,
        stats: _,
    }) = c
    else {
        return Err(Violations::single("curation", "is required"));
    };
    let title = text(&mut v, "curation.title", &title, d::MAX_TITLE_LEN, true);
    let stylist = text(
        &mut v,
        "curation.stylist",
        &stylist,
        d::MAX_STYLIST_LEN,
        true,
    );
    let note = text(
        &mut v,
        "curation.note",
        &note,
        d::MAX_CURATION_NOTE_LEN,
        false,
    );
    let anchor = anchor_in(&mut v, anchor);
    if items.is_empty() || items.len() > d::MAX_CURATED_ITEMS {
        v.add(
            "curation.items",
            format!(
                "has {} items; a curation has 1 to {}",
                items.len(),
                d::MAX_CURATED_ITEMS
            ),
        );
    }
    let items: Vec<d::CuratedItem> = items
        .into_iter()
        .take(d::MAX_CURATED_ITEMS)
        .enumerate()
        .filter_map(|(i, item)| {
            let field = |f: &str| format!("curation.items[{i}].{f}");
            let note = text(
                &mut v,
                &field("note"),
                &item.note,
                d::MAX_ITEM_NOTE_LEN,
                false,
            );
            required(
                &mut v,
                &field("product_id"),
                &item.product_id,
                d::ProductId::parse,
            )
            .map(|product_id| d::CuratedItem { product_id, note })
        })
        .collect();
    let starts_at = timestamp(&mut v, "curation.starts_at", starts_at, false);
    let ends_at = timestamp(&mut v, "curation.ends_at", ends_at, false);
    if let (Some(s), Some(e)) = (starts_at, ends_at)
        && e <= s
    {
        v.add("curation.ends_at", "must be after starts_at");
    }
    v.build(|| {
        Some((
            curation_id,
            d::CurationDraft {
                title,
                stylist,
                note,
                anchor: anchor?,
                items,
                starts_at,
                ends_at,
            },
        ))
    })
}

fn anchor_in(v: &mut Violations, a: Option<pb::CurationAnchor>) -> Option<d::Anchor> {
    use pb::curation_anchor::Anchor as A;
    let field = "curation.anchor";
    match a.and_then(|a| a.anchor) {
        None => {
            v.add(field, "is required: products, a category or customers");
            None
        }
        Some(A::Products(p)) => {
            let f = "curation.anchor.products.product_ids";
            if p.product_ids.is_empty() {
                v.add(f, "needs at least one product");
            }
            let ids = suggestions::product_ids(v, f, &p.product_ids, d::MAX_ANCHOR_PRODUCTS);
            Some(d::Anchor::Products(ids))
        }
        Some(A::Category(c)) => {
            let levels: Vec<&str> = c.split('>').map(str::trim).collect();
            v.check(
                "curation.anchor.category",
                d::CategoryPath::parse(&levels, true),
            )
            .map(d::Anchor::Category)
        }
        Some(A::Customers(c)) => {
            let f = "curation.anchor.customers.customer_ids";
            if c.customer_ids.is_empty() || c.customer_ids.len() > d::MAX_ANCHOR_CUSTOMERS {
                v.add(
                    f,
                    format!(
                        "has {} ids; 1 to {} are allowed",
                        c.customer_ids.len(),
                        d::MAX_ANCHOR_CUSTOMERS
                    ),
                );
                return None;
            }
            let ids = c
                .customer_ids
                .iter()
                .enumerate()
                .filter_map(|(i, id)| v.check(format!("{f}[{i}]"), d::CustomerId::parse(id)))
                .collect();
            Some(d::Anchor::Customers(ids))
        }
    }
}

fn state(s: d::CurationState) -> pb::CurationState {
    match s {
        d::CurationState::Active => pb::CurationState::Active,
        d::CurationState::Scheduled => pb::CurationState::Scheduled,
        d::CurationState::Ended => pb::CurationState::Ended,
        d::CurationState::Archived => pb::CurationState::Archived,
    }
}

/// The proto form of a listed curation.
fn curation(view: CurationView) -> pb::Curation {
    let CurationView {
        curation: c,
        state: s,
        available,
        counts,
        item_counts,
    } = view;
    use pb::curation_anchor::Anchor as A;
    let anchor = match c.draft.anchor {
        d::Anchor::Products(ids) => A::Products(pb::ProductIds {
            product_ids: ids.iter().map(|p| p.as_str().to_owned()).collect(),
        }),
        d::Anchor::Category(path) => A::Category(path.levels().join(" > ")),
        d::Anchor::Customers(ids) => A::Customers(pb::CustomerIds {
            customer_ids: ids.iter().map(|c| c.as_str().to_owned()).collect(),
        }),
    };
    pb::Curation {
        curation_id: c.curation_id,
        title: c.draft.title,
        stylist: c.draft.stylist,
        note: c.draft.note,
        anchor: Some(pb::CurationAnchor {
            anchor: Some(anchor),
        }),
        items: c
            .draft
            .items
            .into_iter()
            .zip(c.item_groups)
            .zip(available)
            .zip(item_counts)
            .map(|(((i, group_id), available), n)| pb::CuratedItem {
                product_id: i.product_id.as_str().to_owned(),
                note: i.note,
                group_id,
                available,
                stats: Some(stats(n)),
            })
            .collect(),
        starts_at: c.draft.starts_at.map(ts),
        ends_at: c.draft.ends_at.map(ts),
        state: state(s).into(),
        create_time: Some(ts(c.created_at)),
        update_time: Some(ts(c.updated_at)),
        stats: Some(stats(counts)),
    }
}

fn stats(n: crate::store::CurationCounts) -> pb::CurationStats {
    pb::CurationStats {
        shown: n.shown,
        accepted: n.accepted,
        purchased: n.purchased,
        rejected: n.rejected,
    }
}

/// The proto form of a preview.
fn preview(p: CurationPreview) -> pb::PreviewCurationResponse {
    let CurationPreview {
        customer_id,
        matched,
        personalised,
        note,
        items,
    } = p;
    pb::PreviewCurationResponse {
        customer_id: customer_id
            .map(|c| c.as_str().to_owned())
            .unwrap_or_default(),
        r#match: match matched {
            None | Some(Match::Asked) => pb::CurationMatch::Unspecified,
            Some(Match::Customer) => pb::CurationMatch::Customer,
            Some(Match::Browsed) => pb::CurationMatch::Browsed,
            Some(Match::Bought) => pb::CurationMatch::Bought,
            Some(Match::Category) => pb::CurationMatch::Category,
        }
        .into(),
        items: items
            .into_iter()
            .map(|i| {
                let PreviewItem {
                    product_id,
                    shown,
                    left_out,
                } = i;
                pb::PreviewedItem {
                    product_id,
                    shown: shown.map(suggestions::item),
                    left_out: left_out
                        .map_or(pb::LeftOutReason::Unspecified, |l| match l {
                            LeftOut::Owned => pb::LeftOutReason::Owned,
                            LeftOut::Returned => pb::LeftOutReason::Returned,
                            LeftOut::ThumbedDown => pb::LeftOutReason::ThumbedDown,
                            LeftOut::InCart => pb::LeftOutReason::InCart,
                            LeftOut::Unavailable => pb::LeftOutReason::Unavailable,
                            LeftOut::NotInTheirSize => pb::LeftOutReason::NotInTheirSize,
                            LeftOut::NotMerchandise => pb::LeftOutReason::NotMerchandise,
                            LeftOut::NotInCatalogue => pb::LeftOutReason::NotInCatalogue,
                        })
                        .into(),
                    left_out_text: left_out.map(|l| l.text().to_owned()).unwrap_or_default(),
                }
            })
            .collect(),
        personalised,
        note,
    }
}

fn curation_id(raw: &str) -> Result<String, Status> {
    let mut v = Violations::new();
    let id = text(&mut v, "curation_id", raw, 64, true);
    if v.is_empty() {
        Ok(id)
    } else {
        Err(invalid_argument(&v))
    }
}

fn list_query(r: pb::ListCurationsRequest) -> Result<ListQuery, Violations> {
    let pb::ListCurationsRequest {
        page_size,
        page_token,
        stylist,
        anchor_product_id,
        anchor_category,
        filter,
    } = r;
    let mut v = Violations::new();
    let page_size = bounded(&mut v, "page_size", page_size, PAGE_SIZE);
    let stylist = text(&mut v, "stylist", &stylist, d::MAX_STYLIST_LEN, false);
    let product = convert::optional(
        &mut v,
        "anchor_product_id",
        &anchor_product_id,
        d::ProductId::parse,
    )
    .map(|p| p.as_str().to_owned());
    let category = match anchor_category.trim() {
        "" => None,
        c => {
            let levels: Vec<&str> = c.split('>').map(str::trim).collect();
            v.check("anchor_category", d::CategoryPath::parse(&levels, true))
                .map(|p| p.to_stored())
        }
    };
    let filter = match pb::CurationFilter::try_from(filter) {
        Ok(pb::CurationFilter::Unspecified) => ListFilter::NotArchived,
        Ok(pb::CurationFilter::Active) => ListFilter::Active,
        Ok(pb::CurationFilter::Archived) => ListFilter::Archived,
        Ok(pb::CurationFilter::All) => ListFilter::All,
        Err(_) => {
            v.add("filter", format!("{filter} is not a known filter"));
            ListFilter::NotArchived
        }
    };
    if page_token.len() > 512 {
        v.add("page_token", "is not a token of this listing");
    }
    v.finish(|| ListQuery {
        page_size,
        page_token,
        stylist: (!stylist.is_empty()).then_some(stylist),
        anchor_product: product,
        anchor_category: category,
        filter,
    })
}

fn curated_query(r: pb::GetCuratedCrossSellsRequest) -> Result<SuggestQuery, Violations> {
    let pb::GetCuratedCrossSellsRequest {
        customer,
        anchor_product_ids,
        limit,
    } = r;
    let mut v = Violations::new();
    let key = customer_in(&mut v, "customer", customer);
    let anchors = suggestions::product_ids(
        &mut v,
        "anchor_product_ids",
        &anchor_product_ids,
        limits::ANCHORS,
    );
    let limit = bounded(&mut v, "limit", limit, limits::ITEMS);
    v.build(|| {
        Some(SuggestQuery {
            key: key?,
            anchors,
            exclude: Vec::new(),
            limit,
        })
    })
}

/// CreateCuration for every face.
pub async fn create_curation(
    desk: &Desk,
    request: pb::CreateCurationRequest,
) -> Result<pb::Curation, Status> {
    let pb::CreateCurationRequest {
        curation: c,
        request_id,
    } = request;
    let mut v = Violations::new();
    let request_id = text(&mut v, "request_id", &request_id, 128, false);
    let (_, draft) = match (draft(c), v.is_empty()) {
        (Ok(p), true) => p,
        (Ok(_), false) => return Err(invalid_argument(&v)),
        (Err(e), _) => {
            for fv in e.into_vec() {
                v.add(fv.field, fv.description);
            }
            return Err(invalid_argument(&v));
        }
    };
    let id = (!request_id.is_empty()).then_some(request_id.as_str());
    Ok(curation(desk.curate().create(&draft, id).await?))
}

/// UpdateCuration for every face.
pub async fn update_curation(
    desk: &Desk,
    request: pb::UpdateCurationRequest,
) -> Result<pb::Curation, Status> {
    let (id, draft) = draft(request.curation).map_err(|v| invalid_argument(&v))?;
    let id = curation_id(&id).map_err(|_| {
        invalid_argument(&Violations::single("curation.curation_id", "is required"))
    })?;
    Ok(curation(desk.curate().update(&id, &draft).await?))
}

/// ArchiveCuration for every face.
pub async fn archive_curation(
    desk: &Desk,
    request: pb::ArchiveCurationRequest,
) -> Result<pb::Curation, Status> {
    let id = curation_id(&request.curation_id)?;
    Ok(curation(desk.curate().archive(&id).await?))
}

/// ListCurations for every face.
pub async fn list_curations(
    desk: &Desk,
    request: pb::ListCurationsRequest,
) -> Result<pb::ListCurationsResponse, Status> {
    let q = list_query(request).map_err(|v| invalid_argument(&v))?;
    let (page, next_page_token) = desk.curate().list(&q).await?;
    Ok(pb::ListCurationsResponse {
        curations: page.into_iter().map(curation).collect(),
        next_page_token,
    })
}

/// PreviewCuration for every face (a read of the customer, on record).
pub async fn preview_curation(
    desk: &Desk,
    caller: &d::Caller,
    request: pb::PreviewCurationRequest,
) -> Result<pb::PreviewCurationResponse, Status> {
    let pb::PreviewCurationRequest {
        curation_id,
        customer,
    } = request;
    let mut v = Violations::new();
    let id = text(&mut v, "curation_id", &curation_id, 64, true);
    let key = customer_in(&mut v, "customer", customer);
    let key = match key {
        Some(key) if v.is_empty() => key,
        _ => return Err(invalid_argument(&v)),
    };
    Ok(preview(desk.preview(caller, &id, &key).await?))
}

/// GetCuratedCrossSells for every face (on record when it read a
/// customer).
pub async fn get_curated_cross_sells(
    desk: &Desk,
    caller: &d::Caller,
    request: pb::GetCuratedCrossSellsRequest,
) -> Result<pb::GetCuratedCrossSellsResponse, Status> {
    let query = curated_query(request).map_err(|v| invalid_argument(&v))?;
    let out = desk.curated(caller, &query).await?;
    Ok(pb::GetCuratedCrossSellsResponse {
        customer_id: out
            .customer_id
            .map(|c| c.as_str().to_owned())
            .unwrap_or_default(),
        as_of: Some(ts(out.as_of)),
        suggestions: Some(suggestions::suggestions(out.list)),
    })
}

#[tonic::async_trait]
impl pb::stylist_service_server::StylistService for StylistApi {
    #[tracing::instrument(skip_all, name = "CreateCuration")]
    async fn create_curation(
        &self,
        request: Request<pb::CreateCurationRequest>,
    ) -> Result<Response<pb::Curation>, Status> {
        create_curation(&self.desk, request.into_inner())
            .await
            .map(Response::new)
    }

    #[tracing::instrument(skip_all, name = "UpdateCuration")]
    async fn update_curation(
        &self,
        request: Request<pb::UpdateCurationRequest>,
    ) -> Result<Response<pb::Curation>, Status> {
        update_curation(&self.desk, request.into_inner())
            .await
            .map(Response::new)
    }

    #[tracing::instrument(skip_all, name = "ArchiveCuration")]
    async fn archive_curation(
        &self,
        request: Request<pb::ArchiveCurationRequest>,
    ) -> Result<Response<pb::Curation>, Status> {
        archive_curation(&self.desk, request.into_inner())
            .await
            .map(Response::new)
    }

    #[tracing::instrument(skip_all, name = "ListCurations")]
    async fn list_curations(
        &self,
        request: Request<pb::ListCurationsRequest>,
    ) -> Result<Response<pb::ListCurationsResponse>, Status> {
        list_curations(&self.desk, request.into_inner())
            .await
            .map(Response::new)
    }

    #[tracing::instrument(skip_all, name = "PreviewCuration")]
    async fn preview_curation(
        &self,
        request: Request<pb::PreviewCurationRequest>,
    ) -> Result<Response<pb::PreviewCurationResponse>, Status> {
        let caller = caller_of(&request)?;
        preview_curation(&self.desk, &caller, request.into_inner())
            .await
            .map(Response::new)
    }

    #[tracing::instrument(skip_all, name = "GetCuratedCrossSells")]
    async fn get_curated_cross_sells(
        &self,
        request: Request<pb::GetCuratedCrossSellsRequest>,
    ) -> Result<Response<pb::GetCuratedCrossSellsResponse>, Status> {
        let caller = caller_of(&request)?;
        get_curated_cross_sells(&self.desk, &caller, request.into_inner())
            .await
            .map(Response::new)
    }
}
