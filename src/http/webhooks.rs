//! `POST /webhooks/{source}`: the receivers for the shop's systems (open at
//! the gate: each sender proves itself with its own signature or token,
//! checked by [`crate::connect`]). The body is read before anything else,
//! within a deadline and a size bound, and holds none of the gate's
//! running places while it arrives. Answers: 200 once the delivery is
//! stored (whatever became of it), 401 bad signature, 400 malformed, 404
//! a receiver not configured, 408 a body too slow, 413 too large, 503
//! when it cannot be stored (the sender retries).
//!
//! `GET /v1/webhooks` (each source's state) and `POST /v1/webhooks:replay`
//! (apply failed and waiting deliveries again) need an ingest or admin key.

use std::{sync::Arc, time::Duration};

use axum::{
    body::Body,
    extract::{Path, RawQuery, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};
use tokio::sync::Semaphore;

use crate::{
    connect::{
        Connectors, Credentials, MAX_BODY_BYTES, Outcome, Refused, Source, TOKEN_HEADER,
        topic_label,
    },
    metrics::Metrics,
};

/// Longest a sender may take to send its body.
const BODY_DEADLINE: Duration = Duration::from_secs(10);
/// Deliveries being stored and applied at once; more get 503 at once.
const MAX_APPLYING: usize = 64;
/// Bytes of bodies being received at once, in KiB (anyone can post to a
/// receiver, and a body is read whole before its signature can be
/// checked): a body reserves its declared length, or the largest allowed
/// when it declares none; beyond the budget, 503 at once.
const BODY_BUDGET_KIB: usize = 256 * 1024;
/// Headers senders sign with (the only ones read).
const SIGNED: &[&str] = &[
    "x-shopify-topic",
    "x-shopify-hmac-sha256",
    "x-shopify-webhook-id",
    "x-shopify-event-id",
    "x-signature",
    "x-zendesk-webhook-signature",
    "x-zendesk-webhook-signature-timestamp",
    "x-chatwoot-signature",
    "x-chatwoot-timestamp",
    "x-chatwoot-delivery",
    TOKEN_HEADER,
];

/// The receivers' state.
#[derive(Clone)]
pub struct Receivers {
    connectors: Connectors,
    metrics: Arc<Metrics>,
    applying: Arc<Semaphore>,
    body_budget: Arc<Semaphore>,
}

impl Receivers {
    /// Receivers over `connectors`, counting into `metrics`.
    pub fn new(connectors: Connectors, metrics: Arc<Metrics>) -> Self {
        Self {
            connectors,
            metrics,
            applying: Arc::new(Semaphore::new(MAX_APPLYING)),
            body_budget: Arc::new(Semaphore::new(BODY_BUDGET_KIB)),
        }
    }
}

fn answer(status: StatusCode, body: Value) -> Response {
    let mut r = (status, body.to_string()).into_response();
    let headers = r.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        "application/json".parse().expect("a header"),
    );
    headers.insert(
        http::header::CACHE_CONTROL,
        "no-store".parse().expect("a header"),
    );
    headers.insert(
        http::header::HeaderName::from_static("x-content-type-options"),
        "nosniff".parse().expect("a header"),
    );
    if status == StatusCode::SERVICE_UNAVAILABLE {
        headers.insert(http::header::RETRY_AFTER, "5".parse().expect("a header"));
    }
    r
}

fn refusal(status: StatusCode, message: &str) -> Response {
    answer(status, json!({ "error": message }))
}

/// The body's declared length, if it declares one.
fn declared_length(headers: &HeaderMap) -> Option<usize> {
    headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
}

/// Reads the body within [`BODY_DEADLINE`] and [`MAX_BODY_BYTES`].
async fn read_body(declared: Option<usize>, body: Body) -> Result<bytes::Bytes, Response> {
    let too_large = || {
        refusal(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("the body is larger than {MAX_BODY_BYTES} bytes"),
        )
    };
    if declared.is_some_and(|n| n > MAX_BODY_BYTES) {
        return Err(too_large());
    }
    match tokio::time::timeout(BODY_DEADLINE, axum::body::to_bytes(body, MAX_BODY_BYTES)).await {
        Err(_) => Err(refusal(
            StatusCode::REQUEST_TIMEOUT,
            "the body did not arrive in time",
        )),
        Ok(Err(_)) => Err(too_large()),
        Ok(Ok(bytes)) => Ok(bytes),
    }
}

/// `POST /webhooks/{source}`.
pub async fn receive(
    State(r): State<Receivers>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = std::time::Instant::now();
    let Some(source) = Source::parse(&name) else {
        return refusal(StatusCode::NOT_FOUND, "no such receiver");
    };
    let count = |topic: &str, outcome: &'static str| {
        let topic = topic_label(source, topic);
        r.metrics
            .delivery(source.as_str(), topic, outcome, started.elapsed());
    };
    let declared = declared_length(&headers);
    let reserved = declared.unwrap_or(MAX_BODY_BYTES).min(MAX_BODY_BYTES + 1);
    let kib = u32::try_from(reserved.div_ceil(1024).max(1)).unwrap_or(u32::MAX);
    let Ok(_budget) = r.body_budget.clone().try_acquire_many_owned(kib) else {
        count("other", "overloaded");
        return refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many deliveries arriving at once; retry later",
        );
    };
    let body = match read_body(declared, body).await {
        Ok(b) => b,
        Err(response) => {
            let outcome = match response.status() {
                StatusCode::REQUEST_TIMEOUT => "too_slow",
                _ => "too_large",
            };
            count("other", outcome);
            return response;
        }
    };
    let creds = Credentials {
        headers: SIGNED
            .iter()
            .filter_map(|name| {
                let v = headers.get(*name)?.to_str().ok()?;
                Some(((*name).to_owned(), crate::domain::clip(v, 512).into_owned()))
            })
            .collect(),
        query_token: query.as_deref().and_then(|q| {
            form_urlencoded::parse(q.as_bytes())
                .find(|(k, _)| k == "token")
                .map(|(_, v)| v.into_owned())
        }),
    };
    let Ok(_place) = r.applying.clone().try_acquire_owned() else {
        count("other", "overloaded");
        return refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many deliveries at once; retry later",
        );
    };
    let topic = creds
        .header("x-shopify-topic")
        .unwrap_or("other")
        .to_owned();
    match r.connectors.receive(source, &creds, &body).await {
        Ok(receipt) => {
            count(&receipt.topic, receipt.outcome.as_str());
            let mut out = json!({
                "status": receipt.outcome.as_str(),
                "delivery": receipt.key,
            });
            if let Outcome::Waiting(why) | Outcome::Failed(why) = &receipt.outcome {
                out["detail"] = why.as_str().into();
            }
            answer(StatusCode::OK, out)
        }
        Err(refused) => {
            count(&topic, refused.as_str());
            match refused {
                Refused::NotConfigured => refusal(
                    StatusCode::NOT_FOUND,
                    &format!("the {} receiver is not configured", source.as_str()),
                ),
                Refused::Unauthorized(why) => {
                    tracing::info!(
                        source = source.as_str(),
                        why = why.as_str(),
                        "webhook refused: signature"
                    );
                    refusal(
                        StatusCode::UNAUTHORIZED,
                        "the signature or token did not verify",
                    )
                }
                Refused::Malformed(why) => refusal(StatusCode::BAD_REQUEST, &why),
                Refused::TooLarge => {
                    refusal(StatusCode::PAYLOAD_TOO_LARGE, "the body is too large")
                }
                Refused::Unavailable(e) => {
                    tracing::warn!(source = source.as_str(), error = ?e, "a webhook delivery could not be stored");
                    refusal(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "the delivery could not be stored; retry later",
                    )
                }
            }
        }
    }
}

/// `GET /v1/webhooks`: each source's configuration and deliveries.
pub async fn status(State(r): State<Receivers>) -> Response {
    let stored = match r.connectors.status().await {
        Ok(s) => s,
        Err(e) => return unavailable(e),
    };
    let configured = r.connectors.config().sources();
    let sources: Vec<Value> = Source::ALL
        .into_iter()
        .map(|source| {
            let s = stored.iter().find(|s| s.source == source.as_str());
            let counts: serde_json::Map<String, Value> = crate::store::DeliveryState::ALL
                .iter()
                .enumerate()
                .map(|(i, state)| {
                    let n = s.map_or(0, |s| s.counts[i]);
                    (state.as_str().to_owned(), n.into())
                })
                .collect();
            json!({
                "source": source.as_str(),
                "configured": configured.contains(&source),
                "deliveries": counts,
                "last_received": s.and_then(|s| s.last_received).map(|t| t.to_rfc3339()),
                "last_problem": s.and_then(|s| s.last_problem.as_ref()).map(|(at, topic, why)| json!({
                    "at": at.to_rfc3339(), "topic": topic, "error": why,
                })),
            })
        })
        .collect();
    answer(StatusCode::OK, json!({ "sources": sources }))
}

/// `POST /v1/webhooks:replay?source=shopify&limit=100`.
pub async fn replay(State(r): State<Receivers>, RawQuery(query): RawQuery) -> Response {
    let (mut source, mut limit) = (None, 100i64);
    for (k, v) in form_urlencoded::parse(query.as_deref().unwrap_or("").as_bytes()) {
        match k.as_ref() {
            "source" => match Source::parse(&v) {
                Some(s) => source = Some(s),
                None => return refusal(StatusCode::BAD_REQUEST, "source: not a source"),
            },
            "limit" => match v.parse::<i64>() {
                Ok(n) if (1..=1000).contains(&n) => limit = n,
                _ => return refusal(StatusCode::BAD_REQUEST, "limit: must be 1 to 1000"),
            },
            _ => {}
        }
    }
    match r.connectors.replay(source, limit).await {
        Ok(done) => {
            let replayed: Vec<Value> = done
                .iter()
                .map(|(key, outcome)| {
                    let mut o = json!({"delivery": key, "status": outcome.as_str()});
                    if let Outcome::Waiting(why) | Outcome::Failed(why) = outcome {
                        o["detail"] = why.as_str().into();
                    }
                    o
                })
                .collect();
            answer(StatusCode::OK, json!({ "replayed": replayed }))
        }
        Err(e) => unavailable(e),
    }
}

fn unavailable(e: crate::domain::Error) -> Response {
    tracing::warn!(error = ?e, "reading webhook deliveries failed");
    refusal(
        StatusCode::SERVICE_UNAVAILABLE,
        "the deliveries could not be read; retry later",
    )
}
