//! The budget lifecycle over HTTP: commitments (verplichtingen), payments,
//! settlement and recovery, transfers between wijken, year-end close, and
//! the reports that follow them. Same conventions as `writes` and `reads`.

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, Problem};
use super::extract::{AmountInput, StrictJson, StrictQuery};
use super::reads::{csv_text, require, wants_csv, wants_xlsx, PeriodQuery};
use super::schema::{AmountText, BoundedText, Identifier, SettledAmountText};
use super::writes::{write, DecisionInput, Writer, Written};
use super::AppState;
use crate::auth::{Caller, Role};
use crate::domain::fund::{ApplicantKind, CommitmentDetails, Decision, FundCommand};
use crate::domain::ids::{CommitmentId, ExpenseId, FundId, Text, WijkId, Year};
use crate::ledger::ClosedFund;
use crate::projections::reports::{self, CloseStatement, CommitmentView, WijkThemes};

const READERS: [Role; 3] = [Role::Finance, Role::Auditor, Role::Council];

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MakeCommitment {
    #[schema(value_type = Identifier, example = "SUB-2022-017")]
    pub commitment_id: CommitmentId,
    #[schema(value_type = Identifier, example = "oost-1223")]
    pub wijk_id: WijkId,
    #[schema(value_type = Identifier, example = "begroting-2022")]
    pub fund_id: FundId,
    #[schema(value_type = AmountText, example = "4500.00")]
    pub amount: AmountInput,
    #[schema(value_type = BoundedText, example = "Buurtmoestuin Wirixstraat")]
    pub initiative: Text,
    #[schema(value_type = BoundedText, example = "Tuingroep Wirixstraat")]
    pub applicant: Text,
    /// `organisation` or `private` (a private person, whose name the subsidy
    /// register never shows). Absent counts as private.
    #[serde(default)]
    pub applicant_kind: ApplicantKind,
    #[schema(value_type = BoundedText, example = "groen")]
    pub theme: Text,
    /// The grant decision (subsidieverlening).
    pub decision: DecisionInput,
    #[schema(value_type = BoundedText, example = "Subsidieregeling wijkbudgetten")]
    pub grant_rule: Text,
    pub booked_on: NaiveDate,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PayCommitment {
    /// The payment's own id, as for any expense.
    #[schema(value_type = Identifier)]
    pub expense_id: ExpenseId,
    #[schema(value_type = AmountText, example = "1500.00")]
    pub amount: AmountInput,
    pub booked_on: NaiveDate,
    #[schema(value_type = BoundedText, example = "betaalopdracht 2022-311")]
    pub reference: Text,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettleCommitment {
    /// The final grant (vaststelling), from 0.00 up to the committed amount.
    #[schema(value_type = SettledAmountText, example = "3800.00")]
    pub settled_amount: SettledAmount,
    #[schema(value_type = BoundedText)]
    pub decision_reference: Text,
    /// Default today. Never before the commitment's previous booking, nor
    /// inside a closed year.
    pub booked_on: Option<NaiveDate>,
}

/// A settled amount: a decimal, zero allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SettledAmount(pub Decimal);

impl<'de> Deserialize<'de> for SettledAmount {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = match serde_json::Value::deserialize(d)? {
            serde_json::Value::String(s) => s,
            serde_json::Value::Number(n) => n.to_string(),
            other => {
                return Err(serde::de::Error::custom(format!("expected a decimal such as \"3800.00\", got {other}")))
            }
        };
        // Only the syntax is checked here; the range (0.00 up to the
        // commitment, whole cents) is the domain's rule, with its own code.
        crate::domain::money::parse_decimal(&text).map(Self).map_err(serde::de::Error::custom)
    }
}

impl Serialize for SettledAmount {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&crate::domain::money::format_euro(self.0))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Repay {
    #[schema(value_type = AmountText, example = "700.00")]
    pub amount: AmountInput,
    /// Default today. Never before the commitment's previous booking, nor
    /// inside a closed year.
    pub booked_on: Option<NaiveDate>,
    #[schema(value_type = BoundedText)]
    pub reference: Text,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WithdrawCommitment {
    #[schema(value_type = BoundedText)]
    pub reason: Text,
    /// true for annulering (cancellation), false for intrekking (withdrawal).
    #[serde(default)]
    pub cancelled: bool,
    /// Default today. Never before the commitment's previous booking, nor
    /// inside a closed year.
    pub booked_on: Option<NaiveDate>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Transfer {
    #[schema(value_type = Identifier, example = "centrum")]
    pub from_wijk: WijkId,
    #[schema(value_type = Identifier, example = "oost-1223")]
    pub to_wijk: WijkId,
    #[schema(value_type = AmountText, example = "2500.00")]
    pub amount: AmountInput,
    /// The council or college decision behind the transfer.
    #[schema(value_type = BoundedText)]
    pub decision_reference: Text,
    #[schema(value_type = BoundedText)]
    pub reason: Text,
    pub booked_on: NaiveDate,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CloseYear {
    /// The council decision on the year's closing (jaarrekening, overheveling).
    pub decision: DecisionInput,
    /// Wijken whose available money is carried over to next year; the rest lapses.
    #[serde(default)]
    #[schema(value_type = Vec<Identifier>)]
    pub carry_over: Vec<WijkId>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct YearClosed {
    pub year: i32,
    pub funds: Vec<ClosedFund>,
}

/// The booking date of a correction that names none: the day it is made.
fn today() -> NaiveDate {
    Utc::now().date_naive()
}

async fn commitment_fund(state: &AppState, id: &str) -> Result<(CommitmentId, FundId), ApiError> {
    let not_found =
        || ApiError::new(StatusCode::NOT_FOUND, "unknown_commitment", format!("no commitment has id `{id}`"));
    let commitment_id = CommitmentId::parse(id).map_err(|_| not_found())?;
    let fund_id = state.ledger.fund_of_commitment(&commitment_id).await?.ok_or_else(not_found)?;
    Ok((commitment_id, fund_id))
}

/// Commits money from a wijk's budget in one fund to an approved initiative.
#[utoipa::path(post, path = "/commitments", tag = "lifecycle", request_body = MakeCommitment,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe")),
    responses((status = 201, body = Written<MakeCommitment>), (status = 200, body = Written<MakeCommitment>),
        (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 409, body = Problem), (status = 413, body = Problem), (status = 415, body = Problem),
        (status = 422, description = "Not available, unknown wijk or fund, or outside the fund's year", body = Problem)),
    security(("bearer" = [])))]
pub async fn make_commitment(
    State(state): State<AppState>,
    Writer(caller): Writer,
    headers: HeaderMap,
    body: StrictJson<MakeCommitment>,
) -> Result<Response, ApiError> {
    let r = body.value.clone();
    let fund_id = r.fund_id.clone();
    let command = FundCommand::Commit(CommitmentDetails {
        commitment_id: r.commitment_id.clone(),
        wijk_id: r.wijk_id.clone(),
        amount: r.amount.0,
        initiative: r.initiative.clone(),
        applicant: r.applicant.clone(),
        applicant_kind: r.applicant_kind,
        theme: r.theme.clone(),
        decision: Decision { reference: r.decision.reference.clone(), adopted_on: r.decision.adopted_on },
        grant_rule: r.grant_rule.clone(),
        booked_on: r.booked_on,
    });
    let ledger = state.ledger.clone();
    write(&state, &caller, &headers, "POST /commitments", &body.canonical, r, |meta| async move {
        ledger.fund(&fund_id, command, &meta).await
    })
    .await
    .map_err(ApiError::fund_named_in_body)
}

macro_rules! commitment_write {
    ($(#[$doc:meta])* $name:ident, $path:literal, $body:ty, $route:literal, |$r:ident, $cid:ident| $command:expr) => {
        $(#[$doc])*
        #[utoipa::path(post, path = $path, tag = "lifecycle", request_body = $body,
            params(("commitment_id" = String, Path), ("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe")),
            responses((status = 201, body = Written<$body>), (status = 200, body = Written<$body>),
                (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem),
                (status = 404, description = "No such commitment", body = Problem), (status = 409, body = Problem),
                (status = 413, body = Problem), (status = 415, body = Problem), (status = 422, body = Problem)),
            security(("bearer" = [])))]
        pub async fn $name(
            State(state): State<AppState>,
            Writer(caller): Writer,
            Path(id): Path<String>,
            headers: HeaderMap,
            body: StrictJson<$body>,
        ) -> Result<Response, ApiError> {
            if super::writes::KEY_REQUIRED.contains(&$path) {
                super::writes::require_idempotency_key(&headers)?;
            }
            let ($cid, fund_id) = commitment_fund(&state, &id).await?;
            let $r = body.value.clone();
            let command = $command;
            let route = format!($route, $cid);
            let ledger = state.ledger.clone();
            write(&state, &caller, &headers, &route, &body.canonical, body.value, |meta| async move {
                ledger.fund(&fund_id, command, &meta).await
            })
            .await
        }
    };
}

commitment_write!(
    /// Pays (part of) a commitment; payments never exceed it.
    pay_commitment, "/commitments/{commitment_id}/payments", PayCommitment, "POST /commitments/{}/payments",
    |r, commitment_id| FundCommand::Pay { commitment_id: commitment_id.clone(), expense_id: r.expense_id, amount: r.amount.0, booked_on: r.booked_on, reference: r.reference }
);
commitment_write!(
    /// Settles a commitment (vaststelling) at or below its amount; the unused
    /// part returns to the wijk, and what was paid above it is claimed back.
    settle_commitment, "/commitments/{commitment_id}/settlement", SettleCommitment, "POST /commitments/{}/settlement",
    |r, commitment_id| FundCommand::Settle { commitment_id: commitment_id.clone(), settled_amount: r.settled_amount.0, decision_reference: r.decision_reference, booked_on: r.booked_on.unwrap_or_else(today) }
);
commitment_write!(
    /// Records money paid back on a recovery claim (terugvordering).
    repay_commitment, "/commitments/{commitment_id}/repayments", Repay, "POST /commitments/{}/repayments",
    |r, commitment_id| FundCommand::Repay { commitment_id: commitment_id.clone(), amount: r.amount.0, booked_on: r.booked_on.unwrap_or_else(today), reference: r.reference }
);
commitment_write!(
    /// Withdraws (intrekking) or cancels (annulering) a commitment, releasing what is unpaid.
    withdraw_commitment, "/commitments/{commitment_id}/withdrawal", WithdrawCommitment, "POST /commitments/{}/withdrawal",
    |r, commitment_id| FundCommand::Withdraw { commitment_id: commitment_id.clone(), reason: r.reason, cancelled: r.cancelled, booked_on: r.booked_on.unwrap_or_else(today) }
);

/// Moves available money between two wijken within one fund and year.
#[utoipa::path(post, path = "/funds/{fund_id}/transfers", tag = "lifecycle", request_body = Transfer,
    params(("fund_id" = String, Path), ("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe")),
    responses((status = 201, body = Written<Transfer>), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem),
        (status = 413, body = Problem), (status = 415, body = Problem),
        (status = 422, description = "The source wijk lacks the money, or the year is closed", body = Problem)),
    security(("bearer" = [])))]
pub async fn transfer(
    State(state): State<AppState>,
    Writer(caller): Writer,
    Path(fund_id): Path<String>,
    headers: HeaderMap,
    body: StrictJson<Transfer>,
) -> Result<Response, ApiError> {
    let fund_id = FundId::parse(&fund_id).map_err(|e| ApiError::not_found(format!("fund id in the path {e}")))?;
    super::writes::require_idempotency_key(&headers)?;
    let r = body.value.clone();
    let command = FundCommand::Transfer {
        from_wijk: r.from_wijk.clone(),
        to_wijk: r.to_wijk.clone(),
        amount: r.amount.0,
        decision_reference: r.decision_reference.clone(),
        reason: r.reason.clone(),
        booked_on: r.booked_on,
    };
    let route = format!("POST /funds/{fund_id}/transfers");
    let ledger = state.ledger.clone();
    write(&state, &caller, &headers, &route, &body.canonical, r, |meta| async move {
        ledger.fund(&fund_id, command, &meta).await
    })
    .await
}

/// Closes a year: every fund of that year stops taking postings dated in it,
/// each wijk's available money lapses or (for `carry_over` wijken) moves into
/// a new fund for the next year, and open commitments stay open.
#[utoipa::path(post, path = "/years/{year}/close", tag = "lifecycle", request_body = CloseYear,
    params(("year" = i32, Path)),
    responses((status = 200, body = YearClosed), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 409, body = Problem), (status = 413, body = Problem),
        (status = 415, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn close_year(
    State(state): State<AppState>,
    Writer(caller): Writer,
    Path(year): Path<i32>,
    headers: HeaderMap,
    body: StrictJson<CloseYear>,
) -> Result<Json<YearClosed>, ApiError> {
    let year = Year::new(year)
        .map_err(|e| ApiError::invalid("year", format!("year {e}")).sent_in(super::error::SentIn::Path, "year"))?;
    let r = body.value;
    let decision = Decision { reference: r.decision.reference, adopted_on: r.decision.adopted_on };
    let mut meta = crate::ledger::CommandMeta::new(caller.actor());
    meta.correlation_id = super::correlation_id(&headers);
    let funds = state.ledger.close_year(year, decision, &r.carry_over, &meta).await?;
    // Read-your-writes, and the closed-year guard on new funds reads the projection.
    let (_, head) = crate::projections::status(state.ledger.db()).await?;
    if !state.ledger.wait_for_projection(head, std::time::Duration::from_secs(5)).await {
        tracing::warn!(head, "the projector is behind after a year close");
    }
    Ok(Json(YearClosed { year: year.value(), funds }))
}

/// One commitment with what was paid, settled and owed.
#[utoipa::path(get, path = "/commitments/{commitment_id}", tag = "lifecycle", params(("commitment_id" = String, Path)),
    responses((status = 200, body = CommitmentView), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn commitment(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<CommitmentView>, ApiError> {
    // A commitment outside the caller's wijken answers exactly as one that
    // does not exist, so a wijkregisseur cannot probe which ids are taken.
    let unknown = || {
        let scope = if caller.role == Role::Wijkregisseur { " in the wijken on your token" } else { "" };
        ApiError::new(StatusCode::NOT_FOUND, "unknown_commitment", format!("no commitment has id `{id}`{scope}"))
    };
    let mut view = reports::commitment(state.ledger.db(), &id).await?.ok_or_else(unknown)?;
    if !caller.may_read_wijk(&view.wijk_id) {
        return Err(unknown());
    }
    withhold_personal_details(&caller, std::slice::from_mut(&mut view));
    Ok(Json(view))
}

/// Council members see what was granted, not to whom.
fn withhold_personal_details(caller: &Caller, commitments: &mut [CommitmentView]) {
    if caller.role == Role::Council {
        commitments.iter_mut().for_each(|c| c.applicant = None);
    }
}

fn csv(header_line: &str, rows: impl Iterator<Item = Vec<String>>) -> Response {
    (StatusCode::OK, [(header::CONTENT_TYPE, "text/csv; charset=utf-8")], csv_text(header_line, rows)).into_response()
}

/// Per wijk and theme: granted, committed, paid, spent, settled, recovered
/// and repaid, each with the same meaning on a theme row as on its wijk's
/// row, and each wijk's allocated and remaining. JSON, or CSV with
/// `Accept: text/csv`, where the theme rows of a wijk sum to its `(wijk)` row.
#[utoipa::path(get, path = "/reports/themes", tag = "reports", params(PeriodQuery),
    responses((status = 200, description = "JSON, or CSV with `Accept: text/csv`", body = Vec<WijkThemes>), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem)),
    security(("bearer" = [])))]
pub async fn theme_report(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    StrictQuery(q): StrictQuery<PeriodQuery>,
) -> Result<Response, ApiError> {
    require(&caller, &READERS, "read reports")?;
    let report = reports::themes_in(state.ledger.db(), q.into()).await?;
    if !wants_csv(&headers) {
        return Ok(Json(report).into_response());
    }
    let amounts = |a: &reports::ThemeAmounts| {
        [
            a.amount_granted,
            a.amount_committed,
            a.amount_paid,
            a.amount_spent,
            a.amount_settled,
            a.amount_recovered,
            a.amount_repaid,
        ]
        .map(|e| e.to_string())
    };
    let rows = report.into_iter().flat_map(move |w| {
        let mut total = vec![w.wijk_id.clone(), "(wijk)".into(), w.amount_allocated.to_string()];
        total.extend(amounts(&w.amounts));
        total.push(w.amount_remaining.to_string());
        std::iter::once(total).chain(w.themes.into_iter().map(move |t| {
            let mut row = vec![w.wijk_id.clone(), t.theme, String::new()];
            row.extend(amounts(&t.amounts));
            row.push(String::new());
            row
        }))
    });
    Ok(csv(THEME_CSV_HEADER, rows))
}

/// The theme report's CSV columns: the JSON field names without `amount_`.
pub const THEME_CSV_HEADER: &str =
    "wijk_id,theme,allocated,granted,committed,paid,spent,settled,recovered,repaid,remaining";

#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AsOfQuery {
    /// The day to judge from (default today).
    pub as_of: Option<NaiveDate>,
}

#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct RegisterQuery {
    /// The budget year whose grants to list.
    #[param(minimum = 2000, maximum = 2100)]
    pub year: i64,
}

/// The subsidieregister: a year's grants with recipient, initiative, amounts
/// granted and settled, decision, regulation and wijk. A private person's
/// name is never shown: such a recipient is `particulier`, as is every grant
/// recorded before applicants were marked. JSON, or CSV with `Accept: text/csv`.
#[utoipa::path(get, path = "/reports/subsidy-register", tag = "reports", params(RegisterQuery),
    responses((status = 200, description = "JSON, or CSV with `Accept: text/csv`", body = Vec<crate::projections::subsidies::SubsidyLine>), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem)),
    security(("bearer" = [])))]
pub async fn subsidy_register(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    StrictQuery(q): StrictQuery<RegisterQuery>,
) -> Result<Response, ApiError> {
    use crate::projections::subsidies;
    require(&caller, &READERS, "read reports")?;
    let lines = subsidies::register(state.ledger.db(), q.year).await?;
    if !wants_csv(&headers) {
        return Ok(Json(lines).into_response());
    }
    Ok(csv(subsidies::CSV_HEADER, subsidies::csv_rows(&lines).into_iter()))
}

/// Open commitments older than 13 weeks with no payment and no settlement.
#[utoipa::path(get, path = "/reports/stale-commitments", tag = "reports", params(AsOfQuery),
    responses((status = 200, description = "JSON, or CSV with `Accept: text/csv`", body = Vec<CommitmentView>), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem)),
    security(("bearer" = [])))]
pub async fn stale_commitments(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    StrictQuery(q): StrictQuery<AsOfQuery>,
) -> Result<Response, ApiError> {
    require(&caller, &READERS, "read reports")?;
    let as_of = q.as_of.unwrap_or_else(|| Utc::now().date_naive());
    let mut list = reports::stale_commitments(state.ledger.db(), as_of).await?;
    withhold_personal_details(&caller, &mut list);
    if !wants_csv(&headers) {
        return Ok(Json(list).into_response());
    }
    Ok(csv(
        "commitment_id,fund_id,wijk_id,initiative,applicant,theme,decided_on,amount",
        list.into_iter().map(|c| {
            vec![
                c.commitment_id,
                c.fund_id,
                c.wijk_id,
                c.initiative,
                c.applicant.unwrap_or_default(),
                c.theme,
                c.decided_on,
                c.amount.to_string(),
            ]
        }),
    ))
}

/// The close statement of each closed fund of a year, per wijk. Each
/// reconciles: opening − spent − committed − receivable − lapsed − carried over = 0.
#[utoipa::path(get, path = "/years/{year}/close-statement", tag = "reports", params(("year" = i64, Path)),
    responses((status = 200, description = "JSON, CSV with `Accept: text/csv`, or an XLSX workbook with a sheet per fund", body = Vec<CloseStatement>), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn close_statement(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(year): Path<i64>,
) -> Result<Response, ApiError> {
    require(&caller, &READERS, "read reports")?;
    let statements = reports::close_statements(state.ledger.db(), year).await?;
    if statements.is_empty() {
        return Err(ApiError::not_found(format!(
            "no fund of {year} is closed; close it with POST /api/v1/years/{year}/close"
        )));
    }
    if wants_xlsx(&headers) {
        let file = crate::spreadsheet::render(
            state.ledger.db(),
            crate::spreadsheet::What::CloseStatement,
            crate::spreadsheet::ExportFormat::Xlsx,
            Some(year),
            None,
            false,
        )
        .await
        .map_err(ApiError::internal)?;
        return Ok(super::download(&file.file_name, file.media_type, file.bytes));
    }
    if !wants_csv(&headers) {
        return Ok(Json(statements).into_response());
    }
    Ok(csv(CLOSE_CSV_HEADER, close_csv_rows(statements).into_iter()))
}

/// The close statement's CSV columns, for the API and the web app alike.
pub(crate) const CLOSE_CSV_HEADER: &str =
    "fund_id,wijk_id,allocated,transferred,spent,committed,receivable,lapsed,carried_over";

/// One CSV row per wijk line of each statement, in [`CLOSE_CSV_HEADER`]'s order.
pub(crate) fn close_csv_rows(statements: Vec<CloseStatement>) -> Vec<Vec<String>> {
    statements
        .into_iter()
        .flat_map(|s| {
            let fund = s.fund_id.clone();
            s.lines.into_iter().map(move |l| {
                vec![
                    fund.clone(),
                    l.wijk_id,
                    l.amount_allocated.to_string(),
                    l.amount_transferred.to_string(),
                    l.amount_spent.to_string(),
                    l.amount_committed.to_string(),
                    l.amount_receivable.to_string(),
                    l.amount_lapsed.to_string(),
                    l.amount_carried_over.to_string(),
                ]
            })
        })
        .collect()
}
