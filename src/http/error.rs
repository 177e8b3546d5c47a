//! The one place where errors become HTTP: RFC 9457 problem details with a
//! stable `code`, and a sentence that names the field and the fix.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::fund::FundError;
use crate::domain::wijk::WijkError;
use crate::ledger::LedgerError;
use crate::store::repository::AppendRefused;

/// An `application/problem+json` body (RFC 9457), with the invalid-input
/// extension of the NLGov API Design Rules when a request value is at fault.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem; stable, machine-readable.
    #[serde(rename = "type")]
    pub kind: String,
    /// The same, short: `overspend`, `invalid_field`, ...; stable for clients.
    pub code: &'static str,
    pub title: &'static str,
    pub status: u16,
    /// What is wrong and how to fix it.
    pub detail: String,
    /// The request values at fault, if any: where each is, and why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<InvalidInput>,
}

/// One request value at fault (the invalid-input extension's `errors` item).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct InvalidInput {
    /// Where the value was sent: `body`, `query`, `path` or `header`.
    #[serde(rename = "in")]
    pub sent_in: &'static str,
    /// A JSON pointer (RFC 6901) to the value, as a URI fragment: `#/amount`,
    /// `#/decision/adopted_on`; for a parameter, `#/` and its name.
    pub location: String,
    /// The same stable code as the problem's.
    pub code: &'static str,
    pub detail: String,
}

/// Where a faulty request value was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SentIn {
    Body,
    Query,
    Path,
    Header,
}

impl SentIn {
    fn as_str(self) -> &'static str {
        match self {
            Self::Body => "body",
            Self::Query => "query",
            Self::Path => "path",
            Self::Header => "header",
        }
    }
}

/// `decision.adopted_on` or `carry_over[0]` (serde's paths) as a JSON pointer fragment.
fn json_pointer(field: &str) -> String {
    let mut pointer = String::from("#");
    for part in field.split('.').filter(|p| !p.is_empty()) {
        let mut rest = part;
        let name_end = rest.find('[').unwrap_or(rest.len());
        let (name, indices) = rest.split_at(name_end);
        if !name.is_empty() {
            pointer.push('/');
            pointer.push_str(&name.replace('~', "~0").replace('/', "~1"));
        }
        rest = indices;
        while let (Some(open), Some(close)) = (rest.find('['), rest.find(']')) {
            pointer.push('/');
            pointer.push_str(&rest[open + 1..close]);
            rest = &rest[close + 1..];
        }
    }
    pointer
}

/// What a 503 tells a client to wait before retrying: a database restart
/// usually takes a few seconds.
pub const RETRY_AFTER_SECONDS: u64 = 2;

#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    detail: String,
    field: Option<(SentIn, String)>,
    retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Self { status, code, detail: detail.into(), field: None, retry_after: None }
    }

    /// The same error, naming the body field at fault (`amount`,
    /// `decision.adopted_on`).
    pub fn with_field(self, field: impl Into<String>) -> Self {
        self.sent_in(SentIn::Body, field)
    }

    /// The same error, naming the value at fault and where it was sent.
    pub fn sent_in(mut self, sent_in: SentIn, name: impl Into<String>) -> Self {
        self.field = Some((sent_in, name.into()));
        self
    }

    /// The HTTP status this error answers with.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The stable, machine-readable code (`overspend`, `invalid_field`, ...).
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// The sentence saying what is wrong and how to fix it.
    pub fn detail(&self) -> &str {
        &self.detail
    }

    /// The request field at fault (`amount`, `booked_on`, ...), if one is;
    /// a form shows the detail next to this field.
    pub fn field(&self) -> Option<&str> {
        self.field.as_ref().map(|(_, name)| name.as_str())
    }

    /// Where the value at fault was sent, if one is.
    pub fn field_sent_in(&self) -> Option<SentIn> {
        self.field.as_ref().map(|(sent_in, _)| *sent_in)
    }

    /// Another name for [`ApiError::field`].
    pub fn field_name(&self) -> Option<&str> {
        self.field()
    }

    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "send a valid token as `Authorization: Bearer TOKEN`; create one with `wijkbudget token create`",
        )
    }

    pub fn forbidden(what: &str) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", format!("your token's role may not {what}"))
    }

    pub fn not_found(what: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", what)
    }

    pub fn invalid(field: &str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", detail).with_field(field)
    }

    /// Where a request names its fund in the body rather than the path, an
    /// unknown fund is bad input (422 on `fund_id`), not a missing page.
    pub fn fund_named_in_body(self) -> Self {
        if self.code == "unknown_fund" {
            Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "unknown_fund",
                "fund_id names no fund; establish it first with POST /api/v1/funds",
            )
            .with_field("fund_id")
        } else {
            self
        }
    }

    /// A failure inside the service. The cause is logged, never shown.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(%cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the service failed to complete the request; nothing was stored if the request wrote; try again or ask the operator to check the logs",
        )
    }

    /// The database cannot be reached just now (down, restarting, its
    /// connections cut): a 503 with `Retry-After`, because a retry is right
    /// and nothing was stored. The cause is logged, never shown.
    pub fn unavailable(cause: impl std::fmt::Display) -> Self {
        tracing::warn!(%cause, "store unavailable");
        let mut err = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            format!(
                "the ledger's database cannot be reached just now; nothing was stored if the request wrote; \
                 retry after {RETRY_AFTER_SECONDS} seconds (with the same Idempotency-Key, if you sent one)"
            ),
        );
        err.retry_after = Some(RETRY_AFTER_SECONDS);
        err
    }

    /// The same error, telling the client to retry after `seconds`.
    pub fn retry_after_seconds(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// Seconds a client is told to wait in `Retry-After`, if any.
    pub fn retry_after(&self) -> Option<u64> {
        self.retry_after
    }

    fn title(&self) -> &'static str {
        self.status.canonical_reason().unwrap_or("Error")
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(err: sqlx::Error) -> Self {
        if crate::store::is_unavailable(&err) {
            Self::unavailable(err)
        } else {
            Self::internal(err)
        }
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(err: anyhow::Error) -> Self {
        match err.downcast_ref::<sqlx::Error>() {
            Some(sql) if crate::store::is_unavailable(sql) => Self::unavailable(format!("{err:#}")),
            _ => Self::internal(format!("{err:#}")),
        }
    }
}

impl From<LedgerError> for ApiError {
    fn from(err: LedgerError) -> Self {
        use StatusCode as S;
        let detail = err.to_string();
        match err {
            LedgerError::Fund(e) => match e {
                FundError::UnknownFund => Self::new(S::NOT_FOUND, "unknown_fund", detail),
                FundError::UnknownWijk(_) => {
                    Self::new(S::UNPROCESSABLE_ENTITY, "unknown_wijk", detail).with_field("wijk_id")
                }
                FundError::AlreadyEstablished(_) => Self::new(S::CONFLICT, "fund_exists", detail).with_field("fund_id"),
                FundError::FundExhausted { .. } => {
                    Self::new(S::UNPROCESSABLE_ENTITY, "fund_exhausted", detail).with_field("amount")
                }
                FundError::Overspend { .. } => {
                    Self::new(S::UNPROCESSABLE_ENTITY, "overspend", detail).with_field("amount")
                }
                FundError::NotAvailable { .. } => {
                    Self::new(S::UNPROCESSABLE_ENTITY, "not_available", detail).with_field("amount")
                }
                FundError::OutsideFundYear { .. } => {
                    Self::new(S::UNPROCESSABLE_ENTITY, "outside_fund_year", detail).with_field("booked_on")
                }
                FundError::YearClosed { .. } | FundError::YearClosedBookAfter { .. } => {
                    Self::new(S::UNPROCESSABLE_ENTITY, "year_closed", detail).with_field("booked_on")
                }
                FundError::NotPostClosing { .. } => {
                    Self::new(S::UNPROCESSABLE_ENTITY, "not_post_closing", detail).with_field("post_closing")
                }
                FundError::CarryOverDecisionTooLate { .. } => {
                    Self::new(S::UNPROCESSABLE_ENTITY, "carry_over_decision_too_late", detail).with_field("decision")
                }
                FundError::AlreadyClosed(_) => Self::new(S::CONFLICT, "already_closed", detail),
                FundError::BookedTooEarly { .. } => {
                    Self::new(S::UNPROCESSABLE_ENTITY, "booked_too_early", detail).with_field("booked_on")
                }
                FundError::YearClosedForNewFunds(_) => {
                    Self::new(S::UNPROCESSABLE_ENTITY, "year_closed", detail).with_field("year")
                }
                FundError::ExpenseIdTaken(_) | FundError::ExpenseIdUsedElsewhere { .. } => {
                    Self::new(S::CONFLICT, "expense_exists", detail).with_field("expense_id")
                }
                FundError::UnknownExpense { .. } => Self::new(S::NOT_FOUND, "unknown_expense", detail),
                FundError::AlreadyReversed(_) => Self::new(S::UNPROCESSABLE_ENTITY, "already_reversed", detail),
                FundError::PaymentNotReversible(_) => {
                    Self::new(S::UNPROCESSABLE_ENTITY, "payment_not_reversible", detail)
                }
                FundError::MarkPostClosing { .. } => {
                    Self::new(S::UNPROCESSABLE_ENTITY, "mark_post_closing", detail).with_field("post_closing")
                }
                FundError::CommitmentIdTaken(_) => {
                    Self::new(S::CONFLICT, "commitment_exists", detail).with_field("commitment_id")
                }
                FundError::UnknownCommitment { .. } => Self::new(S::NOT_FOUND, "unknown_commitment", detail),
                FundError::CommitmentNotOpen { .. } => {
                    Self::new(S::UNPROCESSABLE_ENTITY, "commitment_not_open", detail)
                }
                FundError::OverPayment { .. } => {
                    Self::new(S::UNPROCESSABLE_ENTITY, "over_payment", detail).with_field("amount")
                }
                FundError::BadSettlement { .. } => {
                    Self::new(S::UNPROCESSABLE_ENTITY, "bad_settlement", detail).with_field("settled_amount")
                }
                FundError::OverRepayment { .. } => {
                    Self::new(S::UNPROCESSABLE_ENTITY, "over_repayment", detail).with_field("amount")
                }
                FundError::TransferToSelf => {
                    Self::new(S::UNPROCESSABLE_ENTITY, "transfer_to_self", detail).with_field("to_wijk")
                }
                FundError::NotInFund(_) => Self::new(S::UNPROCESSABLE_ENTITY, "wijk_not_in_fund", detail),
                FundError::CarryOverYear(_) => Self::new(S::UNPROCESSABLE_ENTITY, "carry_over_year", detail),
                FundError::CarryOverMismatch { .. } | FundError::CarryOverNeedsFund => {
                    Self::new(S::UNPROCESSABLE_ENTITY, "bad_carry_over", detail).with_field("carry_over")
                }
                // The registers are read from the store: failing to read
                // them means the store is unavailable, not a bad request.
                FundError::DirectoryUnavailable(cause) | FundError::ExpenseRegisterUnavailable(cause) => {
                    Self::unavailable(cause)
                }
            },
            LedgerError::Wijk(WijkError::AlreadyRegistered { .. }) => {
                Self::new(S::CONFLICT, "wijk_exists", detail).with_field("wijk_id")
            }
            LedgerError::Refused(AppendRefused::ClientIdTaken { ref kind, .. }) if kind == "commitment" => {
                Self::new(S::CONFLICT, "commitment_exists", detail).with_field("commitment_id")
            }
            LedgerError::Refused(AppendRefused::ClientIdTaken { .. }) => {
                Self::new(S::CONFLICT, "expense_exists", detail).with_field("expense_id")
            }
            LedgerError::Refused(AppendRefused::YearClosed(_)) => {
                Self::new(S::UNPROCESSABLE_ENTITY, "year_closed", detail).with_field("year")
            }
            LedgerError::Refused(AppendRefused::IdempotencyKeyUsed(_)) => Self::new(
                S::CONFLICT,
                "idempotency_key_reused",
                "this Idempotency-Key was already used for a different request; use a new key for a new request",
            ),
            LedgerError::Conflict(_) => Self::new(S::CONFLICT, "concurrent_modification", detail),
            LedgerError::Store(cause) => Self::internal(cause),
            LedgerError::Unavailable(cause) => Self::unavailable(cause),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let errors = self
            .field
            .as_ref()
            .map(|(sent_in, name)| InvalidInput {
                sent_in: sent_in.as_str(),
                location: json_pointer(name),
                code: self.code,
                detail: self.detail.clone(),
            })
            .into_iter()
            .collect();
        let problem = Problem {
            kind: format!("urn:wijkbudget:problem:{}", self.code),
            code: self.code,
            title: self.title(),
            status: self.status.as_u16(),
            detail: self.detail,
            errors,
        };
        let body = serde_json::to_vec(&problem).expect("a problem always serialises");
        let mut response = (self.status, [(header::CONTENT_TYPE, "application/problem+json")], body).into_response();
        if let Some(seconds) = self.retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, seconds.into());
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ids::CommitmentId;

    #[test]
    fn a_domain_refusal_exposes_its_status_code_field_and_detail_to_other_layers() {
        let err = ApiError::from(LedgerError::Fund(FundError::OverPayment {
            commitment_id: CommitmentId::parse("c-1").unwrap(),
            requested: "11.00".into(),
            left: "10.00".into(),
        }));
        assert_eq!(err.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(err.code(), "over_payment");
        assert_eq!(err.field(), Some("amount"));
        assert_eq!(err.field_name(), Some("amount"));
        assert!(err.detail().contains("c-1"), "{}", err.detail());
        assert_eq!(err.field_sent_in(), Some(SentIn::Body));
    }

    #[test]
    fn field_paths_become_json_pointers() {
        for (field, pointer) in [
            ("amount", "#/amount"),
            ("decision.adopted_on", "#/decision/adopted_on"),
            ("carry_over[2]", "#/carry_over/2"),
            ("a[0].b", "#/a/0/b"),
            ("odd/name~", "#/odd~1name~0"),
        ] {
            assert_eq!(json_pointer(field), pointer, "{field}");
        }
    }
}
