//! What every face on the wire shares, below all of them: the one mapping
//! of core errors to gRPC statuses, the canonical protobuf JSON of the
//! contract's messages and errors, and how a request is told to be HTTP or
//! gRPC. The gate and the metrics layer use it as much as the adapters.

pub mod protojson;
mod status;

use tonic::Status;

pub use protojson::code_name;

/// Largest request message accepted, in bytes.
pub const MAX_MESSAGE_BYTES: usize = 8 * 1024 * 1024;
pub use status::{invalid_argument, to_status};

/// The route a path names, for metrics labels (None: not an HTTP route).
pub fn route_of(path: &str) -> Option<&'static str> {
    [
        "/",
        "/v1/context",
        "/v1/context:watch",
        "/v1/suggestions",
        "/v1/search",
        "/v1/curated-cross-sells",
        "/v1/feedback",
        "/v1/curations",
        "/v1/curations:create",
        "/v1/curations:update",
        "/v1/curations:archive",
        "/v1/curations:preview",
        "/stylist",
        "/sidebar",
        "/metrics",
        "/mcp",
        "/webhooks/shopify",
        "/webhooks/segment",
        "/webhooks/rudderstack",
        "/webhooks/zendesk",
        "/webhooks/chatwoot",
        "/webhooks/gorgias",
        "/webhooks/freshdesk",
        "/v1/webhooks",
        "/v1/webhooks:replay",
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
        .header(http::header::CACHE_CONTROL, "no-store")
        .header(http::header::X_CONTENT_TYPE_OPTIONS, "nosniff");
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
