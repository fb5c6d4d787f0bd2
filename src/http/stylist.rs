//! `GET /stylist`: the stylists' workspace, one self-contained HTML file
//! like the sidebar (styles and script inline, allowed by their SHA-256;
//! nothing from other hosts), calling the JSON endpoint with the stylist's
//! key: curations listed with their numbers, created and edited with a
//! catalogue search, previewed for a customer, archived.

use std::sync::Arc;

use axum::extract::State;

use super::sidebar::{hash_source, html, inline};

const PAGE: &str = include_str!("stylist.html");

/// The page as served, with its policy.
#[derive(Clone)]
pub struct StylistPage {
    csp: Arc<str>,
}

impl StylistPage {
    /// The page and its policy (framed by nobody but itself).
    pub fn new() -> Self {
        let csp = format!(
            "default-src 'none'; script-src {}; style-src {}; img-src 'self' data:; \
             connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'self'",
            hash_source(inline(PAGE, "<script>", "</script>")),
            hash_source(inline(PAGE, "<style>", "</style>")),
        );
        Self { csp: csp.into() }
    }
}

/// The page. It holds no data until it calls the JSON endpoint.
pub async fn page(State(s): State<StylistPage>) -> axum::response::Response {
    html(PAGE, &s.csp)
}
