//! Request extractors that turn every kind of bad input into a problem
//! response naming the field and the fix.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::error::ApiError;
use super::AppState;
use crate::auth::{authenticate, Caller};
use crate::domain::money::Amount;
use crate::store::chain::canonical_json;

/// The authenticated caller, from `Authorization: Bearer TOKEN`.
impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            // The scheme is case-insensitive (RFC 9110 section 11.1).
            .and_then(|v| v.get(..7).filter(|scheme| scheme.eq_ignore_ascii_case("bearer ")).map(|_| &v[7..]))
            .map(str::trim)
            .filter(|t| !t.is_empty() && t.len() <= 200)
            .ok_or_else(ApiError::unauthorized)?;
        authenticate(state.ledger.db(), token).await?.ok_or_else(ApiError::unauthorized)
    }
}

/// A JSON body parsed strictly: the content type must be JSON, the syntax
/// valid, unknown fields are refused, and a field error names its path.
/// It keeps a fingerprint of the request for idempotency.
pub struct StrictJson<T> {
    pub value: T,
    /// Canonical JSON of the body, so whitespace and key order do not
    /// make a retry look like a different request.
    pub canonical: String,
}

impl<T: DeserializeOwned> FromRequest<AppState> for StrictJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let content_type = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
        let mime = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        if mime != "application/json" {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                format!("send the body as JSON with `Content-Type: application/json` (got `{content_type}`)"),
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body_too_large",
                    format!("the body is larger than the limit of {} bytes; send less", super::BODY_LIMIT),
                )
            } else {
                ApiError::new(StatusCode::BAD_REQUEST, "unreadable_body", "the request body could not be read")
            }
        })?;
        let raw: Value = serde_json::from_slice(&bytes).map_err(|e| {
            ApiError::new(StatusCode::BAD_REQUEST, "malformed_json", format!("the body is not valid JSON: {e}"))
        })?;
        let canonical = canonical_json(&raw);
        let value = serde_path_to_error::deserialize::<_, T>(raw).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner().to_string();
            let field = if path == "." { field_named_in(&inner) } else { Some(path) };
            match field {
                Some(field) => ApiError::invalid(&field, format!("{field}: {inner}")),
                None => ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_body",
                    format!("the body must be a JSON object: {inner}"),
                ),
            }
        })?;
        Ok(Self { value, canonical })
    }
}

/// serde names a missing or unknown field only in its message.
fn field_named_in(message: &str) -> Option<String> {
    if !(message.starts_with("missing field") || message.starts_with("unknown field")) {
        return None;
    }
    let start = message.find('`')? + 1;
    let end = start + message[start..].find('`')?;
    Some(message[start..end].to_string())
}

/// Query parameters with the same strictness as bodies.
pub struct StrictQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for StrictQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Query::<T>::from_request_parts(parts, state).await.map(|Query(q)| Self(q)).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_query",
                format!("{}; check the query parameters", e.body_text()),
            )
        })
    }
}

/// An amount as a request gives it: a decimal string or a JSON number, read
/// from its exact text (serde_json keeps number text with
/// `arbitrary_precision`), never through a float.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AmountInput(pub Amount);

impl<'de> serde::Deserialize<'de> for AmountInput {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = match Value::deserialize(d)? {
            Value::String(s) => s,
            Value::Number(n) => n.to_string(),
            other => {
                return Err(serde::de::Error::custom(format!(
                    "expected a decimal string such as \"1250.00\" or a number, got {other}"
                )))
            }
        };
        Amount::parse(&text).map(Self).map_err(serde::de::Error::custom)
    }
}

impl serde::Serialize for AmountInput {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}
