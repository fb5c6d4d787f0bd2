//! Thin gRPC adapters: convert the request, call the core, convert the
//! answer. No business rule lives here.

pub mod convert;
mod privacy;
mod search;
mod stylist;
mod suggestions;
mod watch;

use tonic::{Request, Response, Status, Streaming};

pub use crate::wire::{invalid_argument, to_status};
pub use privacy::PrivacyApi;
pub use stylist::{
    StylistApi, archive_curation, create_curation, get_curated_cross_sells, list_curations,
    preview_curation, update_curation,
};
pub use watch::{ContextStream, start as watch_customer_context};

/// The authenticated caller, attached by the gate.
fn caller_of<T>(request: &Request<T>) -> Result<crate::domain::Caller, Status> {
    request
        .extensions()
        .get::<crate::domain::Caller>()
        .cloned()
        .ok_or_else(|| {
            tracing::error!("a request reached a handler without passing the gate");
            Status::internal("internal error")
        })
}

use crate::{
    desk::Desk,
    domain::{self as d, ItemResult, Violations},
    proto as pb,
    store::Store,
};

/// Most items in one batch request.
pub const MAX_BATCH: usize = 1000;
pub use crate::wire::MAX_MESSAGE_BYTES;
/// Events committed together by `StreamEvents`. On SQLite each commit
/// writes every page it dirtied to the WAL and syncs it, and a batch of
/// views dirties index pages all over the events table: 2,000 per commit
/// took 1.5-1.8x the events/s of 500 (docs/performance.md), while one
/// commit still holds the single writer for well under a second.
pub const STREAM_FLUSH: usize = 2_000;
/// Rejected events listed in a `StreamEvents` response.
const STREAM_REJECTS_LISTED: usize = 1000;

fn check_batch(field: &str, n: usize) -> Result<(), Status> {
    if n == 0 {
        return Err(invalid_argument(&Violations::single(
            field,
            "needs at least one item",
        )));
    }
    if n > MAX_BATCH {
        return Err(invalid_argument(&Violations::single(
            field,
            format!("has {n} items; at most {MAX_BATCH} are allowed per request"),
        )));
    }
    Ok(())
}

/// A batch split into valid items (to store) and rejected ones.
struct Batch<D> {
    valid: Vec<D>,
    slots: Vec<usize>,
    results: Vec<pb::ItemResult>,
}

impl<D> Batch<D> {
    fn parse<P>(
        items: Vec<P>,
        id_of: impl Fn(&P) -> String,
        parse: impl Fn(P) -> Result<D, Violations>,
    ) -> Self {
        let mut batch = Batch {
            valid: Vec::new(),
            slots: Vec::new(),
            results: Vec::with_capacity(items.len()),
        };
        for (index, item) in items.into_iter().enumerate() {
            let id = id_of(&item);
            let mut result = pb::ItemResult {
                index: index as u32,
                id,
                outcome: 0,
                violations: Vec::new(),
            };
            match parse(item) {
                Ok(valid) => {
                    batch.valid.push(valid);
                    batch.slots.push(index);
                }
                Err(v) => {
                    result.outcome = pb::ItemOutcome::Rejected.into();
                    result.violations = convert::violations(v);
                }
            }
            batch.results.push(result);
        }
        batch
    }

    fn finish(mut self, outcomes: Vec<ItemResult>) -> (Vec<pb::ItemResult>, pb::BatchSummary) {
        for (slot, outcome) in self.slots.iter().zip(outcomes) {
            let result = &mut self.results[*slot];
            match outcome {
                Ok(o) => result.outcome = convert::outcome(o).into(),
                Err(v) => {
                    result.outcome = pb::ItemOutcome::Rejected.into();
                    result.violations = convert::violations(v);
                }
            }
        }
        let mut summary = pb::BatchSummary::default();
        for r in &self.results {
            count(&mut summary, r.outcome());
        }
        (self.results, summary)
    }
}

fn count(summary: &mut pb::BatchSummary, outcome: pb::ItemOutcome) {
    match outcome {
        pb::ItemOutcome::Created => summary.created += 1,
        pb::ItemOutcome::Updated => summary.updated += 1,
        pb::ItemOutcome::Duplicate => summary.duplicate += 1,
        pb::ItemOutcome::Suppressed => summary.suppressed += 1,
        pb::ItemOutcome::Rejected | pb::ItemOutcome::Unspecified => summary.rejected += 1,
    }
}

fn all_ok(outcomes: Vec<d::WriteOutcome>) -> Vec<ItemResult> {
    outcomes.into_iter().map(Ok).collect()
}

/// `IngestService`: writes from the retailer's systems.
#[derive(Clone, Debug)]
pub struct IngestApi {
    store: Store,
    metrics: std::sync::Arc<crate::metrics::Metrics>,
}

impl IngestApi {
    /// An adapter over `store`, counting what it writes in `metrics`.
    pub fn new(store: Store, metrics: std::sync::Arc<crate::metrics::Metrics>) -> Self {
        Self { store, metrics }
    }
}

/// Counts a batch's items by outcome.
fn count_ingested(metrics: &crate::metrics::Metrics, kind: &'static str, s: &pb::BatchSummary) {
    for (outcome, n) in [
        ("created", s.created),
        ("updated", s.updated),
        ("duplicate", s.duplicate),
        ("suppressed", s.suppressed),
        ("rejected", s.rejected),
    ] {
        metrics.ingested(kind, outcome, u64::from(n));
    }
}

#[tonic::async_trait]
impl pb::ingest_service_server::IngestService for IngestApi {
    #[tracing::instrument(skip_all, name = "UpsertProducts")]
    async fn upsert_products(
        &self,
        request: Request<pb::UpsertProductsRequest>,
    ) -> Result<Response<pb::UpsertProductsResponse>, Status> {
        let pb::UpsertProductsRequest { products } = request.into_inner();
        check_batch("products", products.len())?;
        let batch = Batch::parse(products, |p| p.product_id.clone(), convert::product);
        let outcomes = all_ok(self.store.upsert_products(&batch.valid).await?);
        let (results, summary) = batch.finish(outcomes);
        count_ingested(&self.metrics, "product", &summary);
        Ok(Response::new(pb::UpsertProductsResponse {
            results,
            summary: Some(summary),
        }))
    }

    #[tracing::instrument(skip_all, name = "UpsertCustomers")]
    async fn upsert_customers(
        &self,
        request: Request<pb::UpsertCustomersRequest>,
    ) -> Result<Response<pb::UpsertCustomersResponse>, Status> {
        let pb::UpsertCustomersRequest { customers } = request.into_inner();
        check_batch("customers", customers.len())?;
        let batch = Batch::parse(
            customers,
            |c| c.customer_id.clone(),
            |c| convert::customer(c, d::Timestamp::now()),
        );
        let outcomes = self.store.upsert_customers(&batch.valid).await?;
        let (results, summary) = batch.finish(outcomes);
        count_ingested(&self.metrics, "customer", &summary);
        Ok(Response::new(pb::UpsertCustomersResponse {
            results,
            summary: Some(summary),
        }))
    }

    #[tracing::instrument(skip_all, name = "LinkIdentity")]
    async fn link_identity(
        &self,
        request: Request<pb::LinkIdentityRequest>,
    ) -> Result<Response<pb::LinkIdentityResponse>, Status> {
        let (customer_id, identity) =
            convert::link(request.into_inner()).map_err(|v| invalid_argument(&v))?;
        let (outcome, attached) = self.store.link_identity(&customer_id, &identity).await?;
        Ok(Response::new(pb::LinkIdentityResponse {
            outcome: convert::outcome(outcome).into(),
            records_attached: attached,
        }))
    }

    #[tracing::instrument(skip_all, name = "RecordEvents")]
    async fn record_events(
        &self,
        request: Request<pb::RecordEventsRequest>,
    ) -> Result<Response<pb::RecordEventsResponse>, Status> {
        let pb::RecordEventsRequest { events } = request.into_inner();
        check_batch("events", events.len())?;
        let now = d::Timestamp::now();
        let batch = Batch::parse(events, |e| e.message_id.clone(), |e| convert::event(e, now));
        let outcomes = all_ok(self.store.record_events(&batch.valid).await?);
        let (results, summary) = batch.finish(outcomes);
        count_ingested(&self.metrics, "event", &summary);
        Ok(Response::new(pb::RecordEventsResponse {
            results,
            summary: Some(summary),
        }))
    }

    #[tracing::instrument(skip_all, name = "StreamEvents")]
    async fn stream_events(
        &self,
        request: Request<Streaming<pb::BrowsingEvent>>,
    ) -> Result<Response<pb::StreamEventsResponse>, Status> {
        let mut stream = request.into_inner();
        let mut summary = pb::BatchSummary::default();
        let mut rejected = Vec::new();
        let mut pending = Vec::with_capacity(STREAM_FLUSH);
        let mut index: u32 = 0;
        while let Some(event) = stream.message().await? {
            let id = event.message_id.clone();
            match convert::event(event, d::Timestamp::now()) {
                Ok(e) => pending.push(e),
                Err(v) => {
                    summary.rejected += 1;
                    if rejected.len() < STREAM_REJECTS_LISTED {
                        rejected.push(pb::ItemResult {
                            index,
                            id,
                            outcome: pb::ItemOutcome::Rejected.into(),
                            violations: convert::violations(v),
                        });
                    }
                }
            }
            index = index.saturating_add(1);
            if pending.len() >= STREAM_FLUSH {
                for o in self.store.record_events(&pending).await? {
                    count(&mut summary, convert::outcome(o));
                }
                pending.clear();
            }
        }
        if !pending.is_empty() {
            for o in self.store.record_events(&pending).await? {
                count(&mut summary, convert::outcome(o));
            }
        }
        count_ingested(&self.metrics, "event", &summary);
        Ok(Response::new(pb::StreamEventsResponse {
            summary: Some(summary),
            rejected,
        }))
    }

    #[tracing::instrument(skip_all, name = "RecordOrders")]
    async fn record_orders(
        &self,
        request: Request<pb::RecordOrdersRequest>,
    ) -> Result<Response<pb::RecordOrdersResponse>, Status> {
        let pb::RecordOrdersRequest { orders } = request.into_inner();
        check_batch("orders", orders.len())?;
        let batch = Batch::parse(
            orders,
            |o| o.order_id.clone(),
            |o| convert::order(o, d::Timestamp::now()),
        );
        let outcomes = self.store.record_orders(&batch.valid).await?;
        let (results, summary) = batch.finish(outcomes);
        count_ingested(&self.metrics, "order", &summary);
        Ok(Response::new(pb::RecordOrdersResponse {
            results,
            summary: Some(summary),
        }))
    }

    #[tracing::instrument(skip_all, name = "RecordReturns")]
    async fn record_returns(
        &self,
        request: Request<pb::RecordReturnsRequest>,
    ) -> Result<Response<pb::RecordReturnsResponse>, Status> {
        let pb::RecordReturnsRequest { returns } = request.into_inner();
        check_batch("returns", returns.len())?;
        let batch = Batch::parse(
            returns,
            |r| r.return_id.clone(),
            |r| convert::return_(r, d::Timestamp::now()),
        );
        let outcomes = self.store.record_returns(&batch.valid).await?;
        let (results, summary) = batch.finish(outcomes);
        count_ingested(&self.metrics, "return", &summary);
        Ok(Response::new(pb::RecordReturnsResponse {
            results,
            summary: Some(summary),
        }))
    }

    #[tracing::instrument(skip_all, name = "UpsertTickets")]
    async fn upsert_tickets(
        &self,
        request: Request<pb::UpsertTicketsRequest>,
    ) -> Result<Response<pb::UpsertTicketsResponse>, Status> {
        let pb::UpsertTicketsRequest { tickets } = request.into_inner();
        check_batch("tickets", tickets.len())?;
        let batch = Batch::parse(
            tickets,
            |t| t.ticket_id.clone(),
            |t| convert::ticket(t, d::Timestamp::now()),
        );
        let outcomes = all_ok(self.store.upsert_tickets(&batch.valid).await?);
        let (results, summary) = batch.finish(outcomes);
        count_ingested(&self.metrics, "ticket", &summary);
        Ok(Response::new(pb::UpsertTicketsResponse {
            results,
            summary: Some(summary),
        }))
    }
}

/// `CustomerContextService`: the agent's view and suggestions.
#[derive(Clone, Debug)]
pub struct ContextApi {
    desk: Desk,
}

impl ContextApi {
    /// An adapter over the desk.
    pub fn new(desk: Desk) -> Self {
        Self { desk }
    }
}

/// GetCustomerContext for every face: the request validated, the context
/// read through the desk (shaped for `caller`'s role, on record), in its
/// proto form.
pub async fn get_customer_context(
    desk: &Desk,
    caller: &d::Caller,
    request: pb::GetCustomerContextRequest,
) -> Result<pb::CustomerContext, Status> {
    let query = convert::context_query(request).map_err(|v| invalid_argument(&v))?;
    let context = desk.context(caller, &query).await?;
    Ok(convert::context_response(context))
}

/// SuggestCrossSells for every face (on record when the customer's history
/// was read).
pub async fn suggest_cross_sells(
    desk: &Desk,
    caller: &d::Caller,
    request: pb::SuggestCrossSellsRequest,
) -> Result<pb::SuggestCrossSellsResponse, Status> {
    let query = suggestions::suggest_query(request).map_err(|v| invalid_argument(&v))?;
    let out = desk.suggestions(caller, &query).await?;
    Ok(pb::SuggestCrossSellsResponse {
        customer_id: out
            .customer_id
            .map(|c| c.as_str().to_owned())
            .unwrap_or_default(),
        as_of: Some(convert::ts(out.as_of)),
        suggestions: Some(suggestions::suggestions(out.list)),
    })
}

/// SearchProducts for every face (on record when personalised).
pub async fn search_products(
    desk: &Desk,
    caller: &d::Caller,
    request: pb::SearchProductsRequest,
) -> Result<pb::SearchProductsResponse, Status> {
    let query = search::search_query(request).map_err(|v| invalid_argument(&v))?;
    let out = desk.search(caller, &query).await?;
    Ok(search::search_response(out))
}

/// RecordSuggestionFeedback for every face.
pub async fn record_suggestion_feedback(
    desk: &Desk,
    request: pb::RecordSuggestionFeedbackRequest,
) -> Result<pb::RecordSuggestionFeedbackResponse, Status> {
    let pb::RecordSuggestionFeedbackRequest { feedback } = request;
    check_batch("feedback", feedback.len())?;
    let batch = Batch::parse(
        feedback,
        |f| f.suggestion_id.chars().take(128).collect(),
        suggestions::feedback,
    );
    let outcomes = desk.suggest().record_feedback(&batch.valid).await?;
    let (results, summary) = batch.finish(outcomes);
    Ok(pb::RecordSuggestionFeedbackResponse {
        results,
        summary: Some(summary),
    })
}

#[tonic::async_trait]
impl pb::customer_context_service_server::CustomerContextService for ContextApi {
    #[tracing::instrument(skip_all, name = "GetCustomerContext")]
    async fn get_customer_context(
        &self,
        request: Request<pb::GetCustomerContextRequest>,
    ) -> Result<Response<pb::CustomerContext>, Status> {
        let caller = caller_of(&request)?;
        get_customer_context(&self.desk, &caller, request.into_inner())
            .await
            .map(Response::new)
    }

    type WatchCustomerContextStream = watch::ContextStream;

    #[tracing::instrument(skip_all, name = "WatchCustomerContext")]
    async fn watch_customer_context(
        &self,
        request: Request<pb::WatchCustomerContextRequest>,
    ) -> Result<Response<Self::WatchCustomerContextStream>, Status> {
        let caller = caller_of(&request)?;
        watch::start(self.desk.clone(), caller, request.into_inner())
            .await
            .map(Response::new)
    }

    #[tracing::instrument(skip_all, name = "SuggestCrossSells")]
    async fn suggest_cross_sells(
        &self,
        request: Request<pb::SuggestCrossSellsRequest>,
    ) -> Result<Response<pb::SuggestCrossSellsResponse>, Status> {
        let caller = caller_of(&request)?;
        suggest_cross_sells(&self.desk, &caller, request.into_inner())
            .await
            .map(Response::new)
    }

    #[tracing::instrument(skip_all, name = "SearchProducts")]
    async fn search_products(
        &self,
        request: Request<pb::SearchProductsRequest>,
    ) -> Result<Response<pb::SearchProductsResponse>, Status> {
        let caller = caller_of(&request)?;
        search_products(&self.desk, &caller, request.into_inner())
            .await
            .map(Response::new)
    }

    #[tracing::instrument(skip_all, name = "RecordSuggestionFeedback")]
    async fn record_suggestion_feedback(
        &self,
        request: Request<pb::RecordSuggestionFeedbackRequest>,
    ) -> Result<Response<pb::RecordSuggestionFeedbackResponse>, Status> {
        record_suggestion_feedback(&self.desk, request.into_inner())
            .await
            .map(Response::new)
    }

    #[tracing::instrument(skip_all, name = "GetSuggestionStats")]
    async fn get_suggestion_stats(
        &self,
        request: Request<pb::GetSuggestionStatsRequest>,
    ) -> Result<Response<pb::SuggestionStats>, Status> {
        let pb::GetSuggestionStatsRequest {
            experiment,
            outside_experiments,
        } = request.into_inner();
        let name = experiment.trim();
        if !name.is_empty() && !crate::suggest::experiment::valid_name(name) {
            return Err(invalid_argument(&d::Violations::single(
                "experiment",
                "must be 1 to 64 letters, digits, '-' or '_'",
            )));
        }
        let which = match (name.is_empty(), outside_experiments) {
            (true, false) => crate::suggest::StatsOf::Running,
            (true, true) => crate::suggest::StatsOf::OutsideExperiments,
            (false, false) => crate::suggest::StatsOf::Named(name),
            (false, true) => {
                return Err(invalid_argument(&d::Violations::single(
                    "experiment",
                    "must be empty when outside_experiments is set",
                )));
            }
        };
        let (name, reports) = self.desk.suggest().stats(which).await?;
        Ok(Response::new(suggestions::stats(name, reports)))
    }

    #[tracing::instrument(skip_all, name = "SetExperiment")]
    async fn set_experiment(
        &self,
        request: Request<pb::SetExperimentRequest>,
    ) -> Result<Response<pb::Experiment>, Status> {
        let experiment =
            suggestions::experiment_in(request.into_inner()).map_err(|v| invalid_argument(&v))?;
        let (experiment, updated_at) = self.desk.suggest().set_experiment(&experiment).await?;
        Ok(Response::new(suggestions::experiment_out(
            experiment, updated_at,
        )))
    }
}

/// What the HTTP and MCP faces call: the desk (through this module's
/// per-operation functions, which the gRPC handlers call too) and this
/// server's gauges.
#[derive(Clone)]
pub struct Faces {
    /// The core services, reading customers as the caller may see them.
    pub desk: Desk,
    /// This server's counters.
    pub metrics: std::sync::Arc<crate::metrics::Metrics>,
    /// For the gauges read at scrape time.
    pub store: Store,
    /// For the model's gauges.
    pub live: std::sync::Arc<crate::suggest::LiveModel>,
    /// Whether keys are required (`false` only with `--insecure-no-auth`).
    pub auth: bool,
}
