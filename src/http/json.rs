//! The JSON endpoint for helpdesk widgets: `GET /v1/context`,
//! `GET /v1/suggestions`, `GET /v1/curated-cross-sells`, `GET /v1/search` (requests from query
//! parameters) and `POST /v1/feedback` (a JSON body), answers in the
//! canonical protobuf JSON of the same messages as the RPCs; the stylists'
//! curations (`GET /v1/curations`, `POST /v1/curations:create`,
//! `POST /v1/curations:update`, `POST /v1/curations:archive`,
//! `GET /v1/curations:preview`); and
//! `GET /v1/context:watch`, `WatchCustomerContext` as Server-Sent Events.

use std::future::Future;

use axum::{
    Extension,
    body::Bytes,
    extract::{RawQuery, State},
    response::{IntoResponse, Response},
};
use serde_json::Value;
use tonic::Status;

use crate::{
    api::{self, Faces},
    domain::{Caller, Violations, clip},
    proto as pb,
    wire::{error_response, protojson},
};

/// The request parsed from the query or body (`input`), passed to `op`
/// (one of `api`'s per-operation functions, over the desk): its answer
/// (proto type `answer`) as JSON, or the status as a JSON error.
async fn serve<Req, Res, Fut>(
    input: Result<Req, Status>,
    answer: &str,
    op: impl FnOnce(Req) -> Fut,
) -> Response
where
    Res: prost::Message,
    Fut: Future<Output = Result<Res, Status>>,
{
    let result = match input {
        Ok(request) => op(request).await,
        Err(status) => Err(status),
    };
    match result {
        Ok(r) => (
            [
                (http::header::CONTENT_TYPE, "application/json"),
                (http::header::CACHE_CONTROL, "no-store"),
                (http::header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            ],
            protojson::to_json(answer, &r).to_string(),
        )
            .into_response(),
        Err(status) => error_response(&status).into_response(),
    }
}

/// `GET /v1/context?email=…` (or any identity; `read_mask`, `*_limit`,
/// `lookback_days` as in `GetCustomerContextRequest`).
pub async fn context(
    State(f): State<Faces>,
    Extension(caller): Extension<Caller>,
    RawQuery(query): RawQuery,
) -> Response {
    let input = protojson::from_query::<pb::GetCustomerContextRequest>(
        "customer_context.v1.GetCustomerContextRequest",
        query.as_deref(),
    );
    let answer = "customer_context.v1.CustomerContext";
    serve(input, answer, |r| {
        api::get_customer_context(&f.desk, &caller, r)
    })
    .await
}

/// `GET /v1/suggestions?email=…&anchor_product_ids=…&limit=…`.
pub async fn suggestions(
    State(f): State<Faces>,
    Extension(caller): Extension<Caller>,
    RawQuery(query): RawQuery,
) -> Response {
    let input = protojson::from_query::<pb::SuggestCrossSellsRequest>(
        "customer_context.v1.SuggestCrossSellsRequest",
        query.as_deref(),
    );
    let answer = "customer_context.v1.SuggestCrossSellsResponse";
    serve(input, answer, |r| {
        api::suggest_cross_sells(&f.desk, &caller, r)
    })
    .await
}

/// `GET /v1/search?query=…&email=…&filter.brand=…&limit=…` (any field of
/// `SearchProductsRequest` by its path).
pub async fn search(
    State(f): State<Faces>,
    Extension(caller): Extension<Caller>,
    RawQuery(query): RawQuery,
) -> Response {
    let input = protojson::from_query::<pb::SearchProductsRequest>(
        "customer_context.v1.SearchProductsRequest",
        query.as_deref(),
    );
    let answer = "customer_context.v1.SearchProductsResponse";
    serve(input, answer, |r| api::search_products(&f.desk, &caller, r)).await
}

/// `GET /v1/curated-cross-sells?email=…&anchor_product_ids=…`.
pub async fn curated(
    State(f): State<Faces>,
    Extension(caller): Extension<Caller>,
    RawQuery(query): RawQuery,
) -> Response {
    let input = protojson::from_query::<pb::GetCuratedCrossSellsRequest>(
        "customer_context.v1.GetCuratedCrossSellsRequest",
        query.as_deref(),
    );
    let answer = "customer_context.v1.GetCuratedCrossSellsResponse";
    serve(input, answer, |r| {
        api::get_curated_cross_sells(&f.desk, &caller, r)
    })
    .await
}

/// The request (proto type `full_name`) in a JSON body.
fn from_body<M: prost::Message + Default>(full_name: &str, body: &[u8]) -> Result<M, Status> {
    serde_json::from_slice::<Value>(body)
        .map_err(|e| {
            crate::wire::invalid_argument(&Violations::single(
                "body",
                format!("is not JSON: {}", clip(&e.to_string(), 200)),
            ))
        })
        .and_then(|json| protojson::from_json::<M>(full_name, json, "body"))
}

/// `POST /v1/feedback` with a `RecordSuggestionFeedbackRequest` as JSON.
pub async fn feedback(State(f): State<Faces>, body: Bytes) -> Response {
    let input = from_body::<pb::RecordSuggestionFeedbackRequest>(
        "customer_context.v1.RecordSuggestionFeedbackRequest",
        &body,
    );
    let answer = "customer_context.v1.RecordSuggestionFeedbackResponse";
    serve(input, answer, |r| {
        api::record_suggestion_feedback(&f.desk, r)
    })
    .await
}

/// `GET /v1/curations?filter=…&page_token=…` (ListCurationsRequest's
/// fields).
pub async fn list_curations(State(f): State<Faces>, RawQuery(query): RawQuery) -> Response {
    let input = protojson::from_query::<pb::ListCurationsRequest>(
        "customer_context.v1.ListCurationsRequest",
        query.as_deref(),
    );
    let answer = "customer_context.v1.ListCurationsResponse";
    serve(input, answer, |r| api::list_curations(&f.desk, r)).await
}

/// `POST /v1/curations:create` with a `CreateCurationRequest` as JSON.
pub async fn create_curation(State(f): State<Faces>, body: Bytes) -> Response {
    let input = from_body("customer_context.v1.CreateCurationRequest", &body);
    let answer = "customer_context.v1.Curation";
    serve(input, answer, |r| api::create_curation(&f.desk, r)).await
}

/// `POST /v1/curations:update` with an `UpdateCurationRequest` as JSON.
pub async fn update_curation(State(f): State<Faces>, body: Bytes) -> Response {
    let input = from_body("customer_context.v1.UpdateCurationRequest", &body);
    let answer = "customer_context.v1.Curation";
    serve(input, answer, |r| api::update_curation(&f.desk, r)).await
}

/// `POST /v1/curations:archive` with an `ArchiveCurationRequest` as JSON.
pub async fn archive_curation(State(f): State<Faces>, body: Bytes) -> Response {
    let input = from_body("customer_context.v1.ArchiveCurationRequest", &body);
    let answer = "customer_context.v1.Curation";
    serve(input, answer, |r| api::archive_curation(&f.desk, r)).await
}

/// `GET /v1/curations:preview?curation_id=…&email=…`.
pub async fn preview_curation(
    State(f): State<Faces>,
    Extension(caller): Extension<Caller>,
    RawQuery(query): RawQuery,
) -> Response {
    let input = protojson::from_query::<pb::PreviewCurationRequest>(
        "customer_context.v1.PreviewCurationRequest",
        query.as_deref(),
    );
    let answer = "customer_context.v1.PreviewCurationResponse";
    serve(input, answer, |r| {
        api::preview_curation(&f.desk, &caller, r)
    })
    .await
}

/// One message of a watch as a Server-Sent Event: `event: context` with
/// the context's JSON, `event: heartbeat`, or `event: error` with the JSON
/// error (the last event of the stream).
fn sse(item: Result<pb::WatchCustomerContextResponse, Status>) -> String {
    use pb::watch_customer_context_response::Update;
    match item {
        Ok(pb::WatchCustomerContextResponse {
            update: Some(Update::Context(c)),
            ..
        }) => {
            let json = protojson::to_json("customer_context.v1.CustomerContext", &c);
            format!("event: context\ndata: {json}\n\n")
        }
        Ok(_) => "event: heartbeat\ndata: {}\n\n".to_owned(),
        Err(status) => format!("event: error\ndata: {}\n\n", protojson::error_json(&status)),
    }
}

/// `GET /v1/context:watch?email=…` (the parameters of `/v1/context`): the
/// context now and whenever it changes, as Server-Sent Events (read with
/// `fetch`, which can send the key; `EventSource` cannot).
pub async fn watch(
    State(f): State<Faces>,
    Extension(caller): Extension<Caller>,
    RawQuery(query): RawQuery,
) -> Response {
    use tokio_stream::StreamExt as _;
    let input = protojson::from_query::<pb::GetCustomerContextRequest>(
        "customer_context.v1.GetCustomerContextRequest",
        query.as_deref(),
    );
    let request = match input {
        Ok(context) => pb::WatchCustomerContextRequest {
            context: Some(context),
            heartbeat_seconds: 0,
        },
        Err(status) => return error_response(&status).into_response(),
    };
    match api::watch_customer_context(f.desk.clone(), caller, request).await {
        Ok(stream) => {
            let events = stream.map(|item| Ok::<_, std::convert::Infallible>(sse(item)));
            (
                [
                    (http::header::CONTENT_TYPE, "text/event-stream"),
                    (http::header::CACHE_CONTROL, "no-store"),
                ],
                axum::body::Body::from_stream(events),
            )
                .into_response()
        }
        Err(status) => error_response(&status).into_response(),
    }
}
