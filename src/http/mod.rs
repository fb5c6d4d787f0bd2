//! Thin HTTP adapters on the service's one port, behind the same gate
//! (keys, roles, admission, rate limits) as the gRPC calls: a JSON endpoint
//! for helpdesk widgets, the agents' sidebar page, the stylists' workspace
//! page and Prometheus metrics
//! (MCP, at `/mcp`, is a face of its own: [`crate::mcp`]), and the webhook
//! receivers of the shop's systems over [`crate::connect`]. The JSON
//! endpoint calls the same per-operation functions as the gRPC handlers
//! (`api::get_customer_context`, …: validation and the proto form) over the
//! core's [`crate::desk::Desk`], where consent, masking and the access log
//! live; errors go out through [`crate::wire`].

mod json;
mod metrics;
mod sidebar;
mod stylist;
mod web;
mod webhooks;

use axum::{
    Router,
    routing::{get, post},
};

pub use sidebar::{Sidebar, valid_origin};
pub use web::GrpcWebOnlyLayer;
pub use webhooks::Receivers;

use crate::api::Faces;

/// The HTTP routes (each also named in [`crate::wire::route_of`] and the gate's rules).
pub fn router(faces: Faces, receivers: Receivers, sidebar: Sidebar) -> Router {
    let webhooks = Router::new()
        .route("/webhooks/{source}", post(webhooks::receive))
        .route("/v1/webhooks", get(webhooks::status))
        .route("/v1/webhooks:replay", post(webhooks::replay))
        .with_state(receivers);
    let page = Router::new()
        .route("/sidebar", get(sidebar::page))
        .with_state(sidebar);
    let stylist = Router::new()
        .route("/stylist", get(stylist::page))
        .with_state(stylist::StylistPage::new());
    Router::new()
        .route("/v1/context", get(json::context))
        .route("/v1/context:watch", get(json::watch))
        .route("/v1/suggestions", get(json::suggestions))
        .route("/v1/search", get(json::search))
        .route("/v1/curated-cross-sells", get(json::curated))
        .route("/v1/feedback", post(json::feedback))
        .route("/v1/curations", get(json::list_curations))
        .route("/v1/curations:create", post(json::create_curation))
        .route("/v1/curations:update", post(json::update_curation))
        .route("/v1/curations:archive", post(json::archive_curation))
        .route("/v1/curations:preview", get(json::preview_curation))
        .route(
            "/",
            get(|| async { axum::response::Redirect::to("/sidebar") }),
        )
        .route("/metrics", get(metrics::scrape))
        .with_state(faces)
        .merge(webhooks)
        .merge(page)
        .merge(stylist)
}
