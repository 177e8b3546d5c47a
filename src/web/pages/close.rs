//! Jaarafsluiting: a year's close statement per fund, reconciled per wijk.

use axum::extract::{Query, State};
use maud::html;
use serde::Deserialize;

use super::{allow, parse_year, render, PageResult};
use crate::http::lifecycle::{close_csv_rows, CLOSE_CSV_HEADER};
use crate::http::AppState;
use crate::projections::reports::{self, CloseStatement};
use crate::web::components::{layout, money, Section};
use crate::web::format::{euro, iso_date};
use crate::web::session::Viewer;

#[derive(Debug, Default, Deserialize)]
pub struct CloseQuery {
    jaar: Option<String>,
}

async fn statements(
    state: &AppState,
    viewer: &Viewer,
    q: &CloseQuery,
) -> Result<(Vec<i64>, Option<i64>, Vec<CloseStatement>), axum::response::Response> {
    allow(viewer, Section::Jaarafsluiting)?;
    let db = state.ledger.db();
    let years = crate::projections::queries::fund_years(db).await.map_err(super::unavailable)?;
    // The latest year that has a close, unless one is asked for.
    let mut year = parse_year(viewer, q.jaar.as_deref())?;
    let mut found = Vec::new();
    if let Some(y) = year {
        found = reports::close_statements(db, y).await.map_err(super::unavailable)?;
    } else {
        for y in &years {
            found = reports::close_statements(db, *y).await.map_err(super::unavailable)?;
            if !found.is_empty() {
                year = Some(*y);
                break;
            }
        }
    }
    Ok((years, year, found))
}

pub async fn page(State(state): State<AppState>, viewer: Viewer, Query(q): Query<CloseQuery>) -> PageResult {
    let (years, year, statements) = statements(&state, &viewer, &q).await?;
    let body = html! {
        h1 { "Jaarafsluiting" @if let Some(y) = year { " " (y) } }
        form method="get" action="/jaarafsluiting" class="filters" {
            (super::year_select(&years, year, None))
            button type="submit" class="button secondary" { "Toon" }
        }
        @if statements.is_empty() {
            p { "Geen fonds van dit jaar is afgesloten." }
        }
        @for s in &statements {
            section class="statement" aria-labelledby={ "fonds-" (s.fund_id) } {
                h2 id={ "fonds-" (s.fund_id) } { (s.fund_id) }
                p { "Afgesloten op " (iso_date(&s.closed_on)) " bij besluit " (s.decision_reference)
                    @if let Some(next) = &s.carry_over_fund { ". Overgeheveld naar " a href={ "/fondsen/" (next) } { (next) } } "." }
                table data-testid={ "afsluiting-" (s.fund_id) } {
                    caption { "Aansluiting per wijk van " (s.fund_id) }
                    thead { tr {
                        th scope="col" { "Wijk" } th scope="col" class="num" { "Toegekend" } th scope="col" class="num" { "Overgeboekt" }
                        th scope="col" class="num" { "Uitgegeven" } th scope="col" class="num" { "Verplicht" }
                        th scope="col" class="num" { "Terug te vorderen" } th scope="col" class="num" { "Vervallen" } th scope="col" class="num" { "Overgeheveld" }
                    } }
                    tbody {
                        @for l in &s.lines {
                            tr { th scope="row" { (l.wijk_id) }
                                (money(l.amount_allocated.0)) (money(l.amount_transferred.0)) (money(l.amount_spent.0))
                                (money(l.amount_committed.0)) (money(l.amount_receivable.0)) (money(l.amount_lapsed.0)) (money(l.amount_carried_over.0)) }
                        }
                        @if s.unallocated_lapsed.0 != 0 {
                            tr { th scope="row" { "Niet toegekend" } td {} td {} td {} td {} td {} (money(s.unallocated_lapsed.0)) td {} }
                        }
                    }
                    tfoot { tr { th scope="row" { "Totaal" } td {} td {}
                        (money(s.amount_spent.0)) (money(s.amount_committed.0)) (money(s.amount_receivable.0)) (money(s.amount_lapsed.0)) (money(s.amount_carried_over.0)) } }
                }
                p { "Beginbedrag " (euro(s.opening.0)) " − uitgegeven − verplicht − terug te vorderen − vervallen − overgeheveld = "
                    strong data-testid="verschil" { (euro(s.difference.0)) }
                    @if s.difference.0 == 0 { " (sluit aan)" } @else { " " strong class="tag" { "sluit niet aan" } } }
            }
        }
        @if !statements.is_empty() {
            p class="actions" {
                a class="button secondary" href={ "/jaarafsluiting/csv?jaar=" (year.unwrap_or_default()) } download { "Download als CSV" }
                " "
                a class="button secondary" href={ "/jaarafsluiting/xlsx?jaar=" (year.unwrap_or_default()) } download { "Download als Excel" }
            }
        }
    };
    Ok(render(layout("Jaarafsluiting", Some(&viewer), Section::Jaarafsluiting, body)))
}

pub async fn csv(State(state): State<AppState>, viewer: Viewer, Query(q): Query<CloseQuery>) -> PageResult {
    let (_, year, statements) = statements(&state, &viewer, &q).await?;
    let name = format!("jaarafsluiting-{}.csv", year.unwrap_or_default());
    Ok(super::wijk::csv_download(&name, CLOSE_CSV_HEADER, close_csv_rows(statements)))
}

/// The year's close statement as an XLSX workbook, a sheet per fund.
pub async fn xlsx(State(state): State<AppState>, viewer: Viewer, Query(q): Query<CloseQuery>) -> PageResult {
    let (_, year, statements) = statements(&state, &viewer, &q).await?;
    let Some(year) = year.filter(|_| !statements.is_empty()) else {
        return Err(super::not_found_page(Some(&viewer), "Geen fonds van dit jaar is afgesloten."));
    };
    let file = crate::spreadsheet::render(
        state.ledger.db(),
        crate::spreadsheet::What::CloseStatement,
        crate::spreadsheet::ExportFormat::Xlsx,
        Some(year),
        None,
        false,
    )
    .await
    .map_err(super::unavailable)?;
    Ok(super::wijk::download(&file.file_name, file.media_type, file.bytes))
}
