//! Thin HTTP adapters on the service's one port, behind the same gate
//! (keys, roles, admission, rate limits) as the gRPC calls: a JSON endpoint
//! for helpdesk widgets, the agents' sidebar page, MCP for AI agents and
//! Prometheus metrics. Each calls the gRPC handlers themselves, so
//! validation, consent, masking and the access log are the same code.

mod json;
mod metrics;
pub mod protojson;
mod sidebar;
mod web;

use std::sync::Arc;

use axum::{
    Router,
    routing::{get, post},
};
use tonic::Status;

pub use protojson::code_name;
pub use web::GrpcWebOnlyLayer;

use crate::{
    api::{ContextApi, StylistApi},
    auth::Caller,
    store::Store,
    suggest::LiveModel,
};

/// What the HTTP adapters call.
#[derive(Clone)]
pub struct Adapters {
    /// The context service's gRPC handlers.
    pub context: ContextApi,
    /// The stylist service's gRPC handlers.
    pub stylist: StylistApi,
    /// This server's counters.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// For the gauges read at scrape time.
    pub store: Store,
    /// For the model's gauges.
    pub live: Arc<LiveModel>,
    /// Whether keys are required (`false` only with `--insecure-no-auth`).
    pub auth: bool,
}

/// The HTTP routes (each also named in [`route_of`] and the gate's rules).
pub fn router(adapters: Adapters) -> Router {
    let mcp = crate::mcp::service(adapters.clone());
    Router::new()
        .route("/v1/context", get(json::context))
        .route("/v1/context:watch", get(json::watch))
        .route("/v1/suggestions", get(json::suggestions))
        .route("/v1/curated-cross-sells", get(json::curated))
        .route("/v1/feedback", post(json::feedback))
        .route("/sidebar", get(sidebar::page))
        .route(
            "/",
            get(|| async { axum::response::Redirect::to("/sidebar") }),
        )
        .route("/metrics", get(metrics::scrape))
        .with_state(adapters)
        .route_service("/mcp", mcp)
}

/// The route a path names, for metrics labels (None: not an HTTP route).
pub fn route_of(path: &str) -> Option<&'static str> {
    [
        "/",
        "/v1/context",
        "/v1/context:watch",
        "/v1/suggestions",
        "/v1/curated-cross-sells",
        "/v1/feedback",
        "/sidebar",
        "/metrics",
        "/mcp",
    ]
    .into_iter()
    .find(|r| *r == path)
}

/// Whether a request is for the HTTP adapters rather than gRPC (its errors
/// are then JSON, not gRPC statuses).
pub fn is_http<B>(request: &http::Request<B>) -> bool {
    let grpc = request
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/grpc"));
    !grpc
}

/// A status as an HTTP answer: the JSON error of [`protojson::error_json`]
/// with the code's HTTP status (and `WWW-Authenticate` for 401).
pub fn error_response(status: &Status) -> http::Response<tonic::body::Body> {
    let code = protojson::http_status(status.code());
    let body = protojson::error_json(status).to_string();
    let mut response = http::Response::builder()
        .status(code)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::CACHE_CONTROL, "no-store");
    if code == http::StatusCode::UNAUTHORIZED {
        response = response.header(
            http::header::WWW_AUTHENTICATE,
            r#"Bearer realm="customer-context""#,
        );
    }
    response
        .body(tonic::body::Body::new(axum::body::Body::from(body)))
        .expect("a JSON error is a valid response")
}

/// A gRPC request carrying the caller the gate attached, so the handler
/// sees the same request a gRPC call would.
pub(crate) fn as_grpc<T>(caller: Caller, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.extensions_mut().insert(caller);
    request
}
