//! Audittrail: every posting on a wijk's accounts with its running balance,
//! filtered and paged, as a page and as CSV; and each event's own page with
//! its place in the hash chain.

use axum::extract::{Path, Query, State};
use axum::response::Response;
use maud::html;
use serde::Deserialize;

use super::{allow, allow_wijk, parse_date, parse_year, render, PageResult};
use crate::auth::Role;
use crate::http::AppState;
use crate::projections::queries::{self, AuditFilter, AuditPage, Period};
use crate::store::repository::read_log;
use crate::web::components::{layout, money, Section};
use crate::web::format::{euro, instant, iso_date};
use crate::web::session::{query_string, Viewer};

/// Rows per page of the trail on screen.
const PAGE_ROWS: i64 = 50;

#[derive(Debug, Default, Deserialize)]
pub struct AuditQuery {
    wijk: Option<String>,
    jaar: Option<String>,
    fonds: Option<String>,
    initiatief: Option<String>,
    van: Option<String>,
    tot: Option<String>,
    na: Option<String>,
}

fn text(value: &Option<String>) -> Option<String> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty()).map(str::to_string)
}

struct Trail {
    wijk_id: String,
    wijk_name: String,
    filter: AuditFilter,
    after: i64,
    page: AuditPage,
}

/// The trail asked for, or None when no wijk is chosen yet.
async fn trail(state: &AppState, viewer: &Viewer, q: &AuditQuery, rows: i64) -> Result<Option<Trail>, Response> {
    allow(viewer, Section::Audittrail)?;
    let Some(wijk_id) = text(&q.wijk) else { return Ok(None) };
    allow_wijk(viewer, &wijk_id)?;
    let filter = AuditFilter {
        year: parse_year(viewer, q.jaar.as_deref())?,
        fund_id: text(&q.fonds),
        initiative: text(&q.initiatief),
        booked_from: parse_date(viewer, "begindatum", q.van.as_deref())?,
        booked_to: parse_date(viewer, "einddatum", q.tot.as_deref())?,
    };
    let after = match text(&q.na) {
        None => 0,
        Some(t) => t.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
            super::bad_request(viewer, "Deze pagina van de audittrail bestaat niet; begin bij de eerste pagina.")
        })?,
    };
    let db = state.ledger.db();
    let Some(budget) = queries::wijk_budget(db, &wijk_id, Period::default()).await.map_err(super::unavailable)? else {
        return Err(super::not_found_page(Some(viewer), &format!("Er is geen wijk met de code ‘{wijk_id}’.")));
    };
    let mut page = queries::audit_trail(db, &wijk_id, &filter, after, rows).await.map_err(super::unavailable)?;
    if viewer.caller.role == Role::Council {
        // As in the API: council members see what happened, not who recorded it.
        page.rows.iter_mut().for_each(|row| row.actor = None);
    }
    Ok(Some(Trail { wijk_id, wijk_name: budget.name, filter, after, page }))
}

fn filter_query(t: &Trail, after: Option<i64>) -> String {
    let year = t.filter.year.map(|y| y.to_string()).unwrap_or_default();
    let from = t.filter.booked_from.map(|d| d.to_string()).unwrap_or_default();
    let to = t.filter.booked_to.map(|d| d.to_string()).unwrap_or_default();
    let after = after.map(|a| a.to_string()).unwrap_or_default();
    query_string(&[
        ("wijk", &t.wijk_id),
        ("jaar", &year),
        ("fonds", t.filter.fund_id.as_deref().unwrap_or("")),
        ("initiatief", t.filter.initiative.as_deref().unwrap_or("")),
        ("van", &from),
        ("tot", &to),
        ("na", &after),
    ])
}

pub async fn page(State(state): State<AppState>, viewer: Viewer, Query(q): Query<AuditQuery>) -> PageResult {
    let trail = trail(&state, &viewer, &q, PAGE_ROWS).await?;
    let db = state.ledger.db();
    let years = crate::projections::queries::fund_years(db).await.map_err(super::unavailable)?;
    let wijken: Vec<(String, String)> = match viewer.caller.role {
        Role::Wijkregisseur => viewer.caller.wijken.iter().map(|w| (w.clone(), w.clone())).collect(),
        _ => queries::wijk_summaries(db, Period::default())
            .await
            .map_err(super::unavailable)?
            .into_iter()
            .map(|w| (w.wijk_id, w.name))
            .collect(),
    };
    let chosen = trail.as_ref().map(|t| t.wijk_id.as_str());
    let links_to_events = matches!(viewer.caller.role, Role::Finance | Role::Auditor);
    let value = |v: &Option<String>| v.clone().unwrap_or_default();
    let body = html! {
        h1 { "Audittrail" @if let Some(t) = &trail { " " (t.wijk_name) } }
        form method="get" action="/audittrail" class="filters" {
            div class="field" {
                label for="veld-wijk" { "Wijk" }
                select id="veld-wijk" name="wijk" {
                    option value="" selected[chosen.is_none()] { "Kies…" }
                    @for (id, name) in &wijken { option value=(id) selected[chosen == Some(id.as_str())] { (name) } }
                }
            }
            (super::year_select(&years, trail.as_ref().and_then(|t| t.filter.year), Some("Alle jaren")))
            div class="field" { label for="veld-fonds" { "Fonds" } input id="veld-fonds" name="fonds" type="text" value=(value(&q.fonds)); }
            div class="field" { label for="veld-initiatief" { "Initiatief" } input id="veld-initiatief" name="initiatief" type="text" value=(value(&q.initiatief)); }
            div class="field" { label for="veld-van" { "Geboekt vanaf" } input id="veld-van" name="van" type="date" value=(value(&q.van)); }
            div class="field" { label for="veld-tot" { "Geboekt tot en met" } input id="veld-tot" name="tot" type="date" value=(value(&q.tot)); }
            button type="submit" class="button secondary" { "Toon" }
        }
        @if let Some(t) = &trail {
            p { "Beginsaldo van deze pagina: " strong { (euro(t.page.opening_balance.0)) } ". "
                "Het saldo is het beschikbare geld van de wijk na elke boeking"
                @if t.filter.year.is_some() || t.filter.fund_id.is_some() || t.filter.initiative.is_some() || t.filter.booked_from.is_some() || t.filter.booked_to.is_some() {
                    ", geteld over de boekingen die dit filter toont"
                } "." }
            table data-testid="audittrail" {
                caption { "Boekingen van " (t.wijk_name) ", in volgorde van vastlegging" }
                thead { tr {
                    th scope="col" { "Positie" } th scope="col" { "Boekdatum" } th scope="col" { "Vastgelegd" }
                    th scope="col" { "Gebeurtenis" } th scope="col" { "Fonds" } th scope="col" { "Rekening" }
                    th scope="col" { "Tegenrekening" } th scope="col" class="num" { "Bedrag" } th scope="col" class="num" { "Saldo" }
                    th scope="col" { "Door" } th scope="col" { "Omschrijving" } th scope="col" { "Correlatie-id" }
                } }
                tbody {
                    @for r in &t.page.rows {
                        tr {
                            td { @if links_to_events { a href={ "/gebeurtenissen/" (r.position) } { (r.position) } } @else { (r.position) } }
                            td { (iso_date(&r.booked_on)) @if r.backdated { " " span class="tag" { "teruggedateerd" } } }
                            td { (instant(&r.recorded_at)) }
                            td { (super::event_name(&r.event_type)) }
                            td { (r.fund_id) }
                            td { (super::account_name(r.account.split(':').next().unwrap_or(""))) }
                            td { (super::account_name(r.counter_account.split(':').next().unwrap_or(""))) }
                            (money(r.amount.0)) (money(r.balance.0))
                            td { @match &r.actor { Some(actor) => { (actor) " (" (r.role) ")" }, None => { "(" (r.role) ")" } } }
                            td { (r.initiative.as_deref().or(r.reason.as_deref()).unwrap_or("")) @if let Some(reference) = &r.reference { " – " (reference) } }
                            td class="mono" { (r.correlation_id.as_deref().unwrap_or("")) }
                        }
                    }
                }
            }
            nav class="pager" aria-label="Pagina's" {
                @if t.after > 0 { a href={ "/audittrail?" (filter_query(t, None)) } { "Eerste pagina" } " " }
                @if let Some(next) = t.page.next_after { a href={ "/audittrail?" (filter_query(t, Some(next))) } { "Volgende pagina" } }
            }
            p class="actions" {
                a class="button secondary" href={ "/audittrail/csv?" (filter_query(t, (t.after > 0).then_some(t.after))) } download { "Download deze pagina als CSV" }
                " "
                a class="button secondary" href={ "/audittrail/xlsx?" (query_string(&[("wijk", &t.wijk_id), ("jaar", &t.filter.year.map(|y| y.to_string()).unwrap_or_default())])) } download {
                    "Download de hele audittrail" @if let Some(y) = t.filter.year { " van " (y) } " als Excel"
                }
            }
        } @else {
            p { "Kies een wijk om haar boekingen te zien." }
        }
    };
    Ok(render(layout("Audittrail", Some(&viewer), Section::Audittrail, body)))
}

/// The trail as the API's CSV, up to the API's largest page.
pub async fn csv(State(state): State<AppState>, viewer: Viewer, Query(q): Query<AuditQuery>) -> PageResult {
    // The page's rows, as the link says; the whole trail is the Excel download.
    let Some(t) = trail(&state, &viewer, &q, PAGE_ROWS).await? else {
        return Err(super::bad_request(&viewer, "Kies eerst een wijk."));
    };
    let mut response = super::wijk::csv_download(
        &format!("audittrail-{}.csv", t.wijk_id),
        crate::http::reads::AUDIT_CSV_HEADER,
        crate::http::reads::audit_csv_rows(&t.page),
    );
    if let Some(next) = t.page.next_after {
        response.headers_mut().insert("x-next-after", next.into());
    }
    Ok(response)
}

/// The wijk's whole trail (of the chosen year) as an XLSX workbook, as
/// `wijkbudget export --what audit-trail` makes it.
pub async fn xlsx(State(state): State<AppState>, viewer: Viewer, Query(q): Query<AuditQuery>) -> PageResult {
    allow(&viewer, Section::Audittrail)?;
    let Some(wijk_id) = text(&q.wijk) else { return Err(super::bad_request(&viewer, "Kies eerst een wijk.")) };
    allow_wijk(&viewer, &wijk_id)?;
    let year = parse_year(&viewer, q.jaar.as_deref())?;
    if !queries::wijk_exists(state.ledger.db(), &wijk_id).await.map_err(super::unavailable)? {
        return Err(super::not_found_page(Some(&viewer), &format!("Er is geen wijk met de code ‘{wijk_id}’.")));
    }
    let hide_actors = viewer.caller.role == Role::Council;
    let file = crate::spreadsheet::render(
        state.ledger.db(),
        crate::spreadsheet::What::AuditTrail,
        crate::spreadsheet::ExportFormat::Xlsx,
        year,
        Some(&wijk_id),
        hide_actors,
    )
    .await
    .map_err(super::unavailable)?;
    Ok(super::wijk::download(&file.file_name, file.media_type, file.bytes))
}

/// One event: what it says, and its links in the hash chain.
pub async fn event(State(state): State<AppState>, viewer: Viewer, Path(position): Path<String>) -> PageResult {
    if !matches!(viewer.caller.role, Role::Finance | Role::Auditor) {
        return Err(super::forbidden(&viewer, "Alleen Financiën en auditors zien de gebeurtenissen zelf."));
    }
    let missing = || super::not_found_page(Some(&viewer), &format!("Er is geen gebeurtenis op positie ‘{position}’."));
    let Some(position) = position.parse::<i64>().ok().filter(|p| *p >= 1) else { return Err(missing()) };
    // The event and the one before it, whose hash this one extends.
    let events = read_log(state.ledger.db(), position - 2, 2).await.map_err(super::unavailable)?;
    let Some(event) = events.iter().find(|e| e.position == position) else { return Err(missing()) };
    let previous_hash =
        events.iter().find(|e| e.position == position - 1).map_or_else(|| "0".repeat(64), |e| e.hash.clone());
    let pretty = |v: &serde_json::Value| serde_json::to_string_pretty(v).unwrap_or_default();
    let body = html! {
        h1 { "Gebeurtenis " (position) }
        dl class="facts" data-testid="gebeurtenis" {
            dt { "Positie" } dd { (event.position) }
            dt { "Soort" } dd { (super::event_name(&event.event_type)) " (" (event.event_type) " " (event.event_version) ")" }
            dt { "Vastgelegd" } dd { (instant(&event.recorded_at.to_rfc3339())) }
            dt { "Aggregaat" } dd { (event.aggregate_type) " " (event.aggregate_id) ", volgnummer " (event.sequence) }
            dt { "Gebeurtenis-id" } dd class="mono" { (event.event_id) }
            dt { "Hash" } dd class="mono" data-testid="hash" { (event.hash) }
            dt { "Vorige hash" } dd class="mono" data-testid="vorige-hash" {
                @if position > 1 { a href={ "/gebeurtenissen/" (position - 1) } { (previous_hash) } } @else { (previous_hash) }
            }
        }
        h2 { "Inhoud" }
        pre class="json" tabindex="0" { (pretty(&event.payload)) }
        h2 { "Metadata" }
        pre class="json" tabindex="0" { (pretty(&event.metadata)) }
        p { "Zo controleert u de keten: " code { "wijkbudget verify --expect-head " (event.position) ":" (event.hash) } }
    };
    Ok(render(layout(&format!("Gebeurtenis {position}"), Some(&viewer), Section::Audittrail, body)))
}
