//! MCP (Model Context Protocol) at `/mcp`, Streamable HTTP, for AI support
//! agents: the tools call the contract's operations over the core's desk
//! as the caller the gate attached (the key is the `Authorization: Bearer`
//! header), so roles, consent, masking, validation and the access log are
//! those of the RPCs.
//! Stateless: any replica answers any call.

mod tools;

use std::sync::Arc;

use rmcp::{
    ErrorData, RoleServer, ServerHandler,
    model::{
        CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
        ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig,
    },
    service::RequestContext,
    transport::streamable_http_server::{
        StreamableHttpServerConfig, StreamableHttpService, session::local::LocalSessionManager,
    },
};
use tonic::Status;

use crate::{
    api::Faces,
    domain::{Access, Caller, access_for},
    wire::protojson,
};

/// What an agent is told when it connects.
const INSTRUCTIONS: &str = "Customer context for a retailer's support desk. Call \
get_customer_context first with whatever identifies the customer in the conversation \
(email, phone, customer id, loyalty id or the site's anonymous id): it returns a brief \
to read before answering, their recent browsing, orders, returns, open tickets and \
suggested items, each with a reason that can be said to the customer. Record what \
happened to a suggestion with record_suggestion_feedback. Contact details may be masked \
for your key's role; never guess them.";

/// The MCP server's handler: one per call (stateless).
#[derive(Clone)]
pub struct Tools {
    faces: Faces,
}

/// The `/mcp` service. Host names are not checked when keys are required
/// (a call without a key is refused whatever its host); without
/// authentication (loopback only) only loopback host names are accepted.
pub fn service(faces: Faces) -> StreamableHttpService<Tools, LocalSessionManager> {
    let mut config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_sse_keep_alive(None)
        .with_max_request_body_bytes(MAX_BODY);
    if faces.auth {
        config = config.disable_allowed_hosts();
    }
    StreamableHttpService::new(
        move || {
            Ok(Tools {
                faces: faces.clone(),
            })
        },
        Arc::new(LocalSessionManager::default()),
        config,
    )
}

/// Largest MCP request body accepted.
const MAX_BODY: usize = 256 * 1024;

/// `/mcp`: the MCP service behind a check that a POSTed body is JSON, so a
/// malformed one gets JSON-RPC's parse error (-32700) rather than an HTTP
/// error a client cannot read as JSON-RPC.
pub fn router(faces: Faces) -> axum::Router {
    axum::Router::new()
        .route("/mcp", axum::routing::any(parse_first))
        .with_state(service(faces))
}

async fn parse_first(
    axum::extract::State(mcp): axum::extract::State<
        StreamableHttpService<Tools, LocalSessionManager>,
    >,
    request: http::Request<axum::body::Body>,
) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    use tower::ServiceExt as _;
    let request = if request.method() == http::Method::POST {
        let (parts, body) = request.into_parts();
        let Ok(bytes) = axum::body::to_bytes(body, MAX_BODY).await else {
            return rpc_error(-32600, "the request is larger than 256 KiB").into_response();
        };
        if serde_json::from_slice::<serde::de::IgnoredAny>(&bytes).is_err() {
            return rpc_error(-32700, "Parse error: the body is not JSON").into_response();
        }
        http::Request::from_parts(parts, axum::body::Body::from(bytes))
    } else {
        request
    };
    match mcp.oneshot(request).await {
        Ok(response) => response.into_response(),
        Err(never) => match never {},
    }
}

/// A JSON-RPC error answer without an id (HTTP 400).
fn rpc_error(code: i32, message: &str) -> impl axum::response::IntoResponse {
    let body = serde_json::json!({
        "jsonrpc": "2.0",
        "id": null,
        "error": {"code": code, "message": message},
    });
    (
        http::StatusCode::BAD_REQUEST,
        [
            (http::header::CONTENT_TYPE, "application/json"),
            (http::header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body.to_string(),
    )
}

/// The caller the gate attached to the HTTP request.
fn caller_of(context: &RequestContext<RoleServer>) -> Result<Caller, ErrorData> {
    context
        .extensions
        .get::<http::request::Parts>()
        .and_then(|p| p.extensions.get::<Caller>())
        .cloned()
        .ok_or_else(|| {
            tracing::error!("an MCP call reached a tool without passing the gate");
            ErrorData::internal_error("internal error", None)
        })
}

/// Whether the caller's role may call the RPC a tool is made of.
fn allowed(caller: &Caller, rpc: &str) -> bool {
    match access_for(rpc) {
        Access::Needs(p) => caller.role.allows(p),
        Access::Open => true,
        Access::Authenticated | Access::Unknown => false,
    }
}

/// A failed call as a tool error the model can read and act on: the gRPC
/// code name, the message and every field violation.
fn tool_error(status: &Status) -> CallToolResult {
    let json = protojson::error_json(status);
    let mut text = format!(
        "{}: {}",
        protojson::code_name(status.code()),
        status.message()
    );
    if let Some(violations) = json["error"]["details"][0]["fieldViolations"].as_array() {
        for v in violations {
            text.push_str(&format!(
                "\n- {}: {}",
                v["field"].as_str().unwrap_or_default(),
                v["description"].as_str().unwrap_or_default()
            ));
        }
    }
    let mut result = CallToolResult::error(vec![ContentBlock::text(text)]);
    result.structured_content = Some(json);
    result
}

impl ServerHandler for Tools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new(
                "customer-context",
                env!("CARGO_PKG_VERSION"),
            ))
            .with_instructions(INSTRUCTIONS)
    }

    /// The tools the caller's role may use.
    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let caller = caller_of(&context)?;
        let tools = tools::ALL
            .iter()
            .filter(|t| allowed(&caller, t.rpc))
            .map(tools::Spec::describe)
            .collect();
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let caller = caller_of(&context)?;
        let Some(spec) = tools::ALL.iter().find(|t| t.name == request.name) else {
            return Err(ErrorData::invalid_params(
                format!("no tool named {:?}", crate::domain::clip(&request.name, 64)),
                None,
            ));
        };
        if !allowed(&caller, spec.rpc) {
            tracing::info!(role = %caller.role, tool = spec.name, "MCP tool refused");
            let status = Status::permission_denied(format!(
                "the {} role may not call {}",
                caller.role, spec.name
            ));
            return Ok(tool_error(&status).into());
        }
        let arguments = request.arguments.unwrap_or_default();
        let result = match tools::call(&self.faces, caller, spec, arguments).await {
            Ok(result) => result,
            Err(status) => tool_error(&status),
        };
        Ok(result.into())
    }
}
