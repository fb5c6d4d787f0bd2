//! Who sent a delivery: each sender's signature over the raw bytes, checked
//! in constant time against every configured secret (two while one is
//! rotated), or a static token where the sender cannot sign. Pure: no I/O.

use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};

use crate::domain::Timestamp;

/// How far a signed timestamp may lie from our clock, either way.
pub const MAX_SIGNATURE_AGE_SECS: i64 = 300;

/// The header carrying a static token (or `?token=` for senders that
/// cannot set headers).
pub const TOKEN_HEADER: &str = "x-webhook-token";

/// What a sender signs and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// Shopify: base64 HMAC-SHA256 of the body in `X-Shopify-Hmac-Sha256`.
    Shopify,
    /// Segment: hex HMAC-SHA1 of the body in `X-Signature`.
    Segment,
    /// Zendesk: base64 HMAC-SHA256 of timestamp + body in
    /// `X-Zendesk-Webhook-Signature`, the timestamp in
    /// `X-Zendesk-Webhook-Signature-Timestamp`.
    Zendesk,
    /// Chatwoot: `sha256=` hex HMAC-SHA256 of `"{timestamp}.{body}"` in
    /// `X-Chatwoot-Signature`, the timestamp (Unix seconds) in
    /// `X-Chatwoot-Timestamp`.
    Chatwoot,
    /// No signature: a static token only (Gorgias, Freshdesk, RudderStack).
    TokenOnly,
}

/// A delivery's credentials, as the face read them from the request.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    /// Request headers, names lower-case (only the ones senders sign with).
    pub headers: Vec<(String, String)>,
    /// A `token` query parameter, for senders that cannot set headers.
    pub query_token: Option<String>,
}

impl Credentials {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.trim())
    }
}

/// The secrets of one source (`Debug` shows only how many).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secrets {
    /// Signing secrets (the current one and, while rotating, the previous).
    pub signing: Vec<String>,
    /// Static tokens accepted in [`TOKEN_HEADER`] or `?token=`.
    pub tokens: Vec<String>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Secrets({} signing, {} tokens)",
            self.signing.len(),
            self.tokens.len()
        )
    }
}

/// Why a delivery was refused as unauthenticated (never echoed in detail
/// to the caller: it says only 401).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No signature and no token.
    Missing,
    /// A signature or token that matches no secret.
    Wrong,
    /// A signed timestamp too far from now (a replay, or a bad clock).
    Stale,
}

impl Refusal {
    /// A word for metrics and logs.
    pub fn as_str(&self) -> &'static str {
        match self {
            Refusal::Missing => "missing",
            Refusal::Wrong => "wrong",
            Refusal::Stale => "stale",
        }
    }
}

/// Accepts a delivery signed (or carrying a token) by one of `secrets`.
/// A token is checked first when present: Segment's batches carry a
/// signature over their first event only, and some Chatwoot installations
/// sign with a secret that does not match the one they show.
pub fn check(
    scheme: Scheme,
    secrets: &Secrets,
    creds: &Credentials,
    body: &[u8],
    now: Timestamp,
) -> Result<(), Refusal> {
    let token = creds.header(TOKEN_HEADER).or(creds.query_token.as_deref());
    if let Some(token) = token.filter(|t| !t.is_empty()) {
        return if secrets
            .tokens
            .iter()
            .any(|t| ct_eq(t.as_bytes(), token.as_bytes()))
        {
            Ok(())
        } else {
            Err(Refusal::Wrong)
        };
    }
    match scheme {
        Scheme::TokenOnly => Err(Refusal::Missing),
        Scheme::Shopify => {
            let sig = creds
                .header("x-shopify-hmac-sha256")
                .ok_or(Refusal::Missing)?;
            let sig = base64::engine::general_purpose::STANDARD
                .decode(sig)
                .map_err(|_| Refusal::Wrong)?;
            any_secret(secrets, |key| verify_sha256(key, &[body], &sig))
        }
        Scheme::Segment => {
            let sig = creds.header("x-signature").ok_or(Refusal::Missing)?;
            let sig = hex(sig).ok_or(Refusal::Wrong)?;
            any_secret(secrets, |key| {
                let Ok(mut mac) = Hmac::<sha1::Sha1>::new_from_slice(key) else {
                    return false;
                };
                mac.update(body);
                mac.verify_slice(&sig).is_ok()
            })
        }
        Scheme::Zendesk => {
            let sig = creds
                .header("x-zendesk-webhook-signature")
                .ok_or(Refusal::Missing)?;
            let at = creds
                .header("x-zendesk-webhook-signature-timestamp")
                .ok_or(Refusal::Missing)?;
            let sig = base64::engine::general_purpose::STANDARD
                .decode(sig)
                .map_err(|_| Refusal::Wrong)?;
            any_secret(secrets, |key| {
                verify_sha256(key, &[at.as_bytes(), body], &sig)
            })?;
            let signed = Timestamp::parse_rfc3339(at).map_err(|_| Refusal::Wrong)?;
            fresh(signed, now)
        }
        Scheme::Chatwoot => {
            let sig = creds
                .header("x-chatwoot-signature")
                .ok_or(Refusal::Missing)?;
            let at = creds
                .header("x-chatwoot-timestamp")
                .ok_or(Refusal::Missing)?;
            let sig = sig.strip_prefix("sha256=").unwrap_or(sig);
            let sig = hex(sig).ok_or(Refusal::Wrong)?;
            any_secret(secrets, |key| {
                verify_sha256(key, &[at.as_bytes(), b".", body], &sig)
            })?;
            let secs: i64 = at.parse().map_err(|_| Refusal::Wrong)?;
            let signed =
                Timestamp::from_millis(secs.saturating_mul(1000)).map_err(|_| Refusal::Wrong)?;
            fresh(signed, now)
        }
    }
}

fn any_secret(secrets: &Secrets, verify: impl Fn(&[u8]) -> bool) -> Result<(), Refusal> {
    // Every secret is tried, so the time taken does not say which matched.
    let matched = secrets
        .signing
        .iter()
        .fold(false, |ok, s| verify(s.as_bytes()) | ok);
    if matched { Ok(()) } else { Err(Refusal::Wrong) }
}

fn fresh(signed: Timestamp, now: Timestamp) -> Result<(), Refusal> {
    let skew = (now.millis() - signed.millis()).abs();
    if skew > MAX_SIGNATURE_AGE_SECS * 1000 {
        Err(Refusal::Stale)
    } else {
        Ok(())
    }
}

fn verify_sha256(key: &[u8], parts: &[&[u8]], sig: &[u8]) -> bool {
    let Ok(mut mac) = Hmac::<sha2::Sha256>::new_from_slice(key) else {
        return false;
    };
    for p in parts {
        mac.update(p);
    }
    mac.verify_slice(sig).is_ok()
}

/// HMAC-SHA256 of `parts` under `key` (what senders compute; tests and the
/// benchmark sign with it).
pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().to_vec()
}

/// HMAC-SHA1 of `body` under `key` (Segment's signature).
pub fn hmac_sha1(key: &[u8], body: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(body);
    mac.finalize().into_bytes().to_vec()
}

/// Lower-case hex of bytes.
pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || s.len() > 256 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Compares without an early exit (the length is not secret).
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        Timestamp::parse_rfc3339("2026-12-04T12:00:00Z").unwrap()
    }

    fn creds(headers: &[(&str, &str)]) -> Credentials {
        Credentials {
            headers: headers
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                .collect(),
            query_token: None,
        }
    }

    fn secrets(signing: &[&str]) -> Secrets {
        Secrets {
            signing: signing.iter().map(|s| (*s).to_owned()).collect(),
            tokens: vec!["static-token".into()],
        }
    }

    #[test]
    fn shopify_signatures_match_the_body_under_either_secret() {
        let body = br#"{"id":1}"#;
        let sig = base64::engine::general_purpose::STANDARD.encode(hmac_sha256(b"old", &[body]));
        let c = creds(&[("x-shopify-hmac-sha256", &sig)]);
        let s = Scheme::Shopify;
        assert_eq!(check(s, &secrets(&["new", "old"]), &c, body, now()), Ok(()));
        assert_eq!(
            check(s, &secrets(&["new"]), &c, body, now()),
            Err(Refusal::Wrong)
        );
        assert_eq!(
            check(s, &secrets(&["old"]), &c, br#"{"id":2}"#, now()),
            Err(Refusal::Wrong)
        );
        assert_eq!(
            check(s, &secrets(&["old"]), &creds(&[]), body, now()),
            Err(Refusal::Missing)
        );
    }

    #[test]
    fn signed_timestamps_must_be_recent() {
        let body = br#"{"a":1}"#;
        let at = "2026-12-04T11:58:00Z";
        let sig = base64::engine::general_purpose::STANDARD
            .encode(hmac_sha256(b"k", &[at.as_bytes(), body]));
        let c = creds(&[
            ("x-zendesk-webhook-signature", &sig),
            ("x-zendesk-webhook-signature-timestamp", at),
        ]);
        assert_eq!(
            check(Scheme::Zendesk, &secrets(&["k"]), &c, body, now()),
            Ok(())
        );
        let later = now().plus_millis(MAX_SIGNATURE_AGE_SECS * 1000);
        assert_eq!(
            check(Scheme::Zendesk, &secrets(&["k"]), &c, body, later),
            Err(Refusal::Stale)
        );

        let ts = (now().millis() / 1000).to_string();
        let sig = to_hex(&hmac_sha256(b"k", &[ts.as_bytes(), b".", body]));
        let c = creds(&[
            ("x-chatwoot-signature", &format!("sha256={sig}")),
            ("x-chatwoot-timestamp", &ts),
        ]);
        assert_eq!(
            check(Scheme::Chatwoot, &secrets(&["k"]), &c, body, now()),
            Ok(())
        );
        assert_eq!(
            check(Scheme::Chatwoot, &secrets(&["other"]), &c, body, now()),
            Err(Refusal::Wrong)
        );
    }

    #[test]
    fn segment_signs_with_sha1_and_tokens_stand_in_for_signatures() {
        let body = br#"{"type":"track"}"#;
        let sig = to_hex(&hmac_sha1(b"k", body));
        let c = creds(&[("x-signature", &sig)]);
        assert_eq!(
            check(Scheme::Segment, &secrets(&["k"]), &c, body, now()),
            Ok(())
        );
        let t = creds(&[(TOKEN_HEADER, "static-token")]);
        assert_eq!(
            check(Scheme::TokenOnly, &secrets(&[]), &t, body, now()),
            Ok(())
        );
        let bad = creds(&[(TOKEN_HEADER, "static-tokex")]);
        assert_eq!(
            check(Scheme::TokenOnly, &secrets(&[]), &bad, body, now()),
            Err(Refusal::Wrong)
        );
        assert_eq!(
            check(Scheme::TokenOnly, &secrets(&[]), &creds(&[]), body, now()),
            Err(Refusal::Missing)
        );
        let query = Credentials {
            headers: Vec::new(),
            query_token: Some("static-token".into()),
        };
        assert_eq!(
            check(Scheme::Chatwoot, &secrets(&["k"]), &query, body, now()),
            Ok(())
        );
    }
}
