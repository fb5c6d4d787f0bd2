//! `GET /sidebar`: the agents' sidebar page, one self-contained HTML file
//! (styles and script inline, nothing from other hosts) that calls the
//! JSON endpoint with the key the agent gives it.
//!
//! Its Content-Security-Policy allows exactly the page's own script and
//! style (by their SHA-256, no `unsafe-inline`), and only the helpdesks in
//! `--sidebar-frame-origins` may frame it; the page takes a customer
//! switch (`postMessage`) only from those origins and its own.

use std::sync::Arc;

use axum::{extract::State, response::IntoResponse};
use base64::Engine as _;
use sha2::Digest as _;

const PAGE: &str = include_str!("sidebar.html");
/// The page's placeholder for the allowed framing origins.
const ORIGINS_META: &str = r#"<meta name="cc-frame-origins" content="">"#;

/// The page as served, with its headers.
#[derive(Clone)]
pub struct Sidebar {
    page: Arc<str>,
    csp: Arc<str>,
}

/// The text between `open` and `close` in `page`.
pub(super) fn inline<'a>(page: &'a str, open: &str, close: &str) -> &'a str {
    let start = page.find(open).map_or(0, |i| i + open.len());
    let end = page[start..].find(close).map_or(start, |i| start + i);
    &page[start..end]
}

/// A CSP source allowing exactly `text`.
pub(super) fn hash_source(text: &str) -> String {
    let digest = sha2::Sha256::digest(text.as_bytes());
    format!(
        "'sha256-{}'",
        base64::engine::general_purpose::STANDARD.encode(digest)
    )
}

/// Whether `origin` is `https://host[:port]` (or `http://` for local
/// development), a host optionally starting with `*.`.
pub fn valid_origin(origin: &str) -> bool {
    let Some(rest) = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))
    else {
        return false;
    };
    let host = rest.strip_prefix("*.").unwrap_or(rest);
    let (host, port) = host.split_once(':').unwrap_or((host, ""));
    !host.is_empty()
        && host.len() <= 253
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
        && port.chars().all(|c| c.is_ascii_digit())
        && port.len() <= 5
}

impl Sidebar {
    /// The page for these framing origins (already checked with
    /// [`valid_origin`]; others are left out).
    pub fn new(frame_origins: &[String]) -> Self {
        let origins: Vec<&str> = frame_origins
            .iter()
            .map(String::as_str)
            .filter(|o| valid_origin(o))
            .collect();
        let ancestors = std::iter::once("'self'")
            .chain(origins.iter().copied())
            .collect::<Vec<_>>()
            .join(" ");
        let csp = format!(
            "default-src 'none'; script-src {}; style-src {}; img-src 'self' data:; \
             connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors {ancestors}",
            hash_source(inline(PAGE, "<script>", "</script>")),
            hash_source(inline(PAGE, "<style>", "</style>")),
        );
        let meta = format!(
            r#"<meta name="cc-frame-origins" content="{}">"#,
            origins.join(" ")
        );
        Self {
            page: PAGE.replacen(ORIGINS_META, &meta, 1).into(),
            csp: csp.into(),
        }
    }
}

/// The page. It holds no data until it calls the JSON endpoint.
pub async fn page(State(s): State<Sidebar>) -> axum::response::Response {
    html(&s.page, &s.csp)
}

/// A page of the binary's own with its policy and headers.
pub(super) fn html(page: &str, csp: &str) -> axum::response::Response {
    (
        [
            (http::header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (http::header::CACHE_CONTROL, "no-cache"),
            (http::header::CONTENT_SECURITY_POLICY, csp),
            (http::header::REFERRER_POLICY, "no-referrer"),
            (http::header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        page.to_owned(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_allows_the_pages_own_script_only_and_the_listed_framers() {
        let s = Sidebar::new(&[
            "https://app.chatwoot.com".into(),
            "https://*.zendesk.com".into(),
            "javascript:alert(1)".into(),
        ]);
        assert!(!s.csp.contains("unsafe-inline"), "{}", s.csp);
        assert!(
            s.csp
                .contains(&hash_source(inline(PAGE, "<script>", "</script>")))
        );
        assert!(
            s.csp
                .ends_with("frame-ancestors 'self' https://app.chatwoot.com https://*.zendesk.com")
        );
        assert!(s.page.contains(
            r#"<meta name="cc-frame-origins" content="https://app.chatwoot.com https://*.zendesk.com">"#
        ));
        assert!(inline(PAGE, "<script>", "</script>").contains("addEventListener(\"message\""));
        assert!(!valid_origin("https://a.com/path"));
        assert!(valid_origin("http://localhost:3000"));
    }
}
