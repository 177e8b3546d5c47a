//! The web app: server-rendered pages in Dutch for wijkregisseurs, council
//! members, auditors and finance, on the same port as the API. Every page
//! works without JavaScript; the one script only reloads a page that shows
//! work in progress. A page asks the same query
//! functions the API's handlers ask and books through the same `Ledger`
//! commands, so the two can never tell different stories.

pub mod components;
pub mod format;
mod pages;
pub mod session;

use std::sync::Arc;

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

use crate::http::AppState;

pub use pages::integrity::VerificationRun;
pub use pages::start_page;

/// Where the stylesheet is served; its name changes with its content, so a
/// browser may cache it for good.
pub const STYLESHEET_PATH: &str = concat!("/static/app-", env!("CARGO_PKG_VERSION"), ".css");
const STYLESHEET: &str = include_str!("app.css");
/// The one script: it only makes a working page nicer (see app.js).
pub const SCRIPT_PATH: &str = concat!("/static/app-", env!("CARGO_PKG_VERSION"), ".js");
const SCRIPT: &str = include_str!("app.js");

/// The web app's own state, beside the API's.
#[derive(Default)]
pub struct WebState {
    pub sessions: session::Sessions,
    /// The verification a person started from the Integriteit page, if any.
    pub verification: tokio::sync::RwLock<Option<VerificationRun>>,
}

pub type SharedWebState = Arc<WebState>;

/// Every page and form of the app.
pub fn routes() -> Router<AppState> {
    use pages::{audit, booking, close, funds, import, integrity, signin, wijk};
    Router::new()
        .route("/", get(pages::home))
        .route("/inloggen", get(signin::form).post(signin::submit))
        .route("/uitloggen", post(signin::sign_out))
        .route(STYLESHEET_PATH, get(|| asset("text/css; charset=utf-8", STYLESHEET)))
        .route(SCRIPT_PATH, get(|| asset("text/javascript; charset=utf-8", SCRIPT)))
        .route("/wijken", get(wijk::list))
        .route("/wijken/{wijk_id}", get(wijk::page))
        .route("/wijken/{wijk_id}/csv", get(wijk::csv))
        .route("/fondsen", get(funds::list))
        .route("/fondsen/{fund_id}", get(funds::detail))
        .route("/subsidieregister/csv", get(funds::subsidy_register_csv))
        .route("/subsidieregister/xlsx", get(funds::subsidy_register_xlsx))
        .route("/audittrail", get(audit::page))
        .route("/audittrail/csv", get(audit::csv))
        .route("/audittrail/xlsx", get(audit::xlsx))
        .route("/gebeurtenissen/{position}", get(audit::event))
        .route("/integriteit", get(integrity::page).post(integrity::start))
        .route("/jaarafsluiting", get(close::page))
        .route("/jaarafsluiting/csv", get(close::csv))
        .route("/jaarafsluiting/xlsx", get(close::xlsx))
        .route("/boeken", get(booking::page))
        .route("/boeken/uitgave", get(booking::page).post(booking::expense))
        .route("/boeken/verplichting", get(booking::commitment_form).post(booking::commitment))
        .route("/boeken/betaling", get(booking::payment_form).post(booking::payment))
        .route("/boeken/geboekt", get(booking::done))
        .route(import::PATH, get(import::form).post(import::upload).layer(import::upload_limit()))
        .route("/boeken/importeren/voorbeeld.csv", get(import::example))
        .route("/boeken/importeren/grootboek.xlsx", get(import::ledger_as_bookings))
        .route("/boeken/importeren/{id}", get(import::page))
        .route("/boeken/importeren/{id}/boeken", post(import::book))
        .layer(axum::middleware::map_response(security_headers))
}

/// A page for any path that is neither the API's nor the app's.
pub async fn not_found() -> Response {
    security_headers(pages::not_found_page(None, "Deze pagina bestaat niet.")).await
}

async fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "public, max-age=31536000, immutable")], body)
        .into_response()
}

/// The app's defences, on every page: no inline script or style,
/// no framing, no guessing of content types, and pages that no shared
/// cache keeps.
async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
             form-action 'self'; \
             frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    headers.entry(header::CACHE_CONTROL).or_insert(HeaderValue::from_static("no-store"));
    response
}
