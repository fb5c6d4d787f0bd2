//! gRPC-Web translation for gRPC-Web calls only: tonic-web answers any
//! other HTTP/1 request with 400, which would shut out the JSON endpoint,
//! the sidebar, MCP and metrics on the same port.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use tower::{Layer, Service, ServiceExt};

/// Wraps a service so gRPC-Web (and HTTP/2) requests go through tonic-web
/// and plain HTTP/1 requests reach the service as they are.
#[derive(Clone, Default)]
pub struct GrpcWebOnlyLayer;

impl<S: Clone> Layer<S> for GrpcWebOnlyLayer {
    type Service = GrpcWebOnly<S>;
    fn layer(&self, inner: S) -> GrpcWebOnly<S> {
        GrpcWebOnly {
            web: tonic_web::GrpcWebLayer::new().layer(inner.clone()),
            plain: inner,
        }
    }
}

/// See [`GrpcWebOnlyLayer`].
#[derive(Clone)]
pub struct GrpcWebOnly<S> {
    web: tonic_web::GrpcWebService<S>,
    plain: S,
}

fn is_grpc_web<B>(req: &http::Request<B>) -> bool {
    req.version() == http::Version::HTTP_2
        || req
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| t.starts_with("application/grpc-web"))
}

type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

impl<S, B> Service<http::Request<B>> for GrpcWebOnly<S>
where
    S: Service<http::Request<tonic::body::Body>, Response = http::Response<tonic::body::Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>> + std::fmt::Display,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Each call readies the clone it uses (`oneshot`).
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        if is_grpc_web(&req) {
            Box::pin(self.web.clone().oneshot(req))
        } else {
            let req = req.map(tonic::body::Body::new);
            Box::pin(self.plain.clone().oneshot(req))
        }
    }
}
