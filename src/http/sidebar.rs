//! `GET /sidebar`: the agents' sidebar page, one self-contained HTML file
//! (styles and script inline, nothing from other hosts) that calls the
//! JSON endpoint with the key the agent gives it.

use axum::response::IntoResponse;

const PAGE: &str = include_str!("sidebar.html");

/// The page. It may be framed by any helpdesk (Chatwoot dashboard apps,
/// Zendesk, Gorgias); it holds no data until it calls the JSON endpoint.
pub async fn page() -> impl IntoResponse {
    (
        [
            (http::header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (http::header::CACHE_CONTROL, "no-cache"),
            (
                http::header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
                 img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'",
            ),
            (http::header::REFERRER_POLICY, "no-referrer"),
        ],
        PAGE,
    )
}
