//! The gate every call passes before its message is decoded: a database
//! outage check, admission (load shedding by waiting time and deadline),
//! authentication, authorization and per-key rate limiting, in that order.
//! One place, so no RPC can be reached around it.

use std::{
    collections::HashMap,
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
    time::{Duration, Instant},
};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::Status;
use tower::{Layer, Service};

use super::admission::{Admission, Limits, Place, Refusal, RefusalLog, Refused, grpc_timeout};
use crate::{
    coalesce::Keyed,
    domain::{Access, Caller, access_for, keys},
    metrics::{Metrics, Refusal as Counted},
    store::{Store, StoredKey},
};

/// Gate settings.
#[derive(Debug, Clone)]
pub struct GateConfig {
    /// `false` only for local development (`serve --insecure-no-auth`).
    pub auth: bool,
    /// Unary calls running at once on this server.
    pub max_running: usize,
    /// Unary calls waiting for a place at once; more are refused at once.
    pub max_queued: usize,
    /// Longest a call waits for a place (never past its own deadline).
    pub max_queue_wait: std::time::Duration,
    /// Streaming calls (event streams, exports) open at once; they do not
    /// take a place among the running unary calls. More are refused.
    pub max_streams: usize,
    /// Sustained calls per second allowed per key (0 = unlimited).
    pub rate_per_key: f64,
    /// Calls a key may make in a burst above the sustained rate.
    pub burst_per_key: f64,
}

impl Default for GateConfig {
    fn default() -> Self {
        Self {
            auth: true,
            max_running: 16,
            max_queued: 4096,
            max_queue_wait: std::time::Duration::from_millis(250),
            max_streams: 256,
            rate_per_key: 200.0,
            burst_per_key: 400.0,
        }
    }
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

struct State {
    store: Store,
    config: GateConfig,
    admission: Arc<Admission>,
    streams: Arc<Semaphore>,
    refusals: RefusalLog,
    metrics: Arc<Metrics>,
    buckets: Mutex<HashMap<String, Bucket>>,
    /// Key rows as last read: one read answers the calls with that key id
    /// that arrived before it started (a revocation is seen by every call
    /// that arrives after it is committed).
    keys: Keyed<Option<StoredKey>>,
}

/// Longest a unary call's body may take to arrive (without a place).
const BODY_DEADLINE: Duration = Duration::from_secs(10);

/// Key ids whose reads are shared at most (more are dropped and refill).
const SHARED_KEY_READS: usize = 4096;

/// The tower layer.
#[derive(Clone)]
pub struct GateLayer {
    state: Arc<State>,
}

impl GateLayer {
    /// A gate over `store` with `config`.
    pub fn new(store: Store, config: GateConfig, metrics: Arc<Metrics>) -> Self {
        let admission = Admission::new(Limits {
            running: config.max_running,
            queued: config.max_queued,
            max_wait: config.max_queue_wait,
        });
        let streams = Arc::new(Semaphore::new(config.max_streams));
        Self {
            state: Arc::new(State {
                store,
                config,
                admission,
                streams,
                refusals: RefusalLog::default(),
                metrics,
                buckets: Mutex::new(HashMap::new()),
                keys: Keyed::new(SHARED_KEY_READS),
            }),
        }
    }
}

impl<S> Layer<S> for GateLayer {
    type Service = Gate<S>;
    fn layer(&self, inner: S) -> Gate<S> {
        Gate {
            inner,
            state: self.state.clone(),
        }
    }
}

/// The gate service.
#[derive(Clone)]
pub struct Gate<S> {
    inner: S,
    state: Arc<State>,
}

/// What an admitted call holds until it ends.
enum Held {
    /// A place among the open streams.
    Stream(#[allow(dead_code)] OwnedSemaphorePermit),
    /// A place among the running unary calls.
    Call(#[allow(dead_code)] Place),
}

/// An answer's body that holds its stream's place until it ends.
struct Holding {
    body: tonic::body::Body,
    #[allow(dead_code)]
    place: OwnedSemaphorePermit,
}

impl http_body::Body for Holding {
    type Data = bytes::Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// Whether a method streams (and may stay open for long).
fn is_streaming(path: &str) -> bool {
    matches!(
        path.rsplit('/').next(),
        Some("StreamEvents" | "ExportCustomerData" | "WatchCustomerContext" | "context:watch")
    )
}

fn token_of<B>(req: &http::Request<B>) -> Option<String> {
    let h = req.headers();
    if let Some(v) = h.get("authorization").and_then(|v| v.to_str().ok()) {
        let v = v.trim();
        return Some(
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
                .unwrap_or(v)
                .trim()
                .to_owned(),
        );
    }
    h.get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_owned())
}

impl State {
    fn refused(&self, what: Refused) {
        self.refusals.note(what);
        self.metrics.refused(match what {
            Refused::Overloaded => Counted::Overloaded,
            Refused::DeadlinePassed => Counted::DeadlinePassed,
            Refused::Unavailable => Counted::DatabaseUnavailable,
        });
    }

    fn take_token(&self, key_id: &str) -> bool {
        if self.config.rate_per_key <= 0.0 {
            return true;
        }
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let b = buckets.entry(key_id.to_owned()).or_insert(Bucket {
            tokens: self.config.burst_per_key.max(1.0),
            at: now,
        });
        let refill = now.duration_since(b.at).as_secs_f64() * self.config.rate_per_key;
        b.tokens = (b.tokens + refill).min(self.config.burst_per_key.max(1.0));
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    async fn authenticate(&self, token: Option<String>) -> Result<Caller, Status> {
        let Some(token) = token.filter(|t| !t.is_empty()) else {
            return Err(Status::unauthenticated(
                "missing API key: send metadata `authorization: Bearer <key>`",
            ));
        };
        let invalid = || Status::unauthenticated("invalid or revoked API key");
        let Some((key_id, secret)) = keys::parse(&token) else {
            return Err(invalid());
        };
        let store = &self.store;
        let found = self
            .keys
            .get(key_id, || store.find_key(key_id))
            .await
            .map_err(crate::wire::to_status)?;
        let Some(stored) = found else {
            return Err(invalid());
        };
        let hash_key = self
            .store
            .hash_key()
            .await
            .map_err(crate::wire::to_status)?;
        if stored.revoked
            || !keys::same_hash(&keys::hash_secret(&hash_key, secret), &stored.secret_hash)
        {
            return Err(invalid());
        }
        Ok(Caller {
            key_id: key_id.to_owned(),
            key_name: stored.name,
            role: stored.role,
        })
    }

    /// A place to run: among the streams for a streaming method, else in
    /// the admission queue.
    async fn place(&self, path: &str, deadline: Option<Instant>) -> Result<Held, Status> {
        if !self.store.reachable() {
            self.refused(Refused::Unavailable);
            return Err(Status::unavailable(
                "the service's database is unavailable; retry later",
            ));
        }
        let overloaded =
            || Status::resource_exhausted("the server is overloaded; retry with backoff");
        if is_streaming(path) {
            return self
                .streams
                .clone()
                .try_acquire_owned()
                .map(Held::Stream)
                .map_err(|_| {
                    self.refused(Refused::Overloaded);
                    overloaded()
                });
        }
        self.admission
            .admit(deadline)
            .await
            .map(Held::Call)
            .map_err(|r| {
                self.refused(r.into());
                match r {
                    Refusal::Overloaded => overloaded(),
                    Refusal::DeadlinePassed => {
                        Status::deadline_exceeded("the deadline passed before the call could start")
                    }
                }
            })
    }

    /// Reads a unary call's whole body before it runs. A body that has
    /// arrived keeps the call's place; one still arriving gives the place
    /// up while it does (within [`BODY_DEADLINE`]) and queues for a place
    /// again after, so slow senders hold no running place.
    async fn read_body(
        &self,
        path: &str,
        deadline: Option<Instant>,
        body: tonic::body::Body,
        permit: &mut Option<Held>,
    ) -> Result<tonic::body::Body, Status> {
        let limit = crate::wire::MAX_MESSAGE_BYTES + 64 * 1024;
        let mut collect = Box::pin(axum::body::to_bytes(axum::body::Body::new(body), limit));
        let first = std::future::poll_fn(|cx| Poll::Ready(collect.as_mut().poll(cx))).await;
        let read = match first {
            Poll::Ready(read) => read,
            Poll::Pending => {
                *permit = None;
                let read = tokio::time::timeout(BODY_DEADLINE, collect)
                    .await
                    .map_err(|_| {
                        Status::deadline_exceeded(format!(
                            "the request body did not arrive within {} s",
                            BODY_DEADLINE.as_secs()
                        ))
                    })?;
                *permit = Some(self.place(path, deadline).await?);
                read
            }
        };
        // OUT_OF_RANGE, as tonic answers a message over its limit.
        let bytes = read.map_err(|_| {
            Status::out_of_range(format!(
                "the request is larger than {} bytes (or broke off)",
                crate::wire::MAX_MESSAGE_BYTES
            ))
        })?;
        Ok(tonic::body::Body::new(axum::body::Body::from(bytes)))
    }

    /// Decides a call: the caller and its place, or a status.
    async fn admit(
        &self,
        path: &str,
        token: Option<String>,
        deadline: Option<Instant>,
    ) -> Result<(Option<Caller>, Option<Held>), Status> {
        let access = access_for(path);
        if access == Access::Open {
            return Ok((None, None));
        }
        let permit = self.place(path, deadline).await?;
        let caller = if self.config.auth {
            self.authenticate(token).await?
        } else {
            Caller::development()
        };
        if let Access::Needs(permission) = access
            && !caller.role.allows(permission)
        {
            tracing::info!(role = %caller.role, path, "permission denied");
            return Err(Status::permission_denied(format!(
                "the {} role may not call this method",
                caller.role
            )));
        }
        if !self.take_token(&caller.key_id) {
            self.metrics.refused(Counted::RateLimited);
            return Err(Status::resource_exhausted(
                "rate limit exceeded for this API key; retry later",
            ));
        }
        Ok((Some(caller), Some(permit)))
    }
}

impl<S> Service<http::Request<tonic::body::Body>> for Gate<S>
where
    S: Service<http::Request<tonic::body::Body>, Response = http::Response<tonic::body::Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<tonic::body::Body>) -> Self::Future {
        // The ready service handles this call; a fresh clone takes its place.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let state = self.state.clone();
        Box::pin(async move {
            let path = req.uri().path().to_owned();
            let http = crate::wire::is_http(&req);
            let token = token_of(&req);
            let deadline = req
                .headers()
                .get("grpc-timeout")
                .and_then(|v| v.to_str().ok())
                .and_then(grpc_timeout)
                .map(|t| Instant::now() + t);
            match state.admit(&path, token, deadline).await {
                Ok((caller, mut permit)) => {
                    if let Some(caller) = caller {
                        req.extensions_mut().insert(caller);
                    }
                    if matches!(permit, Some(Held::Call(_))) && req.method() != http::Method::GET {
                        let (parts, body) = req.into_parts();
                        match state.read_body(&path, deadline, body, &mut permit).await {
                            Ok(body) => req = http::Request::from_parts(parts, body),
                            Err(status) if http => return Ok(crate::wire::error_response(&status)),
                            Err(status) => return Ok(status.into_http()),
                        }
                    }
                    match permit {
                        // A unary call holds its place while it runs, and
                        // may give it up to wait (`crate::slot`).
                        Some(Held::Call(place)) => {
                            crate::slot::holding(Box::new(place), inner.call(req)).await
                        }
                        // A stream's place is held until its answer ends
                        // (a server stream answers at once, then goes on).
                        Some(Held::Stream(place)) => inner
                            .call(req)
                            .await
                            .map(|r| r.map(|body| tonic::body::Body::new(Holding { body, place }))),
                        None => inner.call(req).await,
                    }
                }
                Err(status) if http => Ok(crate::wire::error_response(&status)),
                Err(status) => Ok(status.into_http()),
            }
        })
    }
}
