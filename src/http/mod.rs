//! The HTTP API under `/api/v1`: routing, limits, request ids and the
//! OpenAPI document, which is generated from the same route table.

pub mod error;
pub mod extract;
pub mod imports;
pub mod lifecycle;
pub mod reads;
pub mod schema;
pub mod writes;

use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::ledger::Ledger;
use error::ApiError;

/// The largest request body accepted.
pub const BODY_LIMIT: usize = 64 * 1024;
/// The longest a request may take before it is answered with 408.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
pub const REQUEST_ID: &str = "x-request-id";

#[derive(Clone)]
pub struct AppState {
    pub ledger: Ledger,
    /// The outcome of the most recent `verify` run by this process.
    pub last_verification: crate::verify::LastVerificationCell,
    /// The web app's sessions and its running verification.
    pub web: crate::web::SharedWebState,
    /// Imports started over the API or the web app, one at a time.
    pub imports: std::sync::Arc<crate::import::job::Imports>,
}

impl AppState {
    pub fn new(ledger: Ledger) -> Self {
        Self { ledger, last_verification: Default::default(), web: Default::default(), imports: Default::default() }
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "wijkbudget", description = "Event-sourced ledger of wijkbudgetten: funds, allocations, expenses and their audit trail."),
    modifiers(&BearerAuth),
    components(schemas(error::Problem))
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// Every route with its documentation, in one table.
fn api_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(writes::register_wijk, reads::list_wijken))
        .routes(routes!(reads::wijk_budget))
        .routes(routes!(reads::audit_trail))
        .routes(routes!(writes::establish_fund, reads::list_funds))
        .routes(routes!(reads::fund_detail))
        .routes(routes!(writes::allocate))
        .routes(routes!(writes::record_expense))
        .routes(routes!(writes::reverse_expense))
        .routes(routes!(reads::events))
        .routes(routes!(reads::integrity))
        .routes(routes!(lifecycle::make_commitment))
        .routes(routes!(lifecycle::commitment))
        .routes(routes!(lifecycle::pay_commitment))
        .routes(routes!(lifecycle::settle_commitment))
        .routes(routes!(lifecycle::repay_commitment))
        .routes(routes!(lifecycle::withdraw_commitment))
        .routes(routes!(lifecycle::transfer))
        .routes(routes!(lifecycle::close_year))
        .routes(routes!(lifecycle::theme_report))
        .routes(routes!(lifecycle::stale_commitments))
        .routes(routes!(lifecycle::subsidy_register))
        .routes(routes!(lifecycle::close_statement))
        .routes(routes!(imports::import_status))
        // A file is larger than any other body.
        .merge(
            OpenApiRouter::new()
                .routes(routes!(imports::start_import))
                .layer(DefaultBodyLimit::max(imports::IMPORT_BODY_LIMIT)),
        )
        .routes(routes!(reads::health))
        .routes(routes!(reads::ready))
}

/// The OpenAPI 3.1 document as served: generated from the route table,
/// with paths relative to its `servers` entry (`/api/v1`) and the NLGov API
/// Design Rules applied (see [`schema::conform`]).
pub fn openapi() -> serde_json::Value {
    let (_, api) = OpenApiRouter::with_openapi(ApiDoc::openapi()).merge(api_routes()).split_for_parts();
    schema::conform(serde_json::to_value(api).expect("the document serialises"))
}

/// The whole application as a `Router`, ready to serve or to drive in tests.
pub fn router(state: AppState) -> Router {
    let (router, _) = OpenApiRouter::with_openapi(ApiDoc::openapi()).nest("/api/v1", api_routes()).split_for_parts();
    let document = std::sync::Arc::new(openapi());
    let request_id = HeaderName::from_static(REQUEST_ID);
    router
        .route("/api/v1/openapi.json", axum::routing::get(move || async move { axum::Json(document.as_ref().clone()) }))
        .merge(crate::web::routes())
        .fallback(not_found)
        .with_state(state)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, REQUEST_TIMEOUT))
        // Outside the timeout, so its bare 408 becomes a problem too.
        .layer(axum::middleware::map_response(problem_for_bare_errors))
        .layer(axum::middleware::map_response(with_api_version))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &axum::http::Request<_>| {
            let id = req.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("-");
            tracing::info_span!("request", request_id = %id, method = %req.method(), path = %req.uri().path())
        }))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
}

/// A file to download rather than show, for the API and the web app alike.
pub fn download(file_name: &str, content_type: &str, bytes: Vec<u8>) -> Response {
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, content_type.to_string()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{file_name}\"")),
        ],
        bytes,
    )
        .into_response()
}

/// An unknown path under the API is a problem; any other is the web app's page.
async fn not_found(uri: axum::http::Uri) -> Response {
    if uri.path().starts_with("/api/") {
        ApiError::not_found("no such path; see GET /api/v1/openapi.json for the API").into_response()
    } else {
        crate::web::not_found().await
    }
}

/// The request id to record as a command's correlation id: the client's own
/// `x-request-id` when it is a short, printable token, else a new one.
pub fn correlation_id(headers: &axum::http::HeaderMap) -> String {
    headers
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|id| !id.is_empty() && id.len() <= 100 && id.chars().all(|c| c.is_ascii_graphic()))
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_string)
}

/// Every answer names the API's full version (NLGov rule /core/version-header).
async fn with_api_version(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(HeaderName::from_static(schema::API_VERSION_HEADER), HeaderValue::from_static(schema::API_VERSION));
    response
}

/// axum answers a wrong method (405) or a timeout (408) with an empty body,
/// and its extractors refuse a malformed path or query in plain text; give
/// every error the same problem+json shape, so the document's promise holds.
async fn problem_for_bare_errors(uri: axum::http::Uri, response: Response) -> Response {
    let status = response.status();
    // The web app answers its own errors with pages, not problems.
    if !uri.path().starts_with("/api/") || !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/problem+json"));
    if is_problem {
        return response;
    }
    let allow = response.headers().get(header::ALLOW).cloned();
    let (parts, body) = response.into_parts();
    // The plain-text refusals of axum's extractors are short and name the
    // value at fault; nothing else reaches here with a body.
    let text = axum::body::to_bytes(body, 4096).await.map(|b| String::from_utf8_lossy(&b).into_owned());
    let text = text.unwrap_or_default();
    let error = match parts.status {
        StatusCode::METHOD_NOT_ALLOWED => ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "this path does not accept that method; see the Allow header",
        ),
        StatusCode::REQUEST_TIMEOUT => {
            ApiError::new(StatusCode::REQUEST_TIMEOUT, "timeout", "the request took too long; try again")
        }
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the body is larger than the limit of {BODY_LIMIT} bytes; send less"),
        ),
        other if other.is_client_error() => ApiError::new(
            other,
            "bad_request",
            if text.trim().is_empty() {
                "the request could not be understood; check its path, query and headers".to_string()
            } else {
                format!("{}; check the path and query against GET /api/v1/openapi.json", text.trim())
            },
        ),
        other => ApiError::internal(format!("{other} without a problem body: {text}")),
    };
    let mut problem = error.into_response();
    if let Some(allow) = allow {
        problem.headers_mut().insert(header::ALLOW, allow);
    }
    problem
}
