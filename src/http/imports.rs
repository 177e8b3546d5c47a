//! Imports over HTTP: a spreadsheet of bookings sent as the request body,
//! checked and booked in the background (see [`crate::import::job`]), and
//! followed by its id until its report is ready.
//!
//! Idempotent by content: every row's key is made from what it books and
//! its row number, so sending the same file again books nothing twice.

use axum::body::Bytes;
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, Problem};
use super::extract::StrictQuery;
use super::writes::Writer;
use super::AppState;
use crate::import::job::{ImportRun, RunState};

/// The largest file an import accepts: about 300,000 CSV rows.
pub const IMPORT_BODY_LIMIT: usize = 32 * 1024 * 1024;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ImportQuery {
    /// Check every row as if booked, and store nothing.
    pub dry_run: Option<bool>,
}

/// Where an import is.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ImportStatus {
    Running,
    /// Its report is complete: see `problems`, `booked` and `already`.
    Finished,
    /// The ledger failed underneath it; `error` says why. Import the file
    /// again: rows booked before the failure are not booked twice.
    Failed,
}

/// A row that cannot be booked, and why, in the API's words.
#[derive(Debug, Serialize, ToSchema)]
pub struct ImportProblem {
    /// The row's number as a spreadsheet shows it (the header is row 1).
    pub row: usize,
    /// The column at fault, when it is one column.
    pub column: Option<String>,
    pub reason: String,
}

/// An import and, once finished, its report.
#[derive(Debug, Serialize, ToSchema)]
pub struct ImportView {
    pub id: String,
    pub status: ImportStatus,
    pub dry_run: bool,
    pub started_at: DateTime<Utc>,
    /// The step it is at: reading, copying, checking, booking or projecting.
    pub stage: String,
    /// Progress within the step.
    pub done: u64,
    pub total: u64,
    /// Data rows in the file, once finished.
    pub rows: Option<usize>,
    /// Rows this import booked.
    pub booked: Option<usize>,
    /// Rows that were already in the ledger and were left alone.
    pub already: Option<usize>,
    /// Every problem of every bad row, in file order. Any problem means
    /// nothing was stored: a file is booked whole or not at all.
    pub problems: Vec<ImportProblem>,
    pub error: Option<String>,
}

impl From<ImportRun> for ImportView {
    fn from(run: ImportRun) -> Self {
        let (status, report, error) = match run.state {
            RunState::Running => (ImportStatus::Running, None, None),
            RunState::Finished(report) => (ImportStatus::Finished, Some(report), None),
            RunState::Failed(error) => (ImportStatus::Failed, None, Some(error)),
        };
        Self {
            id: run.id,
            status,
            dry_run: run.dry_run,
            started_at: run.started_at,
            stage: run.stage,
            done: run.done,
            total: run.total,
            rows: report.as_ref().map(|r| r.rows),
            booked: report.as_ref().map(|r| r.booked),
            already: report.as_ref().map(|r| r.already),
            problems: report
                .map(|r| {
                    r.problems
                        .into_iter()
                        .map(|p| ImportProblem { row: p.row, column: p.column, reason: p.reason })
                        .collect()
                })
                .unwrap_or_default(),
            error,
        }
    }
}

/// The file, as the body: read up to [`IMPORT_BODY_LIMIT`].
pub struct ImportFile(pub Bytes);

impl FromRequest<AppState> for ImportFile {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body_too_large",
                    format!("the file is larger than the limit of {IMPORT_BODY_LIMIT} bytes; split it and import the parts in order"),
                )
            } else {
                ApiError::new(StatusCode::BAD_REQUEST, "unreadable_body", "the request body could not be read")
            }
        })?;
        Ok(Self(bytes))
    }
}

/// Imports a spreadsheet of bookings (CSV or XLSX, see the README for the
/// columns): every row is checked as if booked, in file order, and the file
/// is booked only if every row is good; with `dry_run=true` nothing is
/// stored. Runs in the background: follow the answer's `Location`.
#[utoipa::path(post, path = "/imports", tag = "writes", params(ImportQuery),
    request_body(description = "The file: CSV (UTF-8, comma or semicolon) or an XLSX workbook", content(
        (String = "text/csv"),
        (String = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
    )),
    responses(
        (status = 202, description = "Started; follow the Location header", body = ImportView,
            headers(("Location" = String, description = "Where the import's progress and report are"))),
        (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 409, description = "Another import is still running", body = Problem),
        (status = 413, description = "The file is over 32 MiB", body = Problem), (status = 422, description = "The file cannot be read as a table of bookings", body = Problem)),
    security(("bearer" = [])))]
pub async fn start_import(
    State(state): State<AppState>,
    Writer(caller): Writer,
    StrictQuery(q): StrictQuery<ImportQuery>,
    ImportFile(body): ImportFile,
) -> Result<Response, ApiError> {
    if body.is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "missing_body",
            "send the file as the request body, for example with curl --data-binary @bookings.csv",
        ));
    }
    let rows = crate::import::rows::read_bytes(&body)
        .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "unreadable_file", format!("{e:#}")))?;
    let actor = caller.actor();
    let id =
        state.imports.start(&state.ledger, rows, None, q.dry_run.unwrap_or(false), actor).await.map_err(|busy| {
            ApiError::new(
                StatusCode::CONFLICT,
                "import_running",
                format!("import {} is still running; wait for it at GET /api/v1/imports/{}", busy.0, busy.0),
            )
            .retry_after_seconds(5)
        })?;
    let run = state.imports.get(&id).await.ok_or_else(|| ApiError::internal("a started import vanished"))?;
    let location = format!("/api/v1/imports/{id}");
    Ok((StatusCode::ACCEPTED, [(header::LOCATION, location)], Json(ImportView::from(run))).into_response())
}

/// An import's progress and, once finished, its report. Imports are kept
/// in memory for their reports until the service restarts.
#[utoipa::path(get, path = "/imports/{id}", tag = "writes", params(("id" = String, Path)),
    responses((status = 200, body = ImportView), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn import_status(
    State(state): State<AppState>,
    Writer(_finance): Writer,
    Path(id): Path<String>,
) -> Result<Json<ImportView>, ApiError> {
    let run = state.imports.get(&id).await.ok_or_else(|| {
        ApiError::not_found(format!(
            "no import {id} is known to this service; reports are kept until it restarts. Import the file again: rows already booked are not booked twice"
        ))
    })?;
    Ok(Json(ImportView::from(run)))
}
