//! Fondsen and a fund's own page: a year's funds with what became of their
//! money, and "what was this money spent on?", per wijk and per
//! initiative, followed into the funds it was carried over to.

use axum::extract::{Path, Query, State};
use maud::html;
use serde::Deserialize;

use super::{allow, parse_year, render, PageResult};
use crate::http::AppState;
use crate::projections::overview;
use crate::projections::queries::{self, FundSummary};
use crate::spreadsheet::{self, ExportFormat, What};
use crate::web::components::{layout, money, Section};
use crate::web::format::{euro, iso_date};
use crate::web::session::Viewer;

#[derive(Debug, Default, Deserialize)]
pub struct FundsQuery {
    jaar: Option<String>,
}

/// Spent as a share of the fund's amount, to one decimal, in Dutch.
fn percentage_spent(f: &FundSummary) -> String {
    if f.amount.0 == 0 {
        return "–".into();
    }
    // Tenths of a percent, rounded half up, in integers: no float.
    let tenths = (f.amount_spent.0 * 1000 + f.amount.0 / 2) / f.amount.0;
    format!("{},{} %", tenths / 10, (tenths % 10).abs())
}

pub async fn list(State(state): State<AppState>, viewer: Viewer, Query(q): Query<FundsQuery>) -> PageResult {
    allow(&viewer, Section::Fondsen)?;
    let db = state.ledger.db();
    let years = crate::projections::queries::fund_years(db).await.map_err(super::unavailable)?;
    let year = parse_year(&viewer, q.jaar.as_deref())?.or(years.first().copied());
    let funds = queries::funds(db, year).await.map_err(super::unavailable)?;
    let sum = |f: fn(&FundSummary) -> i64| funds.iter().map(f).sum::<i64>();
    let body = html! {
        h1 { "Fondsen" @if let Some(y) = year { " " (y) } }
        form method="get" action="/fondsen" class="filters" {
            (super::year_select(&years, year, None))
            button type="submit" class="button secondary" { "Toon" }
        }
        table data-testid="fondsen" {
            caption { "Waar het geld vandaan komt en wat ermee gebeurde" }
            thead { tr {
                th scope="col" { "Fonds" } th scope="col" { "Soort" } th scope="col" { "Besluit" }
                th scope="col" class="num" { "Bedrag" } th scope="col" class="num" { "Toegekend" }
                th scope="col" class="num" { "Uitgegeven" } th scope="col" class="num" { "Uitgegeven %" }
            } }
            tbody {
                @for f in &funds {
                    tr data-fund=(f.fund_id) {
                        th scope="row" { a href={ "/fondsen/" (f.fund_id) } { (f.name) } " " span class="muted" { "(" (f.fund_id) ")" } }
                        td { (super::fund_kind_name(&f.kind)) }
                        td { (f.decision_reference) ", " (iso_date(&f.adopted_on)) }
                        (money(f.amount.0)) (money(f.amount_allocated.0)) (money(f.amount_spent.0))
                        td class="num" { (percentage_spent(f)) }
                    }
                }
            }
            tfoot { tr {
                th scope="row" colspan="3" { "Totaal" }
                (money(sum(|f| f.amount.0))) (money(sum(|f| f.amount_allocated.0))) (money(sum(|f| f.amount_spent.0)))
                td {}
            } }
        }
        @if let Some(y) = year {
            h2 { "Subsidieregister " (y) }
            p { "De subsidies (verplichtingen) van " (y) " zoals de gemeente ze publiceert: ontvanger, initiatief, verleend en vastgesteld bedrag, besluit, regeling en wijk. De naam van een particulier staat er nooit in." }
            p class="actions" {
                a class="button secondary" href={ "/subsidieregister/csv?jaar=" (y) } download { "Download als CSV" }
                " "
                a class="button secondary" href={ "/subsidieregister/xlsx?jaar=" (y) } download { "Download als Excel" }
            }
        }
    };
    Ok(render(layout("Fondsen", Some(&viewer), Section::Fondsen, body)))
}

/// A year's subsidieregister, as `wijkbudget export --what subsidieregister` writes it.
async fn subsidy_register(state: &AppState, viewer: &Viewer, q: &FundsQuery, format: ExportFormat) -> PageResult {
    allow(viewer, Section::Fondsen)?;
    let Some(year) = parse_year(viewer, q.jaar.as_deref())? else {
        return Err(super::bad_request(viewer, "Kies eerst een jaar."));
    };
    let file = spreadsheet::render(state.ledger.db(), What::Subsidieregister, format, Some(year), None, false)
        .await
        .map_err(super::unavailable)?;
    Ok(super::wijk::download(&file.file_name, file.media_type, file.bytes))
}

pub async fn subsidy_register_csv(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(q): Query<FundsQuery>,
) -> PageResult {
    subsidy_register(&state, &viewer, &q, ExportFormat::Csv).await
}

pub async fn subsidy_register_xlsx(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(q): Query<FundsQuery>,
) -> PageResult {
    subsidy_register(&state, &viewer, &q, ExportFormat::Xlsx).await
}

pub async fn detail(State(state): State<AppState>, viewer: Viewer, Path(fund_id): Path<String>) -> PageResult {
    allow(&viewer, Section::Fondsen)?;
    let db = state.ledger.db();
    // One expense is enough: this page shows the totals and the money trail,
    // not the list of expenses, which the audit trail pages through.
    let Some(detail) = queries::fund_detail(db, &fund_id, 0, 1).await.map_err(super::unavailable)? else {
        return Err(super::not_found_page(Some(&viewer), &format!("Er is geen fonds met de code ‘{fund_id}’.")));
    };
    let trail = overview::money_trail(db, &fund_id).await.map_err(super::unavailable)?;
    let f = &detail.fund;
    let body = html! {
        p class="kicker" { (super::fund_kind_name(&f.kind)) " " (f.year) }
        h1 { (f.name) }
        dl class="facts" {
            dt { "Besluit" } dd { (f.decision_reference) ", aangenomen op " (iso_date(&f.adopted_on)) }
            dt { "Doel (doelbinding)" } dd { (f.purpose) }
            dt { "Bedrag" } dd { (euro(f.amount.0)) }
            dt { "Toegekend aan wijken" } dd { (euro(f.amount_allocated.0)) }
            dt { "Uitgegeven" } dd data-testid="uitgegeven" { (euro(f.amount_spent.0)) " (" (percentage_spent(f)) ")" }
            dt { "Verplicht" } dd { (euro(f.amount_committed.0)) }
            dt { "Nog niet besteed of verplicht" } dd { (euro(f.amount_remaining.0)) }
            @if let Some(from) = &f.carried_over_from {
                dt { "Overgeheveld uit" } dd { a href={ "/fondsen/" (from) } { (from) } }
            }
            @if let Some(closed) = &f.closed_on {
                dt { "Afgesloten op" } dd { (iso_date(closed)) }
            }
            @if let Some(next) = &f.carry_over_fund {
                dt { "Overgeheveld naar" } dd { a href={ "/fondsen/" (next) } { (next) } }
            }
        }
        h2 { "Per wijk" }
        table data-testid="per-wijk" {
            caption { "Geld van " (f.fund_id) " per wijk" }
            thead { tr {
                th scope="col" { "Wijk" } th scope="col" class="num" { "Toegekend" } th scope="col" class="num" { "Uitgegeven" }
                th scope="col" class="num" { "Verplicht" } th scope="col" class="num" { "Beschikbaar" }
            } }
            tbody {
                @for a in &detail.allocations {
                    tr { th scope="row" { a href={ "/wijken/" (a.wijk_id) "?jaar=" (f.year) } { (a.wijk_id) } }
                        (money(a.totals.amount_allocated.0)) (money(a.totals.amount_spent.0))
                        (money(a.totals.amount_committed.0)) (money(a.totals.amount_remaining.0)) }
                }
            }
        }
        h2 { "Waaraan is dit geld besteed?" }
        @if trail.funds.len() > 1 {
            p { "Dit fonds is gevolgd via de overheveling naar "
                @for (i, next) in trail.funds.iter().skip(1).enumerate() {
                    @if i > 0 { ", " } a href={ "/fondsen/" (next) } { (next) }
                }
                "." }
        }
        @if trail.initiatives.is_empty() {
            p { "Van dit geld is nog niets uitgegeven of verplicht." }
        } @else {
            table data-testid="per-initiatief" {
                caption { "Per initiatief" }
                thead { tr {
                    th scope="col" { "Initiatief" } th scope="col" { "Wijk" } th scope="col" { "Fonds" }
                    th scope="col" class="num" { "Uitgegeven" } th scope="col" class="num" { "Verplicht" }
                } }
                tbody {
                    @for i in &trail.initiatives {
                        tr { th scope="row" { (i.initiative) } td { (i.wijk_id) } td { (i.fund_id) }
                            (money(i.amount_spent.0)) (money(i.amount_committed.0)) }
                    }
                }
            }
        }
    };
    Ok(render(layout(&f.name, Some(&viewer), Section::Fondsen, body)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::projections::queries::Euro;

    fn fund(amount: i64, spent: i64) -> FundSummary {
        FundSummary {
            fund_id: "f".into(),
            year: 2022,
            kind: "begroting".into(),
            name: "f".into(),
            decision_reference: "d".into(),
            adopted_on: "2021-11-11".into(),
            purpose: "p".into(),
            amount: Euro(amount),
            amount_allocated: Euro(0),
            amount_committed: Euro(0),
            amount_spent: Euro(spent),
            amount_unallocated: Euro(0),
            amount_remaining: Euro(0),
            carried_over_from: None,
            closed_on: None,
            carry_over_fund: None,
        }
    }

    #[test]
    fn the_share_spent_is_rounded_to_tenths_in_dutch() {
        assert_eq!(percentage_spent(&fund(5_000_000, 5_000_000)), "100,0 %");
        assert_eq!(percentage_spent(&fund(300, 100)), "33,3 %");
        assert_eq!(percentage_spent(&fund(300, 200)), "66,7 %");
        assert_eq!(percentage_spent(&fund(0, 0)), "–");
    }
}
