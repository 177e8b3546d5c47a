//! Mijn wijk: a wijk's money per fund as bars, its open commitments, its
//! latest bookings, as it stands today or stood on a chosen day.

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::NaiveDate;
use maud::html;
use serde::Deserialize;

use super::{allow, allow_wijk, parse_date, parse_year, render, PageResult};
use crate::http::AppState;
use crate::projections::overview::{self, Booking, OpenCommitment};
use crate::projections::queries::{self, Period, WijkBudget};
use crate::projections::reports::STALE_AFTER_DAYS;
use crate::web::components::{bar_legend, layout, money, money_bar, Section, Segment};
use crate::web::format::{date, euro, iso_date};
use crate::web::session::Viewer;

/// How many of the latest bookings the page lists.
const LATEST: i64 = 10;

#[derive(Debug, Default, Deserialize)]
pub struct WijkQuery {
    jaar: Option<String>,
    peildatum: Option<String>,
}

/// The wijken a person may pick from, with their money this year.
pub async fn list(State(state): State<AppState>, viewer: Viewer, Query(q): Query<WijkQuery>) -> PageResult {
    allow(&viewer, Section::Wijk)?;
    let db = state.ledger.db();
    let years = crate::projections::queries::fund_years(db).await.map_err(super::unavailable)?;
    let year = parse_year(&viewer, q.jaar.as_deref())?.or(years.first().copied());
    if let [only] = viewer.caller.wijken.as_slice() {
        return Ok(Redirect::to(&format!("/wijken/{only}")).into_response());
    }
    let wijken: Vec<_> = queries::wijk_summaries(db, Period { year, as_of: None })
        .await
        .map_err(super::unavailable)?
        .into_iter()
        .filter(|w| viewer.caller.may_read_wijk(&w.wijk_id))
        .collect();
    let body = html! {
        h1 { "Wijken" }
        form method="get" action="/wijken" class="filters" {
            (super::year_select(&years, year, None))
            button type="submit" class="button secondary" { "Toon" }
        }
        table {
            caption { "Wijkbudget per wijk" @if let Some(y) = year { " in " (y) } }
            thead { tr { th scope="col" { "Wijk" } th scope="col" class="num" { "Toegekend" } th scope="col" class="num" { "Verplicht" } th scope="col" class="num" { "Uitgegeven" } th scope="col" class="num" { "Resterend wijkbudget" } } }
            tbody {
                @for w in &wijken {
                    tr {
                        th scope="row" { a href={ "/wijken/" (w.wijk_id) @if let Some(y) = year { "?jaar=" (y) } } { (w.name) } }
                        (money(w.totals.amount_allocated.0))
                        (money(w.totals.amount_committed.0))
                        (money(w.totals.amount_spent.0))
                        (money(w.totals.amount_remaining.0))
                    }
                }
            }
        }
    };
    Ok(render(layout("Wijken", Some(&viewer), Section::Wijk, body)))
}

/// What the Mijn wijk page shows, read once for the page and its CSV.
struct WijkView {
    budget: WijkBudget,
    commitments: Vec<OpenCommitment>,
    bookings: Vec<Booking>,
    years: Vec<i64>,
    year: Option<i64>,
    as_of: Option<NaiveDate>,
}

async fn view(state: &AppState, viewer: &Viewer, wijk_id: &str, q: &WijkQuery) -> Result<WijkView, Response> {
    allow(viewer, Section::Wijk)?;
    allow_wijk(viewer, wijk_id)?;
    let db = state.ledger.db();
    let years = crate::projections::queries::fund_years(db).await.map_err(super::unavailable)?;
    // No `jaar` at all means this year's page; an empty one is "Alle jaren".
    let year = match q.jaar {
        None => years.first().copied(),
        Some(_) => parse_year(viewer, q.jaar.as_deref())?,
    };
    let as_of = parse_date(viewer, "peildatum", q.peildatum.as_deref())?;
    let Some(budget) = queries::wijk_budget(db, wijk_id, Period { year, as_of }).await.map_err(super::unavailable)?
    else {
        return Err(super::not_found_page(Some(viewer), &format!("Er is geen wijk met de code ‘{wijk_id}’.")));
    };
    let commitments = overview::open_commitments(db, wijk_id, year, as_of).await.map_err(super::unavailable)?;
    let bookings = overview::latest_bookings(db, wijk_id, year, as_of, LATEST).await.map_err(super::unavailable)?;
    Ok(WijkView { budget, commitments, bookings, years, year, as_of })
}

pub async fn page(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(wijk_id): Path<String>,
    Query(q): Query<WijkQuery>,
) -> PageResult {
    let v = view(&state, &viewer, &wijk_id, &q).await?;
    let judged_on = v.as_of.unwrap_or_else(|| chrono::Utc::now().date_naive());
    let legend = [
        ("seg-spent", "Uitgegeven"),
        ("seg-committed", "Verplicht"),
        ("seg-available", "Beschikbaar"),
        ("seg-other", "Vervallen, overgeheveld of terug te vorderen"),
    ];
    let query = |extra: &str| {
        let mut parts = Vec::new();
        if let Some(y) = v.year {
            parts.push(format!("jaar={y}"));
        }
        if let Some(d) = v.as_of {
            parts.push(format!("peildatum={d}"));
        }
        if !extra.is_empty() {
            parts.push(extra.to_string());
        }
        if parts.is_empty() {
            String::new()
        } else {
            format!("?{}", parts.join("&"))
        }
    };
    let t = &v.budget.totals;
    let body = html! {
        h1 { (v.budget.name) }
        p class="lead" {
            "Stand " @if let Some(d) = v.as_of { "op " (date(d)) } @else { "van vandaag" }
            @if let Some(y) = v.year { ", budgetjaar " (y) }
        }
        form method="get" action={ "/wijken/" (v.budget.wijk_id) } class="filters" {
            (super::year_select(&v.years, v.year, Some("Alle jaren")))
            div class="field" {
                label for="veld-peildatum" { "Stand op (peildatum)" }
                p class="hint" id="veld-peildatum-hint" { "Leeg laten voor vandaag" }
                input id="veld-peildatum" name="peildatum" type="date" aria-describedby="veld-peildatum-hint"
                    value=[v.as_of.map(|d| d.to_string())];
            }
            button type="submit" class="button secondary" { "Toon" }
        }
        div class="figures" {
            div class="figure figure-main" { span class="figure-label" { "Resterend wijkbudget" } span class="figure-value" data-testid="resterend" { (euro(t.amount_remaining.0)) } }
            div class="figure" { span class="figure-label" { "Toegekend" } span class="figure-value" { (euro(t.amount_allocated.0)) } }
            div class="figure" { span class="figure-label" { "Verplicht" } span class="figure-value" { (euro(t.amount_committed.0)) } }
            div class="figure" { span class="figure-label" { "Uitgegeven" } span class="figure-value" { (euro(t.amount_spent.0)) } }
        }
        h2 { "Per fonds" }
        @if v.budget.funds.is_empty() {
            p { "Deze wijk heeft in deze periode geen geld uit een fonds." }
        } @else {
            (bar_legend(&legend))
            @for line in &v.budget.funds {
                @let lt = &line.totals;
                @let other = lt.amount_allocated.0 - lt.amount_spent.0 - lt.amount_committed.0 - lt.amount_remaining.0;
                div class="fund-bar" {
                    h3 { (line.fund_name) " " span class="muted" { "(" (line.fund_id) ")" } }
                    (money_bar(&format!("Geld van {} voor {}", line.fund_id, v.budget.name), &[
                        Segment { label: "Uitgegeven", cents: lt.amount_spent.0, class: "seg-spent" },
                        Segment { label: "Verplicht", cents: lt.amount_committed.0, class: "seg-committed" },
                        Segment { label: "Beschikbaar", cents: lt.amount_remaining.0, class: "seg-available" },
                        Segment { label: "Vervallen, overgeheveld of terug te vorderen", cents: other, class: "seg-other" },
                    ]))
                    p class="bar-figures" {
                        "Uitgegeven " (euro(lt.amount_spent.0)) " · Verplicht " (euro(lt.amount_committed.0))
                        " · Beschikbaar " (euro(lt.amount_remaining.0))
                        @if other != 0 { " · Vervallen, overgeheveld of terug te vorderen " (euro(other)) }
                    }
                }
            }
            table data-testid="fondsen" {
                caption { "Geld per fonds" }
                thead { tr {
                    th scope="col" { "Fonds" } th scope="col" { "Soort" } th scope="col" { "Besluit" }
                    th scope="col" class="num" { "Toegekend" } th scope="col" class="num" { "Uitgegeven" }
                    th scope="col" class="num" { "Verplicht" } th scope="col" class="num" { "Beschikbaar" }
                } }
                tbody {
                    @for line in &v.budget.funds {
                        tr data-fund=(line.fund_id) {
                            th scope="row" {
                                @if viewer.caller.role != crate::auth::Role::Wijkregisseur {
                                    a href={ "/fondsen/" (line.fund_id) } { (line.fund_id) }
                                } @else { (line.fund_id) }
                            }
                            td { (super::fund_kind_name(&line.kind)) }
                            td { (line.decision_reference) }
                            (money(line.totals.amount_allocated.0))
                            (money(line.totals.amount_spent.0))
                            (money(line.totals.amount_committed.0))
                            (money(line.totals.amount_remaining.0))
                        }
                    }
                }
                tfoot { tr {
                    th scope="row" colspan="3" { "Totaal" }
                    (money(t.amount_allocated.0)) (money(t.amount_spent.0)) (money(t.amount_committed.0)) (money(t.amount_remaining.0))
                } }
            }
        }
        h2 { "Verplichtingen" }
        @if v.commitments.is_empty() {
            p { "Geen open verplichtingen." }
        } @else {
            table data-testid="verplichtingen" {
                caption { "Open verplichtingen, oudste eerst. Ouder dan 13 weken is gemarkeerd." }
                thead { tr {
                    th scope="col" { "Verplichting" } th scope="col" { "Initiatief" } th scope="col" { "Fonds" }
                    th scope="col" { "Besloten op" } th scope="col" class="num" { "Leeftijd" }
                    th scope="col" class="num" { "Bedrag" } th scope="col" class="num" { "Betaald" } th scope="col" class="num" { "Open" }
                } }
                tbody {
                    @for c in &v.commitments {
                        @let decided = NaiveDate::parse_from_str(&c.decided_on, "%Y-%m-%d").ok();
                        @let days = decided.map(|d| (judged_on - d).num_days()).unwrap_or(0);
                        @let stale = days >= STALE_AFTER_DAYS;
                        tr class=[stale.then_some("stale")] {
                            th scope="row" { (c.commitment_id) }
                            td { (c.initiative) }
                            td { (c.fund_id) }
                            td { (iso_date(&c.decided_on)) }
                            td class="num" {
                                (days / 7) " weken"
                                @if stale { " " strong class="tag" { "ouder dan 13 weken" } }
                            }
                            (money(c.amount.0)) (money(c.amount_paid.0)) (money(c.amount_open.0))
                        }
                    }
                }
            }
        }
        h2 { "Laatste boekingen" }
        @if v.bookings.is_empty() {
            p { "Nog geen boekingen." }
        } @else {
            table data-testid="boekingen" {
                caption { "De " (LATEST) " laatst vastgelegde boekingen" @if v.as_of.is_some() { " met een boekdatum tot en met de peildatum" } }
                thead { tr {
                    th scope="col" { "Boekdatum" } th scope="col" { "Gebeurtenis" } th scope="col" { "Fonds" }
                    th scope="col" { "Omschrijving" } th scope="col" class="num" { "Bedrag" } th scope="col" class="num" { "Effect op beschikbaar" }
                } }
                tbody {
                    @for b in &v.bookings {
                        tr {
                            td { (iso_date(&b.booked_on)) }
                            td { (super::event_name(&b.event_type)) }
                            td { (b.fund_id) }
                            td { (b.description) }
                            (money(b.amount.0)) (money(b.available_change.0))
                        }
                    }
                }
            }
        }
        p class="actions" {
            a class="button secondary" href={ "/wijken/" (v.budget.wijk_id) "/csv" (query("")) } download { "Download als CSV" }
            " "
            a href={ "/audittrail?wijk=" (v.budget.wijk_id) @if let Some(y) = v.year { "&jaar=" (y) } } { "Alle boekingen in de audittrail" }
        }
    };
    Ok(render(layout(&v.budget.name, Some(&viewer), Section::Wijk, body)))
}

/// What the page shows, as CSV: one row per fund, per open commitment and
/// per booking, with the API's column names.
pub async fn csv(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(wijk_id): Path<String>,
    Query(q): Query<WijkQuery>,
) -> PageResult {
    let v = view(&state, &viewer, &wijk_id, &q).await?;
    // Each row fills the columns that mean something for it: a fund line and
    // the total their money, a commitment what is still committed and paid
    // on it and its amount, a booking its amount and its effect on what is
    // available.
    let blank = String::new;
    let mut rows = Vec::new();
    let totals = v.budget.funds.iter().map(|l| ("fund", l.fund_id.clone(), l.fund_name.clone(), &l.totals));
    for (row, id, name, t) in totals.chain([("total", blank(), v.budget.name.clone(), &v.budget.totals)]) {
        rows.push(vec![
            row.into(),
            id,
            name,
            blank(),
            t.amount_allocated.to_string(),
            t.amount_committed.to_string(),
            t.amount_spent.to_string(),
            t.amount_remaining.to_string(),
            blank(),
            blank(),
        ]);
    }
    for c in &v.commitments {
        rows.push(vec![
            "commitment".into(),
            c.commitment_id.clone(),
            c.initiative.clone(),
            c.decided_on.clone(),
            blank(),
            c.amount_open.to_string(),
            c.amount_paid.to_string(),
            blank(),
            c.amount.to_string(),
            blank(),
        ]);
    }
    for b in &v.bookings {
        rows.push(vec![
            "booking".into(),
            b.position.to_string(),
            format!("{}: {}", b.event_type, b.description),
            b.booked_on.clone(),
            blank(),
            blank(),
            blank(),
            blank(),
            b.amount.to_string(),
            b.available_change.to_string(),
        ]);
    }
    let name = format!(
        "wijk-{}{}{}.csv",
        v.budget.wijk_id,
        v.year.map(|y| format!("-{y}")).unwrap_or_default(),
        v.as_of.map(|d| format!("-per-{d}")).unwrap_or_default()
    );
    Ok(csv_download(
        &name,
        "row,id,name,date,amount_allocated,amount_committed,amount_spent,amount_remaining,amount,available_change",
        rows,
    ))
}

/// A CSV file to download, built with the API's quoting rules.
pub fn csv_download(file_name: &str, header_line: &str, rows: Vec<Vec<String>>) -> Response {
    let body = crate::http::reads::csv_text(header_line, rows.into_iter());
    download(file_name, "text/csv; charset=utf-8", body.into_bytes())
}

pub use crate::http::download;
