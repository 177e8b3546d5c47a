//! Commands over HTTP. Every write is idempotent under an `Idempotency-Key`,
//! answers 201 with the resource and the positions of its events, and
//! returns only once the read models include it (read-your-writes).

use std::future::Future;
use std::time::Duration;

use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use super::error::{ApiError, Problem};
use super::extract::{AmountInput, StrictJson};
use super::schema::{AmountText, BoundedText, Identifier};
use super::AppState;
use crate::auth::{Caller, Role};
use crate::domain::fund::{Decision, ExpenseDetails, FundCommand, FundError, FundKind, FundTerms};
use crate::domain::ids::{ExpenseId, FundId, Text, WijkId, Year};
use crate::domain::wijk::WijkCommand;
use crate::ledger::{CommandMeta, Idempotency, LedgerError, Outcome};
use crate::store::repository::AppendRefused;

/// How long a write waits for the projector before answering anyway.
const READ_YOUR_WRITES_WAIT: Duration = Duration::from_secs(5);
const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// A caller allowed to write: finance only. Checked before the body is read,
/// so a refused caller learns nothing about validation.
pub struct Writer(pub Caller);

impl FromRequestParts<AppState> for Writer {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let caller = Caller::from_request_parts(parts, state).await?;
        if caller.role != Role::Finance {
            return Err(ApiError::forbidden("write to the ledger; only finance tokens may"));
        }
        Ok(Self(caller))
    }
}

/// The global log positions of the events a write stored.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
pub struct Positions {
    pub first: i64,
    pub last: i64,
}

/// A write's answer: the resource, and where its events sit in the log
/// (absent when the request changed nothing because it was already true).
#[derive(Debug, Serialize, ToSchema)]
pub struct Written<T: ToSchema> {
    pub resource: T,
    pub positions: Option<Positions>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterWijk {
    #[schema(value_type = Identifier, example = "oost-1223")]
    pub wijk_id: WijkId,
    #[schema(value_type = BoundedText, example = "Oost 1223")]
    pub name: Text,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionInput {
    #[schema(value_type = BoundedText, example = "A21-182")]
    pub reference: Text,
    pub adopted_on: NaiveDate,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EstablishFund {
    #[schema(value_type = Identifier, example = "A21-182")]
    pub fund_id: FundId,
    #[schema(value_type = i32, example = 2022)]
    pub year: Year,
    pub kind: FundKind,
    #[schema(value_type = BoundedText)]
    pub name: Text,
    #[schema(value_type = AmountText, example = "50000.00")]
    pub amount: AmountInput,
    pub decision: DecisionInput,
    /// The doelbinding: what the money may be spent on.
    #[schema(value_type = BoundedText)]
    pub purpose: Text,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Allocate {
    #[schema(value_type = Identifier, example = "oost-1223")]
    pub wijk_id: WijkId,
    #[schema(value_type = AmountText, example = "50000.00")]
    pub amount: AmountInput,
    #[schema(value_type = BoundedText)]
    pub reason: Text,
    /// Defaults to the day the fund's money entered the ledger: its
    /// decision's adoption date, or the first day of its year when the
    /// decision came before the year.
    pub booked_on: Option<NaiveDate>,
}

/// An allocation as recorded, with the booking date it was given.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Allocation {
    pub fund_id: String,
    pub wijk_id: String,
    #[schema(value_type = AmountText, example = "50000.00")]
    pub amount: AmountInput,
    pub reason: String,
    pub booked_on: NaiveDate,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecordExpense {
    #[schema(value_type = Identifier, example = "2022-oost-1223-wegaplein")]
    pub expense_id: ExpenseId,
    #[schema(value_type = Identifier, example = "oost-1223")]
    pub wijk_id: WijkId,
    #[schema(value_type = Identifier, example = "A21-182")]
    pub fund_id: FundId,
    #[schema(value_type = AmountText, example = "50000.00")]
    pub amount: AmountInput,
    #[schema(value_type = BoundedText, example = "Herinrichting Wegaplein")]
    pub initiative: Text,
    #[schema(value_type = BoundedText, example = "spelen")]
    pub theme: Text,
    pub booked_on: NaiveDate,
    /// The document behind the payment, such as an invoice number.
    #[schema(value_type = BoundedText, example = "factuur 2022-0042")]
    pub reference: Text,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Reverse {
    #[schema(value_type = BoundedText, example = "dubbel geboekt")]
    pub reason: Text,
    /// Must be true once the fund's year is closed, and only then: the
    /// reversal is then an explicitly marked post-closing correction, and
    /// its money lapses.
    #[serde(default)]
    pub post_closing: bool,
    /// The day the correction is booked. In an open year: within the fund's
    /// year and not before the expense (default today, kept within that
    /// range). A post-closing correction: after the closed year (default today).
    pub booked_on: Option<NaiveDate>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Reversal {
    pub expense_id: String,
    pub fund_id: String,
    pub reason: String,
}

fn fingerprint(route: &str, canonical_body: &str) -> String {
    hex::encode(Sha256::digest(format!("{route}\n{canonical_body}").as_bytes()))
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get(IDEMPOTENCY_KEY) else { return Ok(None) };
    let key = value.to_str().unwrap_or("");
    if key.is_empty() || key.len() > 200 || !key.chars().all(|c| c.is_ascii_graphic()) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_idempotency_key",
            "Idempotency-Key must be 1 to 200 visible ASCII characters, such as a UUID",
        ));
    }
    Ok(Some(key.to_string()))
}

/// The money-moving writes whose body names no id of its own, so that a
/// retry could not be told from a second booking: they require an
/// `Idempotency-Key` (428 without one). Every other write is safe to retry
/// by itself: it carries the client's id for what it creates (`wijk_id`,
/// `fund_id`, `expense_id`, `commitment_id`) and a repeat changes nothing, or
/// it can happen only once (a reversal, settlement, withdrawal, year close).
pub const KEY_REQUIRED: [&str; 3] =
    ["/funds/{fund_id}/allocations", "/funds/{fund_id}/transfers", "/commitments/{commitment_id}/repayments"];

/// Refuses a write on a [`KEY_REQUIRED`] route that carries no key.
pub(super) fn require_idempotency_key(headers: &HeaderMap) -> Result<(), ApiError> {
    if headers.contains_key(IDEMPOTENCY_KEY) {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::PRECONDITION_REQUIRED,
        "idempotency_key_required",
        "this write moves money and its body has no id of its own, so a retry could book it twice: send an \
         `Idempotency-Key` header with a new unique value (such as a UUID) for each booking, and the same value \
         when you retry it",
    )
    .sent_in(super::error::SentIn::Header, "Idempotency-Key"))
}

fn written<T: Serialize + ToSchema>(status: StatusCode, resource: T, positions: Option<Positions>) -> Response {
    (status, Json(Written { resource, positions })).into_response()
}

/// Runs one write with idempotency: a key seen before with the same request
/// answers as the first time did, with a different request 409; the key is
/// claimed and checked in the same transaction as the events, so even
/// concurrent duplicates book once.
pub(super) async fn write<T, F, Fut>(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    route: &str,
    canonical_body: &str,
    resource: T,
    run: F,
) -> Result<Response, ApiError>
where
    T: Serialize + ToSchema,
    F: FnOnce(CommandMeta) -> Fut,
    Fut: Future<Output = Result<Outcome, LedgerError>>,
{
    let key = idempotency_key(headers)?;
    let fingerprint = fingerprint(route, canonical_body);
    // A stored key answers as the first request did, or refuses a different one.
    let replay = |key: &str, record: Option<(String, i64, i64)>| -> Option<Result<Positions, ApiError>> {
        let (stored, first, last) = record?;
        Some(if stored == fingerprint {
            Ok(Positions { first, last })
        } else {
            Err(LedgerError::Refused(AppendRefused::IdempotencyKeyUsed(key.to_string())).into())
        })
    };
    // No read of the key first: the group commit checks the key in the
    // transaction that would store it, and refuses a used one, so a command
    // that is recorded never used its key before. Any other outcome looks
    // the key up afterwards and answers as the first request did.
    let correlation_id = super::correlation_id(headers);
    let meta = CommandMeta {
        actor: caller.actor(),
        correlation_id,
        idempotency: key.clone().map(|key| Idempotency { key, fingerprint: fingerprint.clone() }),
    };
    let outcome = run(meta).await;
    if let (Some(key), false) = (&key, matches!(outcome, Ok(Outcome::Recorded { .. }))) {
        // A retry, or a concurrent duplicate that won the race: answer as
        // the first did. (A retry is decided again first, and refused or
        // found unchanged; its decision is never what it answers.)
        if let Some(result) = replay(key, state.ledger.idempotency_record(key).await?) {
            return Ok(written(StatusCode::CREATED, resource, Some(result?)));
        }
    }
    match outcome? {
        Outcome::Recorded { first_position, last_position } => {
            if !state.ledger.wait_for_projection(last_position, READ_YOUR_WRITES_WAIT).await {
                tracing::warn!(last_position, "the projector is behind; answering before the read models caught up");
            }
            Ok(written(StatusCode::CREATED, resource, Some(Positions { first: first_position, last: last_position })))
        }
        Outcome::Unchanged => Ok(written(StatusCode::OK, resource, None)),
    }
}

/// Registers a wijk.
#[utoipa::path(post, path = "/wijken", tag = "writes", request_body = RegisterWijk,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe")),
    responses(
        (status = 201, description = "Registered", body = Written<RegisterWijk>),
        (status = 200, description = "Already registered with this name; nothing stored", body = Written<RegisterWijk>),
        (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 409, description = "The wijk id exists under another name", body = Problem),
        (status = 413, body = Problem), (status = 415, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn register_wijk(
    State(state): State<AppState>,
    Writer(caller): Writer,
    headers: HeaderMap,
    body: StrictJson<RegisterWijk>,
) -> Result<Response, ApiError> {
    let req = body.value.clone();
    let command = WijkCommand::Register { wijk_id: req.wijk_id.clone(), name: req.name.clone() };
    let ledger = state.ledger.clone();
    write(&state, &caller, &headers, "POST /wijken", &body.canonical, req, |meta| async move {
        ledger.register_wijk(command, &meta).await
    })
    .await
}

/// Establishes a fund: a year's begroting, an amendement or a begrotingswijziging.
#[utoipa::path(post, path = "/funds", tag = "writes", request_body = EstablishFund,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe")),
    responses(
        (status = 201, description = "Established", body = Written<EstablishFund>),
        (status = 200, description = "Already established with these terms; nothing stored", body = Written<EstablishFund>),
        (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 409, description = "The fund id exists with other terms", body = Problem),
        (status = 413, body = Problem), (status = 415, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn establish_fund(
    State(state): State<AppState>,
    Writer(caller): Writer,
    headers: HeaderMap,
    body: StrictJson<EstablishFund>,
) -> Result<Response, ApiError> {
    let req = body.value.clone();
    let terms = FundTerms {
        fund_id: req.fund_id.clone(),
        year: req.year,
        kind: req.kind,
        name: req.name.clone(),
        amount: req.amount.0,
        decision: Decision { reference: req.decision.reference.clone(), adopted_on: req.decision.adopted_on },
        purpose: req.purpose.clone(),
    };
    let fund_id = req.fund_id.clone();
    let ledger = state.ledger.clone();
    write(&state, &caller, &headers, "POST /funds", &body.canonical, req, |meta| async move {
        ledger.fund(&fund_id, FundCommand::Establish(terms), &meta).await
    })
    .await
}

/// Allocates money from a fund to a wijk, for the fund's year.
#[utoipa::path(post, path = "/funds/{fund_id}/allocations", tag = "writes", request_body = Allocate,
    params(("fund_id" = String, Path), ("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe")),
    responses(
        (status = 201, description = "Allocated", body = Written<Allocation>),
        (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, description = "No such fund", body = Problem), (status = 409, body = Problem),
        (status = 413, body = Problem), (status = 415, body = Problem),
        (status = 422, description = "Unknown wijk, fund exhausted, or booked outside the fund's year", body = Problem)),
    security(("bearer" = [])))]
pub async fn allocate(
    State(state): State<AppState>,
    Writer(caller): Writer,
    Path(fund_id): Path<String>,
    headers: HeaderMap,
    body: StrictJson<Allocate>,
) -> Result<Response, ApiError> {
    let fund_id = FundId::parse(&fund_id).map_err(|e| ApiError::not_found(format!("fund id in the path {e}")))?;
    require_idempotency_key(&headers)?;
    let req = body.value.clone();
    let booked_on = match req.booked_on {
        Some(date) => date,
        None => {
            let fund = state.ledger.load_fund(&fund_id).await?;
            fund.default_allocation_date().ok_or(LedgerError::Fund(FundError::UnknownFund))?
        }
    };
    let command = FundCommand::Allocate {
        wijk_id: req.wijk_id.clone(),
        amount: req.amount.0,
        reason: req.reason.clone(),
        booked_on,
    };
    let resource = Allocation {
        fund_id: fund_id.to_string(),
        wijk_id: req.wijk_id.to_string(),
        amount: req.amount,
        reason: req.reason.to_string(),
        booked_on,
    };
    let route = format!("POST /funds/{fund_id}/allocations");
    let ledger = state.ledger.clone();
    write(&state, &caller, &headers, &route, &body.canonical, resource, |meta| async move {
        ledger.fund(&fund_id, command, &meta).await
    })
    .await
}

/// Records an expense: a wijk spends from one fund for an initiative.
#[utoipa::path(post, path = "/expenses", tag = "writes", request_body = RecordExpense,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe")),
    responses(
        (status = 201, description = "Recorded", body = Written<RecordExpense>),
        (status = 200, description = "Already recorded with these details; nothing stored", body = Written<RecordExpense>),
        (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 409, description = "The expense id is taken by another expense", body = Problem),
        (status = 413, body = Problem), (status = 415, body = Problem),
        (status = 422, description = "Overspend, unknown wijk or fund, or booked outside the fund's year", body = Problem)),
    security(("bearer" = [])))]
pub async fn record_expense(
    State(state): State<AppState>,
    Writer(caller): Writer,
    headers: HeaderMap,
    body: StrictJson<RecordExpense>,
) -> Result<Response, ApiError> {
    let req = body.value.clone();
    let fund_id = req.fund_id.clone();
    let command = FundCommand::RecordExpense(ExpenseDetails {
        expense_id: req.expense_id.clone(),
        wijk_id: req.wijk_id.clone(),
        amount: req.amount.0,
        initiative: req.initiative.clone(),
        theme: req.theme.clone(),
        booked_on: req.booked_on,
        reference: req.reference.clone(),
    });
    let ledger = state.ledger.clone();
    let result = write(&state, &caller, &headers, "POST /expenses", &body.canonical, req, |meta| async move {
        ledger.fund(&fund_id, command, &meta).await
    })
    .await;
    result.map_err(ApiError::fund_named_in_body)
}

/// Reverses an expense: a correction event that moves the money back and
/// references the original. Nothing is edited or deleted.
#[utoipa::path(post, path = "/expenses/{expense_id}/reversal", tag = "writes", request_body = Reverse,
    params(("expense_id" = String, Path), ("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe")),
    responses(
        (status = 201, description = "Reversed", body = Written<Reversal>),
        (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, description = "No such expense", body = Problem), (status = 409, body = Problem),
        (status = 413, body = Problem), (status = 415, body = Problem),
        (status = 422, description = "Already reversed", body = Problem)),
    security(("bearer" = [])))]
pub async fn reverse_expense(
    State(state): State<AppState>,
    Writer(caller): Writer,
    Path(expense_id): Path<String>,
    headers: HeaderMap,
    body: StrictJson<Reverse>,
) -> Result<Response, ApiError> {
    let not_found =
        || ApiError::new(StatusCode::NOT_FOUND, "unknown_expense", format!("no expense has id `{expense_id}`"));
    let id = ExpenseId::parse(&expense_id).map_err(|_| not_found())?;
    let fund_id = state.ledger.fund_of_expense(&id).await?.ok_or_else(not_found)?;
    let req = body.value.clone();
    let command = FundCommand::ReverseExpense {
        expense_id: id.clone(),
        reason: req.reason.clone(),
        booked_on: req.booked_on,
        requested_on: Utc::now().date_naive(),
        post_closing: req.post_closing,
    };
    let resource =
        Reversal { expense_id: id.to_string(), fund_id: fund_id.to_string(), reason: req.reason.to_string() };
    let route = format!("POST /expenses/{id}/reversal");
    let ledger = state.ledger.clone();
    write(&state, &caller, &headers, &route, &body.canonical, resource, |meta| async move {
        ledger.fund(&fund_id, command, &meta).await
    })
    .await
}
