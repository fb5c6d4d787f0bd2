//! The tower layer that records every call: outermost, so calls the gate
//! refuses are counted too. A call ends when its answer's body ends (a
//! gRPC code arrives in the trailers) or is dropped (the client went away).

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Instant,
};

use http_body::{Body, Frame};
use tower::{Layer, Service};

use super::Metrics;

/// Records calls into [`Metrics`].
#[derive(Clone)]
pub struct MetricsLayer {
    metrics: Arc<Metrics>,
    method_of: fn(&str) -> Option<&'static str>,
}

impl MetricsLayer {
    /// A layer over `metrics`; `method_of` names an HTTP route (None:
    /// `other`). gRPC methods are named by their path when the gate knows
    /// them.
    pub fn new(metrics: Arc<Metrics>, method_of: fn(&str) -> Option<&'static str>) -> Self {
        Self { metrics, method_of }
    }
}

impl<S> Layer<S> for MetricsLayer {
    type Service = Recorded<S>;
    fn layer(&self, inner: S) -> Recorded<S> {
        Recorded {
            inner,
            layer: self.clone(),
        }
    }
}

/// The recording service.
#[derive(Clone)]
pub struct Recorded<S> {
    inner: S,
    layer: MetricsLayer,
}

/// A call being answered.
struct Call {
    metrics: Arc<Metrics>,
    protocol: &'static str,
    method: String,
    started: Instant,
    /// The code once known (headers, or trailers).
    code: Option<String>,
}

impl Call {
    fn end(self, code: String) {
        self.metrics.leave();
        self.metrics
            .call(self.protocol, self.method, code, self.started.elapsed());
    }
}

fn labels(
    path: &str,
    content_type: &str,
    http_route: Option<&'static str>,
) -> (&'static str, String) {
    let protocol = if content_type.starts_with("application/grpc-web") {
        "grpc-web"
    } else if content_type.starts_with("application/grpc") {
        "grpc"
    } else {
        "http"
    };
    let method = if protocol == "http" {
        http_route.unwrap_or("other").to_owned()
    } else if crate::auth::access_for(path) == crate::auth::Access::Unknown {
        "other".to_owned()
    } else {
        path.trim_start_matches('/').to_owned()
    };
    (protocol, method)
}

impl<S, B> Service<http::Request<B>> for Recorded<S>
where
    S: Service<http::Request<B>, Response = http::Response<tonic::body::Body>> + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let path = req.uri().path();
        let content_type = req
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let (protocol, method) = labels(path, content_type, (self.layer.method_of)(path));
        let metrics = self.layer.metrics.clone();
        metrics.enter();
        let call = Call {
            metrics,
            protocol,
            method,
            started: Instant::now(),
            code: None,
        };
        let future = self.inner.call(req);
        Box::pin(async move {
            let mut call = call;
            match future.await {
                Ok(response) => {
                    let (parts, body) = response.into_parts();
                    call.code = if call.protocol == "http" {
                        Some(parts.status.as_u16().to_string())
                    } else {
                        parts.headers.get("grpc-status").map(grpc_code)
                    };
                    let body = tonic::body::Body::new(Observed {
                        inner: body,
                        call: Some(call),
                    });
                    Ok(http::Response::from_parts(parts, body))
                }
                Err(e) => {
                    call.end("transport_error".to_owned());
                    Err(e)
                }
            }
        })
    }
}

fn grpc_code(v: &http::HeaderValue) -> String {
    let n: i32 = v.to_str().ok().and_then(|s| s.parse().ok()).unwrap_or(2);
    crate::http::code_name(tonic::Code::from_i32(n)).to_owned()
}

/// An answer's body that ends the call when it ends.
struct Observed {
    inner: tonic::body::Body,
    call: Option<Call>,
}

impl Body for Observed {
    type Data = bytes::Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(code) = frame.trailers_ref().and_then(|t| t.get("grpc-status"))
                    && let Some(call) = self.call.as_mut()
                {
                    call.code = Some(grpc_code(code));
                }
            }
            Poll::Ready(Some(Err(_))) => {
                if let Some(call) = self.call.take() {
                    let code = call.code.clone().unwrap_or_else(|| "body_error".into());
                    call.end(code);
                }
            }
            Poll::Ready(None) => self.finish(),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl Observed {
    fn finish(&mut self) {
        if let Some(call) = self.call.take() {
            // A gRPC answer whose code never came: the client went away.
            let code = call.code.clone().unwrap_or_else(|| "CANCELLED".into());
            call.end(code);
        }
    }
}

impl Drop for Observed {
    fn drop(&mut self) {
        self.finish();
    }
}
