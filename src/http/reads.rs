//! Questions over HTTP, answered from the read models, with each role
//! seeing only what it may.

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, Problem};
use super::extract::StrictQuery;
use super::AppState;
use crate::auth::{Caller, Role};
use crate::projections::queries::{
    self, AuditFilter, AuditPage, FundDetail, FundSummary, Period, WijkBudget, WijkSummary,
};
use crate::spreadsheet::{ExportFormat, What, XLSX_MEDIA_TYPE};
use crate::store::chain::ChainedEvent;
use crate::store::repository::read_log;

/// The largest page any list answers with.
pub const PAGE_MAX: i64 = 1000;
const PAGE_DEFAULT: i64 = 100;

pub(super) fn require(caller: &Caller, allowed: &[Role], what: &str) -> Result<(), ApiError> {
    if allowed.contains(&caller.role) {
        Ok(())
    } else {
        Err(ApiError::forbidden(what))
    }
}

fn page_limit(limit: Option<i64>) -> Result<i64, ApiError> {
    match limit {
        None => Ok(PAGE_DEFAULT),
        Some(n) if (1..=PAGE_MAX).contains(&n) => Ok(n),
        Some(n) => Err(ApiError::invalid("limit", format!("limit {n} is outside 1..={PAGE_MAX}"))
            .sent_in(super::error::SentIn::Query, "limit")),
    }
}

#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PeriodQuery {
    /// Only this budget year.
    pub year: Option<i64>,
    /// Only money booked on or before this date (ISO 8601).
    pub as_of: Option<NaiveDate>,
}

impl From<PeriodQuery> for Period {
    fn from(q: PeriodQuery) -> Self {
        Period { year: q.year, as_of: q.as_of }
    }
}

/// Every wijk with allocated, spent and remaining.
#[utoipa::path(get, path = "/wijken", tag = "reads", params(PeriodQuery),
    responses((status = 200, body = Vec<WijkSummary>), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem)),
    security(("bearer" = [])))]
pub async fn list_wijken(
    State(state): State<AppState>,
    caller: Caller,
    StrictQuery(q): StrictQuery<PeriodQuery>,
) -> Result<Json<Vec<WijkSummary>>, ApiError> {
    require(
        &caller,
        &[Role::Finance, Role::Auditor, Role::Council],
        "list every wijk; read your own wijk's budget instead",
    )?;
    Ok(Json(queries::wijk_summaries(state.ledger.db(), q.into()).await?))
}

pub(super) fn check_wijk(caller: &Caller, wijk_id: &str) -> Result<(), ApiError> {
    if caller.may_read_wijk(wijk_id) {
        Ok(())
    } else {
        Err(ApiError::forbidden(&format!("read wijk {wijk_id}; it is not on your token")))
    }
}

/// One wijk's allocated, spent and remaining, in total and per fund.
#[utoipa::path(get, path = "/wijken/{wijk_id}/budget", tag = "reads", params(("wijk_id" = String, Path), PeriodQuery),
    responses((status = 200, body = WijkBudget), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn wijk_budget(
    State(state): State<AppState>,
    caller: Caller,
    Path(wijk_id): Path<String>,
    StrictQuery(q): StrictQuery<PeriodQuery>,
) -> Result<Json<WijkBudget>, ApiError> {
    check_wijk(&caller, &wijk_id)?;
    queries::wijk_budget(state.ledger.db(), &wijk_id, q.into())
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("wijk {wijk_id} is not registered")))
}

#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    pub year: Option<i64>,
    /// Only postings of this fund.
    pub fund_id: Option<String>,
    /// Only postings of this initiative.
    pub initiative: Option<String>,
    /// Only postings booked on or before this date: the trail as it stood then.
    pub as_of: Option<NaiveDate>,
    /// Continue after this global position (the previous page's `next_after`).
    pub after: Option<i64>,
    /// Rows per page, 1..=1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
}

/// A wijk's audit trail: every posting on its budget, oldest first, with the
/// running balance, who, why, and the decision behind the money. Send
/// `Accept: text/csv` for CSV, or `Accept:
/// application/vnd.openxmlformats-officedocument.spreadsheetml.sheet` for
/// the whole trail (of `year`) as an XLSX workbook.
#[utoipa::path(get, path = "/wijken/{wijk_id}/audit-trail", tag = "reads", params(("wijk_id" = String, Path), AuditQuery),
    responses((status = 200, description = "JSON, CSV with `Accept: text/csv`, or an XLSX workbook", body = AuditPage), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn audit_trail(
    State(state): State<AppState>,
    caller: Caller,
    Path(wijk_id): Path<String>,
    headers: HeaderMap,
    StrictQuery(q): StrictQuery<AuditQuery>,
) -> Result<Response, ApiError> {
    check_wijk(&caller, &wijk_id)?;
    let limit = page_limit(q.limit)?;
    let db = state.ledger.db();
    if !queries::wijk_exists(db, &wijk_id).await? {
        return Err(ApiError::not_found(format!("wijk {wijk_id} is not registered")));
    }
    let filter = AuditFilter {
        year: q.year,
        fund_id: q.fund_id,
        initiative: q.initiative,
        booked_to: q.as_of,
        ..Default::default()
    };
    if wants_xlsx(&headers) {
        // A workbook is the wijk's whole trail of a year, every page, as
        // `wijkbudget export --what audit-trail` writes it.
        let narrowing = [
            ("fund_id", filter.fund_id.is_some()),
            ("initiative", filter.initiative.is_some()),
            ("as_of", filter.booked_to.is_some()),
            ("after", q.after.is_some()),
            ("limit", q.limit.is_some()),
        ];
        if let Some((name, _)) = narrowing.iter().find(|(_, given)| *given) {
            return Err(ApiError::invalid(
                name,
                format!(
                "an XLSX workbook holds the wijk's whole trail (of `year`); leave out `{name}`, or ask for JSON or CSV"
            ),
            )
            .sent_in(super::error::SentIn::Query, *name));
        }
        let hide_actors = caller.role == Role::Council;
        let file =
            crate::spreadsheet::render(db, What::AuditTrail, ExportFormat::Xlsx, q.year, Some(&wijk_id), hide_actors)
                .await
                .map_err(ApiError::internal)?;
        return Ok(super::download(&file.file_name, file.media_type, file.bytes));
    }
    let mut page = queries::audit_trail(db, &wijk_id, &filter, q.after.unwrap_or(0), limit).await?;
    if caller.role == Role::Council {
        // Council members see what happened, not which official recorded it.
        page.rows.iter_mut().for_each(|row| row.actor = None);
    }
    if wants_csv(&headers) {
        let mut response =
            (StatusCode::OK, [(header::CONTENT_TYPE, "text/csv; charset=utf-8")], audit_csv(&page)).into_response();
        if let Some(next) = page.next_after {
            response.headers_mut().insert("x-next-after", next.into());
        }
        return Ok(response);
    }
    Ok(Json(page).into_response())
}

/// Whether the client asked for an XLSX workbook.
pub(super) fn wants_xlsx(headers: &HeaderMap) -> bool {
    headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|accept| accept.contains(XLSX_MEDIA_TYPE))
}

/// Whether the client asked for CSV (`Accept: text/csv`).
pub(super) fn wants_csv(headers: &HeaderMap) -> bool {
    headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|accept| accept.contains("text/csv"))
}

pub(super) fn csv_field(value: &str) -> String {
    // Quote everything, and defuse spreadsheet formulas in free text.
    let value = if value.starts_with(['=', '+', '-', '@']) && value.parse::<f64>().is_err() {
        format!("'{value}")
    } else {
        value.to_string()
    };
    format!("\"{}\"", value.replace('"', "\"\""))
}

/// The audit trail's CSV columns, for the API and the web app alike.
pub(crate) const AUDIT_CSV_HEADER: &str = "position,booked_on,recorded_at,backdated,event_type,fund_id,decision_reference,account,counter_account,amount,balance,actor,role,reason,reference,initiative,theme,expense_id,event_id,correlation_id";

/// One CSV row per audit-trail row, in [`AUDIT_CSV_HEADER`]'s order.
pub(crate) fn audit_csv_rows(page: &AuditPage) -> Vec<Vec<String>> {
    page.rows
        .iter()
        .map(|r| {
            vec![
                r.position.to_string(),
                r.booked_on.clone(),
                r.recorded_at.clone(),
                r.backdated.to_string(),
                r.event_type.clone(),
                r.fund_id.clone(),
                r.decision_reference.clone(),
                r.account.clone(),
                r.counter_account.clone(),
                r.amount.to_string(),
                r.balance.to_string(),
                r.actor.clone().unwrap_or_default(),
                r.role.clone(),
                r.reason.clone().unwrap_or_default(),
                r.reference.clone().unwrap_or_default(),
                r.initiative.clone().unwrap_or_default(),
                r.theme.clone().unwrap_or_default(),
                r.expense_id.clone().unwrap_or_default(),
                r.event_id.clone(),
                r.correlation_id.clone().unwrap_or_default(),
            ]
        })
        .collect()
}

/// A CSV document: the header line, then each row quoted by [`csv_field`].
pub(crate) fn csv_text(header_line: &str, rows: impl Iterator<Item = Vec<String>>) -> String {
    let mut out = format!("{header_line}\n");
    for row in rows {
        out.push_str(&row.iter().map(|f| csv_field(f)).collect::<Vec<_>>().join(","));
        out.push('\n');
    }
    out
}

fn audit_csv(page: &AuditPage) -> String {
    csv_text(AUDIT_CSV_HEADER, audit_csv_rows(page).into_iter())
}

#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct YearQuery {
    pub year: Option<i64>,
}

/// Every fund with its amount, allocated, spent and remainder.
#[utoipa::path(get, path = "/funds", tag = "reads", params(YearQuery),
    responses((status = 200, body = Vec<FundSummary>), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem)),
    security(("bearer" = [])))]
pub async fn list_funds(
    State(state): State<AppState>,
    caller: Caller,
    StrictQuery(q): StrictQuery<YearQuery>,
) -> Result<Json<Vec<FundSummary>>, ApiError> {
    require(&caller, &[Role::Finance, Role::Auditor, Role::Council], "read funds")?;
    Ok(Json(queries::funds(state.ledger.db(), q.year).await?))
}

#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ExpensePageQuery {
    /// The fund as it stood on this date: only money and expenses booked
    /// on or before it, and only reversals booked by then.
    pub as_of: Option<NaiveDate>,
    /// Expenses after this global position (the previous page's `next_after`).
    pub after: Option<i64>,
    /// Expenses per page, 1..=1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
}

/// One fund: where its money was allocated and what it was spent on
/// ("what was A21-182 spent on"), its expenses a page at a time.
#[utoipa::path(get, path = "/funds/{fund_id}", tag = "reads", params(("fund_id" = String, Path), ExpensePageQuery),
    responses((status = 200, body = FundDetail), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn fund_detail(
    State(state): State<AppState>,
    caller: Caller,
    Path(fund_id): Path<String>,
    StrictQuery(q): StrictQuery<ExpensePageQuery>,
) -> Result<Json<FundDetail>, ApiError> {
    require(&caller, &[Role::Finance, Role::Auditor, Role::Council], "read funds")?;
    let limit = page_limit(q.limit)?;
    queries::fund_detail_as_of(state.ledger.db(), &fund_id, q.as_of, q.after.unwrap_or(0), limit)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("fund {fund_id} does not exist")))
}

#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// Events after this global position (default 0).
    pub after: Option<i64>,
    /// Events per page, 1..=1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventPage {
    pub events: Vec<ChainedEvent>,
    /// Pass as `after` for the next page, always: the last event's position
    /// on a page with events; on an empty page the `after` that was asked
    /// (or the head, if that was beyond it), so a consumer polls from there.
    pub next_after: i64,
    /// True when this page reaches the head of the log: wait before asking
    /// for the next page. False when more events follow right away.
    pub at_head: bool,
}

/// The global event log in commit order, with its hash chain, for auditors
/// and exports. A consumer tails it by passing each page's `next_after` as
/// the next `after`, waiting a moment whenever `at_head` is true.
#[utoipa::path(get, path = "/events", tag = "reads", params(EventsQuery),
    responses((status = 200, body = EventPage), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn events(
    State(state): State<AppState>,
    caller: Caller,
    StrictQuery(q): StrictQuery<EventsQuery>,
) -> Result<Json<EventPage>, ApiError> {
    require(&caller, &[Role::Finance, Role::Auditor], "read the raw event log")?;
    let limit = page_limit(q.limit)?;
    let after = q.after.unwrap_or(0).max(0);
    // One more than asked, to know whether another page follows.
    let mut events = read_log(state.ledger.db(), after, limit + 1).await?;
    let at_head = events.len() as i64 <= limit;
    events.truncate(limit as usize);
    let next_after = match events.last() {
        Some(last) => last.position,
        // Positions are gap-free: nothing after `after` means it is at or
        // beyond the head, and a consumer continues from the head.
        None => after.min(crate::store::repository::head(state.ledger.db()).await?.0),
    };
    Ok(Json(EventPage { events, next_after, at_head }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    pub status: &'static str,
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/health", tag = "service", responses((status = 200, body = Health)))]
pub async fn health() -> Json<Health> {
    Json(Health { status: "ok" })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    pub status: &'static str,
    pub store: &'static str,
    /// The last log position the read models include.
    pub projector_position: i64,
    pub log_head: i64,
    /// Events written but not yet in the read models.
    pub projector_lag: i64,
    pub appends: Appends,
}

/// What this process's group committer has done since it started. Appends
/// are made one group at a time, so `busy_us / commands` is the time each
/// command holds the append path, and `1 / that` the write rate's ceiling;
/// `database_us` is the part of it spent waiting for the database.
#[derive(Debug, Serialize, ToSchema)]
pub struct Appends {
    /// Transactions (groups of concurrent commands) appended.
    pub groups: u64,
    pub commands: u64,
    /// Microseconds from taking a group off the queue to answering its commands.
    pub busy_us: u64,
    /// Of `busy_us`, microseconds waiting for the database's answers.
    pub database_us: u64,
}

impl From<crate::store::AppendTimes> for Appends {
    fn from(times: crate::store::AppendTimes) -> Self {
        Self {
            groups: times.groups,
            commands: times.commands,
            busy_us: times.busy.as_micros() as u64,
            database_us: times.database.as_micros() as u64,
        }
    }
}

/// How long readiness waits for the store: far below the pool's acquire
/// timeout, so a probe with a short timeout of its own sees a 503, not a hang.
pub const READY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// Readiness: the store answers; shows the projector's position and lag.
/// When the store does not answer within a second, a 503 that says so.
#[utoipa::path(get, path = "/ready", tag = "service",
    responses((status = 200, body = Readiness), (status = 503, body = Problem)))]
pub async fn ready(State(state): State<AppState>) -> Result<Json<Readiness>, ApiError> {
    let db = state.ledger.db();
    let not_ready = |what: String| {
        tracing::warn!(%what, "not ready");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            format!("not ready: {what}; the service reconnects by itself once the database is back"),
        )
        .retry_after_seconds(super::error::RETRY_AFTER_SECONDS)
    };
    let (checkpoint, head) = match tokio::time::timeout(READY_TIMEOUT, crate::projections::status(db)).await {
        Ok(Ok(status)) => status,
        // The error's text is sqlx's, about the connection; no SQL or data.
        Ok(Err(err)) => {
            let reason = if crate::store::is_unavailable(&err) {
                format!("the database cannot be reached ({})", connection_failure(&err))
            } else {
                "the database refused the readiness query".to_string()
            };
            return Err(not_ready(reason));
        }
        Err(_) => {
            return Err(not_ready(format!("the database did not answer within {} ms", READY_TIMEOUT.as_millis())))
        }
    };
    Ok(Json(Readiness {
        status: "ready",
        store: db.kind(),
        projector_position: checkpoint,
        log_head: head,
        projector_lag: head - checkpoint,
        appends: state.ledger.repository().append_times().into(),
    }))
}

/// The kind of connection failure, in words that leak nothing of the setup.
fn connection_failure(err: &sqlx::Error) -> &'static str {
    match err {
        sqlx::Error::Io(_) => "the connection failed",
        sqlx::Error::PoolTimedOut => "no connection could be had in time",
        sqlx::Error::PoolClosed => "the pool is closed",
        sqlx::Error::Tls(_) => "TLS failed",
        sqlx::Error::Database(_) => "the database refuses connections",
        _ => "the connection failed",
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Integrity {
    /// `POSITION:HASH` of the log's last event now.
    pub head: String,
    /// The most recent verification of the whole chain by this service, if one has finished.
    pub last_verification: Option<crate::verify::LastVerification>,
}

/// The current head of the hash chain and the result of the most recent
/// full verification (run at start and then every few hours).
#[utoipa::path(get, path = "/integrity", tag = "reads",
    responses((status = 200, body = Integrity), (status = 401, body = Problem), (status = 403, body = Problem)),
    security(("bearer" = [])))]
pub async fn integrity(State(state): State<AppState>, caller: Caller) -> Result<Json<Integrity>, ApiError> {
    require(&caller, &[Role::Finance, Role::Auditor], "read the integrity status")?;
    let (position, hash) = crate::store::repository::head(state.ledger.db()).await?;
    let last_verification = state.last_verification.read().await.clone();
    Ok(Json(Integrity { head: format!("{position}:{hash}"), last_verification }))
}
