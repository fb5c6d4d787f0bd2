//! The JSON endpoint for helpdesk widgets: `GET /v1/context`,
//! `GET /v1/suggestions`, `GET /v1/curated-cross-sells` (requests from query
//! parameters) and `POST /v1/feedback` (a JSON body), answers in the
//! canonical protobuf JSON of the same messages as the RPCs.

use axum::{
    Extension,
    body::Bytes,
    extract::{RawQuery, State},
    response::{IntoResponse, Response},
};
use serde_json::Value;
use tonic::Status;

use super::{Adapters, as_grpc, error_response, protojson};
use crate::{
    auth::Caller,
    proto::{
        self as pb, customer_context_service_server::CustomerContextService,
        stylist_service_server::StylistService,
    },
};

/// An answer as JSON, or the status as a JSON error.
fn answer<M: prost::Message>(
    full_name: &str,
    result: Result<tonic::Response<M>, Status>,
) -> Response {
    match result {
        Ok(r) => json_response(protojson::to_json(full_name, r.get_ref())),
        Err(status) => error_response(&status).into_response(),
    }
}

fn json_response(value: Value) -> Response {
    (
        [
            (http::header::CONTENT_TYPE, "application/json"),
            (http::header::CACHE_CONTROL, "no-store"),
        ],
        value.to_string(),
    )
        .into_response()
}

/// `GET /v1/context?email=…` (or any identity; `read_mask`, `*_limit`,
/// `lookback_days` as in `GetCustomerContextRequest`).
pub async fn context(
    State(a): State<Adapters>,
    Extension(caller): Extension<Caller>,
    RawQuery(query): RawQuery,
) -> Response {
    let request: pb::GetCustomerContextRequest = match protojson::from_query(
        "customer_context.v1.GetCustomerContextRequest",
        query.as_deref(),
    ) {
        Ok(r) => r,
        Err(status) => return error_response(&status).into_response(),
    };
    let result = a
        .context
        .get_customer_context(as_grpc(caller, request))
        .await;
    answer("customer_context.v1.CustomerContext", result)
}

/// `GET /v1/suggestions?email=…&anchor_product_ids=…&limit=…`.
pub async fn suggestions(
    State(a): State<Adapters>,
    Extension(caller): Extension<Caller>,
    RawQuery(query): RawQuery,
) -> Response {
    let request: pb::SuggestCrossSellsRequest = match protojson::from_query(
        "customer_context.v1.SuggestCrossSellsRequest",
        query.as_deref(),
    ) {
        Ok(r) => r,
        Err(status) => return error_response(&status).into_response(),
    };
    let result = a
        .context
        .suggest_cross_sells(as_grpc(caller, request))
        .await;
    answer("customer_context.v1.SuggestCrossSellsResponse", result)
}

/// `GET /v1/curated-cross-sells?email=…&anchor_product_ids=…`.
pub async fn curated(
    State(a): State<Adapters>,
    Extension(caller): Extension<Caller>,
    RawQuery(query): RawQuery,
) -> Response {
    let request: pb::GetCuratedCrossSellsRequest = match protojson::from_query(
        "customer_context.v1.GetCuratedCrossSellsRequest",
        query.as_deref(),
    ) {
        Ok(r) => r,
        Err(status) => return error_response(&status).into_response(),
    };
    let result = a
        .stylist
        .get_curated_cross_sells(as_grpc(caller, request))
        .await;
    answer("customer_context.v1.GetCuratedCrossSellsResponse", result)
}

/// `POST /v1/feedback` with a `RecordSuggestionFeedbackRequest` as JSON.
pub async fn feedback(
    State(a): State<Adapters>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Response {
    let parsed = serde_json::from_slice::<Value>(&body)
        .map_err(|e| {
            crate::api::invalid_argument(&crate::domain::Violations::single(
                "body",
                format!("is not JSON: {}", crate::domain::clip(&e.to_string(), 200)),
            ))
        })
        .and_then(|json| {
            protojson::from_json::<pb::RecordSuggestionFeedbackRequest>(
                "customer_context.v1.RecordSuggestionFeedbackRequest",
                json,
                "body",
            )
        });
    let request = match parsed {
        Ok(r) => r,
        Err(status) => return error_response(&status).into_response(),
    };
    let result = a
        .context
        .record_suggestion_feedback(as_grpc(caller, request))
        .await;
    answer(
        "customer_context.v1.RecordSuggestionFeedbackResponse",
        result,
    )
}
