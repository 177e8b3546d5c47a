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

/// An `application/problem+json` body.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem; stable, machine-readable.
    #[serde(rename = "type")]
    pub kind: String,
    /// The same, short: `overspend`, `invalid_field`, ...
    pub code: &'static str,
    pub title: &'static str,
    pub status: u16,
    /// What is wrong and how to fix it.
    pub detail: String,
    /// The request field at fault, if one is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    detail: String,
    field: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Self { status, code, detail: detail.into(), field: None }
    }

    /// The same error, naming the request field at fault.
    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
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
        self.field.as_deref()
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

    fn title(&self) -> &'static str {
        self.status.canonical_reason().unwrap_or("Error")
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(err: sqlx::Error) -> Self {
        Self::internal(err)
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(err: anyhow::Error) -> Self {
        Self::internal(format!("{err:#}"))
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
                FundError::DirectoryUnavailable(cause) | FundError::ExpenseRegisterUnavailable(cause) => {
                    Self::internal(cause)
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
            LedgerError::Refused(AppendRefused::IdempotencyKeyUsed(_)) => Self::new(
                S::CONFLICT,
                "idempotency_key_reused",
                "this Idempotency-Key was already used for a different request; use a new key for a new request",
            ),
            LedgerError::Conflict(_) => Self::new(S::CONFLICT, "concurrent_modification", detail),
            LedgerError::Store(cause) => Self::internal(cause),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let problem = Problem {
            kind: format!("urn:wijkbudget:problem:{}", self.code),
            code: self.code,
            title: self.title(),
            status: self.status.as_u16(),
            detail: self.detail,
            field: self.field,
        };
        let body = serde_json::to_vec(&problem).expect("a problem always serialises");
        (self.status, [(header::CONTENT_TYPE, "application/problem+json")], body).into_response()
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
    }
}
