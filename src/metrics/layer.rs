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
    ended: bool,
}

impl Call {
    fn end(&mut self, code: String) {
        if std::mem::replace(&mut self.ended, true) {
            return;
        }
        self.metrics.leave();
        let method = std::mem::take(&mut self.method);
        self.metrics
            .call(self.protocol, method, code, self.started.elapsed());
    }
}

impl Drop for Call {
    /// A call dropped before it ended: its client went away (gRPC's
    /// CANCELLED; nginx's 499 "client closed request" for HTTP).
    fn drop(&mut self) {
        let gone = if self.protocol == "http" {
            "499"
        } else {
            "CANCELLED"
        };
        let code = self.code.take().unwrap_or_else(|| gone.to_owned());
        self.end(code);
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
    } else if crate::domain::access_for(path) == crate::domain::Access::Unknown {
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
            ended: false,
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
                } // (Dropped before an answer: `Call`'s drop counts it.)
            }
        })
    }
}

fn grpc_code(v: &http::HeaderValue) -> String {
    let n: i32 = v.to_str().ok().and_then(|s| s.parse().ok()).unwrap_or(2);
    crate::wire::code_name(tonic::Code::from_i32(n)).to_owned()
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
                if let Some(mut call) = self.call.take() {
                    let code = call.code.take().unwrap_or_else(|| "body_error".into());
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
        if let Some(mut call) = self.call.take() {
            // A gRPC answer whose code never came: the client went away.
            let code = call.code.take().unwrap_or_else(|| "CANCELLED".into());
            call.end(code);
        }
    }
}

impl Drop for Observed {
    fn drop(&mut self) {
        self.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_dropped_before_its_answer_counts_as_cancelled_and_leaves() {
        let metrics = Arc::new(Metrics::new());
        for protocol in ["http", "grpc"] {
            metrics.enter();
            let call = Call {
                metrics: metrics.clone(),
                protocol,
                method: "m".into(),
                started: Instant::now(),
                code: None,
                ended: false,
            };
            drop(call);
        }
        let mut text = super::super::Text::default();
        metrics.render(&mut text);
        let text = text.finish();
        for line in [
            r#"cc_calls_total{protocol="http",method="m",code="499"} 1"#,
            r#"cc_calls_total{protocol="grpc",method="m",code="CANCELLED"} 1"#,
            "cc_calls_in_flight 0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
    }
}
