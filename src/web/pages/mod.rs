//! One module per page (or group of pages), and what they share: the start
//! page, the error pages, and the Dutch names of the ledger's words.

pub mod audit;
pub mod booking;
pub mod booking_rules;
pub mod close;
pub mod funds;
pub mod import;
pub mod integrity;
pub mod signin;
pub mod wijk;

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use maud::{html, Markup};

use super::components::{layout, Section};
use super::session::Viewer;
use crate::auth::Role;

/// A page handler's answer: the page, or an error page to show instead.
pub type PageResult = Result<Response, Response>;

pub fn render(markup: Markup) -> Response {
    Html(markup.into_string()).into_response()
}

/// The start page is each role's everyday page.
pub async fn home(viewer: Viewer) -> Response {
    Redirect::to(&start_page(viewer.caller.role, &viewer.caller.wijken)).into_response()
}

/// Each role's everyday page: a wijkregisseur's own wijk, council's funds,
/// finance's bookings and the auditor's audit trail.
pub fn start_page(role: Role, wijken: &[String]) -> String {
    match role {
        Role::Wijkregisseur => match wijken {
            [only] => format!("/wijken/{only}"),
            _ => "/wijken".to_string(),
        },
        Role::Council => "/fondsen".to_string(),
        Role::Finance => "/boeken".to_string(),
        Role::Auditor => "/audittrail".to_string(),
    }
}

/// Refuses a page to a role that may not see it, exactly as the API would.
pub fn allow(viewer: &Viewer, section: Section) -> Result<(), Response> {
    if section.roles().contains(&viewer.caller.role) {
        Ok(())
    } else {
        Err(forbidden(viewer, "Deze pagina is niet beschikbaar voor uw rol."))
    }
}

/// Refuses a wijk a wijkregisseur does not manage.
pub fn allow_wijk(viewer: &Viewer, wijk_id: &str) -> Result<(), Response> {
    if viewer.caller.may_read_wijk(wijk_id) {
        Ok(())
    } else {
        Err(forbidden(viewer, "U kunt alleen de wijken zien waarvoor u wijkregisseur bent."))
    }
}

pub fn forbidden(viewer: &Viewer, why: &str) -> Response {
    let body = html! {
        h1 { "Geen toegang" }
        p { (why) }
        p { "Denkt u dat dit niet klopt? Vraag de afdeling Financiën om een token met de juiste rol." }
        p { a href="/" { "Naar uw startpagina" } }
    };
    (StatusCode::FORBIDDEN, render(layout("Geen toegang", Some(viewer), Section::None, body))).into_response()
}

pub fn not_found_page(viewer: Option<&Viewer>, what: &str) -> Response {
    let body = html! {
        h1 { "Niet gevonden" }
        p { (what) }
        p { a href="/" { "Naar de startpagina" } }
    };
    (StatusCode::NOT_FOUND, render(layout("Niet gevonden", viewer, Section::None, body))).into_response()
}

/// A page whose input cannot be read, such as a date that is no date.
pub fn bad_request(viewer: &Viewer, what: &str) -> Response {
    let body = html! {
        h1 { "Dit verzoek klopt niet" }
        p { (what) }
        p { a href="/" { "Naar uw startpagina" } }
    };
    (StatusCode::BAD_REQUEST, render(layout("Verzoek klopt niet", Some(viewer), Section::None, body))).into_response()
}

/// The store failed. The cause is logged, never shown.
pub fn unavailable(err: impl std::fmt::Display) -> Response {
    tracing::error!(cause = %err, "a page could not be answered");
    let body = html! {
        h1 { "Even niet beschikbaar" }
        p { "Het grootboek antwoordt nu niet. Probeer het over een minuut opnieuw; blijft het zo, meld het dan bij de beheerder." }
        p { "Een boekingsformulier kunt u gerust opnieuw versturen: het wordt hooguit één keer geboekt." }
    };
    let mut response = (StatusCode::SERVICE_UNAVAILABLE, render(layout("Niet beschikbaar", None, Section::None, body)))
        .into_response();
    response.headers_mut().insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from_static("30"));
    response
}

/// An event's type as the people who use the ledger call it.
pub fn event_name(event_type: &str) -> &str {
    match event_type {
        "FundEstablished" => "Fonds ingesteld",
        "FundCarriedOver" => "Overheveling",
        "BudgetAllocated" => "Toekenning aan wijk",
        "ExpenseRecorded" => "Uitgave",
        "ExpenseReversed" => "Uitgave teruggedraaid",
        "ExpenseReversedAfterClose" => "Correctie na afsluiting",
        "CommitmentMade" => "Verplichting aangegaan",
        "CommitmentPaid" => "Betaling op verplichting",
        "CommitmentSettled" => "Vaststelling",
        "RepaymentReceived" => "Terugbetaling",
        "CommitmentWithdrawn" => "Intrekking of annulering",
        "BudgetTransferred" => "Overboeking tussen wijken",
        "FundClosed" => "Jaarafsluiting",
        "WijkRegistered" => "Wijk geregistreerd",
        other => other,
    }
}

/// An account kind as the people who use the ledger call it.
pub fn account_name(kind: &str) -> &str {
    match kind {
        "wijk_budget" => "beschikbaar",
        "committed" => "verplicht",
        "spent" => "uitgegeven",
        "receivable" => "terug te vorderen",
        "lapsed" => "vervallen",
        "carried_over" => "overgeheveld",
        "fund" => "fonds",
        "appropriation" => "begroting",
        "carried_in" => "overgeheveld uit vorig jaar",
        other => other,
    }
}

/// A fund kind in Dutch.
pub fn fund_kind_name(kind: &str) -> &str {
    match kind {
        "begroting" => "Begroting",
        "amendement" => "Amendement",
        "begrotingswijziging" => "Begrotingswijziging",
        other => other,
    }
}

/// A year from a query parameter, or the error page that says what is wrong.
pub fn parse_year(viewer: &Viewer, text: Option<&str>) -> Result<Option<i64>, Response> {
    match text.map(str::trim).filter(|t| !t.is_empty()) {
        None => Ok(None),
        Some(t) => t
            .parse::<i64>()
            .ok()
            .filter(|y| (2000..=2100).contains(y))
            .map(Some)
            .ok_or_else(|| bad_request(viewer, &format!("‘{t}’ is geen jaar; kies een jaar tussen 2000 en 2100."))),
    }
}

/// A date from a query parameter (`2022-09-15`), or the error page.
pub fn parse_date(viewer: &Viewer, label: &str, text: Option<&str>) -> Result<Option<chrono::NaiveDate>, Response> {
    match text.map(str::trim).filter(|t| !t.is_empty()) {
        None => Ok(None),
        Some(t) => chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d").map(Some).map_err(|_| {
            bad_request(viewer, &format!("‘{t}’ is geen geldige {label}; geef een datum als 2022-09-15."))
        }),
    }
}

/// A `<select>` of years with the chosen one selected.
pub fn year_select(years: &[i64], chosen: Option<i64>, any_label: Option<&str>) -> Markup {
    html! {
        div class="field" {
            label for="veld-jaar" { "Jaar" }
            select id="veld-jaar" name="jaar" {
                @if let Some(label) = any_label {
                    option value="" selected[chosen.is_none()] { (label) }
                }
                @for y in years {
                    option value=(y) selected[chosen == Some(*y)] { (y) }
                }
            }
        }
    }
}
