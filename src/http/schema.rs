//! The OpenAPI document as the server serves it: the shapes the route table
//! cannot say by itself (bounded ids, texts and amounts), and the NLGov API
//! Design Rules applied to the whole document in one place.

use std::borrow::Cow;

use serde_json::{json, Map, Value};
use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Schema, Type};
use utoipa::openapi::RefOr;
use utoipa::{PartialSchema, ToSchema};

use crate::domain::ids::TEXT_MAX;
use crate::domain::money::AMOUNT_MAX;

/// The API's version: semver, its major in the base path (`/api/v1`), and
/// sent on every answer as `API-Version`.
pub const API_VERSION: &str = "1.0.0";
/// The base path the document's `servers` entry names.
pub const BASE_PATH: &str = "/api/v1";
/// The header that carries [`API_VERSION`].
pub const API_VERSION_HEADER: &str = "api-version";

/// An identifier chosen by a client or by finance (wijk, fund, expense, commitment).
pub struct Identifier;

impl PartialSchema for Identifier {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .min_length(Some(1))
            .max_length(Some(crate::domain::ids::ID_MAX))
            .pattern(Some("^[A-Za-z0-9._-]+$"))
            .description(Some("1 to 64 letters, digits, '-', '_' or '.'"))
            .examples([json!("oost-1223")])
            .into()
    }
}

impl ToSchema for Identifier {
    fn name() -> Cow<'static, str> {
        "Identifier".into()
    }
}

/// Free text a person typed: trimmed, non-empty, bounded, no control characters.
pub struct BoundedText;

impl PartialSchema for BoundedText {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .min_length(Some(1))
            .max_length(Some(TEXT_MAX))
            .pattern(Some(
                r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$",
            ))
            .description(Some("Up to 500 characters after trimming, at least one visible, no control characters"))
            .into()
    }
}

impl ToSchema for BoundedText {
    fn name() -> Cow<'static, str> {
        "BoundedText".into()
    }
}

/// An amount of euro in a request: a decimal string or a JSON number, above
/// zero, at most two decimals, at most a billion.
pub struct AmountText;

impl PartialSchema for AmountText {
    fn schema() -> RefOr<Schema> {
        let max = AMOUNT_MAX.to_string();
        OneOfBuilder::new()
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .pattern(Some(r"^(0\.(0[1-9]|[1-9][0-9]?)|[1-9][0-9]{0,8}(\.[0-9]{1,2})?|1000000000(\.00?)?)$")),
            )
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::Number)
                    .exclusive_minimum(Some(0.0))
                    .maximum(Some(max.parse::<f64>().expect("a number")))
                    .multiple_of(Some(0.01)),
            )
            .description(Some("Euro, above 0 and at most 1000000000, with at most two decimals: \"1250.00\" or 1250"))
            .into()
    }
}

impl ToSchema for AmountText {
    fn name() -> Cow<'static, str> {
        "AmountText".into()
    }
}

/// A settled amount in a request: like [`AmountText`], but zero is allowed.
pub struct SettledAmountText;

impl PartialSchema for SettledAmountText {
    fn schema() -> RefOr<Schema> {
        OneOfBuilder::new()
            .item(ObjectBuilder::new().schema_type(Type::String).pattern(Some(r"^[0-9]{1,10}(\.[0-9]{1,2})?$")))
            .item(ObjectBuilder::new().schema_type(Type::Number).minimum(Some(0.0)).multiple_of(Some(0.01)))
            .description(Some("Euro, from 0 up to the committed amount, with at most two decimals"))
            .into()
    }
}

impl ToSchema for SettledAmountText {
    fn name() -> Cow<'static, str> {
        "SettledAmountText".into()
    }
}

/// The tags every operation must carry one of, with what they group.
pub const TAGS: [(&str, &str); 5] = [
    ("writes", "Wijken, funds, allocations, expenses and reversals: finance only"),
    ("reads", "Budgets, audit trails, funds and the event log, each role seeing what it may"),
    ("lifecycle", "Commitments, payments, settlements, repayments, withdrawals, transfers and the year's close"),
    ("reports", "Spending per theme, stale commitments and the year's close statement"),
    ("service", "Health and readiness"),
];

/// Applies the design rules the route table cannot express to a generated
/// document: `servers` with the major version, contact, semver version,
/// declared tags, UpperCamelCase schema names, problem+json for every error,
/// `API-Version` on every success, 503 with `Retry-After` where the store is
/// used, and a description on every operation.
pub fn conform(mut doc: Value) -> Value {
    doc["servers"] = json!([{ "url": BASE_PATH, "description": "this server" }]);
    doc["info"]["version"] = json!(API_VERSION);
    if let Some(info) = doc["info"].as_object_mut() {
        // utoipa copies Cargo's empty license; an empty name is no license.
        if info.get("license").is_some_and(|l| l["name"] == "") {
            info.remove("license");
        }
    }
    doc["info"]["contact"] = json!({
        "name": "wijkbudget maintainers",
        "url": "https://wijkbudget.example.org",
        "email": "wijkbudget@example.org",
    });
    doc["tags"] = TAGS.iter().map(|(name, description)| json!({ "name": name, "description": description })).collect();

    // Paths are relative to the server's base path.
    if let Some(paths) = doc["paths"].as_object_mut() {
        let relative: Map<String, Value> = std::mem::take(paths)
            .into_iter()
            .map(|(path, item)| (path.strip_prefix(BASE_PATH).unwrap_or(&path).to_string(), item))
            .collect();
        *paths = relative;
    }

    // Generic instances (`Written_Transfer`) get UpperCamelCase names.
    let mut renames = Vec::new();
    if let Some(schemas) = doc["components"]["schemas"].as_object_mut() {
        let names: Vec<String> = schemas.keys().filter(|k| k.contains('_')).cloned().collect();
        for old in names {
            let new = upper_camel(&old);
            let schema = schemas.remove(&old).expect("listed above");
            schemas.insert(new.clone(), schema);
            renames.push((format!("#/components/schemas/{old}"), format!("#/components/schemas/{new}")));
        }
    }
    rewrite_refs(&mut doc, &renames);

    let components = doc["components"].as_object_mut().expect("components");
    components.entry("headers").or_insert_with(|| json!({})).as_object_mut().expect("headers").extend([
        (
            "API-Version".to_string(),
            json!({
                "description": "The full version of the API that answered (semver)",
                "schema": { "type": "string", "example": API_VERSION },
            }),
        ),
        (
            "Retry-After".to_string(),
            json!({
                "description": "Seconds to wait before retrying; the request was not carried out",
                "schema": { "type": "integer", "minimum": 1 },
            }),
        ),
    ]);

    if let Some(paths) = doc["paths"].as_object_mut() {
        for (path, item) in paths.iter_mut() {
            for (_, op) in item.as_object_mut().expect("a path item").iter_mut() {
                conform_operation(path, op);
            }
        }
    }
    doc
}

/// The reads that answer CSV when asked with `Accept: text/csv`.
pub const CSV_ROUTES: [&str; 5] = [
    "/wijken/{wijk_id}/audit-trail",
    "/reports/themes",
    "/reports/stale-commitments",
    "/reports/subsidy-register",
    "/years/{year}/close-statement",
];

/// The reads that answer an XLSX workbook when asked for one in `Accept`.
pub const XLSX_ROUTES: [&str; 2] = ["/wijken/{wijk_id}/audit-trail", "/years/{year}/close-statement"];

fn conform_operation(path: &str, op: &mut Value) {
    if let Some(content) = op.pointer_mut("/responses/200/content").and_then(Value::as_object_mut) {
        if CSV_ROUTES.contains(&path) {
            content.insert("text/csv".into(), json!({ "schema": { "type": "string" } }));
        }
        if XLSX_ROUTES.contains(&path) {
            content.insert(
                crate::spreadsheet::XLSX_MEDIA_TYPE.into(),
                json!({ "schema": { "type": "string", "contentMediaType": crate::spreadsheet::XLSX_MEDIA_TYPE } }),
            );
        }
    }
    if super::writes::KEY_REQUIRED.contains(&path) {
        for param in op["parameters"].as_array_mut().into_iter().flatten() {
            if param["name"] == "Idempotency-Key" {
                param["required"] = json!(true);
                param["description"] = json!(
                    "Required: this write has no id of its own. A new unique value per booking, the same on a retry"
                );
            }
        }
        op["responses"]["428"] = json!({
            "description": "No Idempotency-Key; nothing was stored",
            "content": { "application/problem+json": { "schema": { "$ref": "#/components/schemas/Problem" } } },
        });
    }
    if op.get("description").is_none() {
        if let Some(summary) = op.get("summary").cloned() {
            op["description"] = summary;
        }
    }
    // The refusals every operation of a kind can meet, from the extractors
    // and layers in front of its handler, documented where they apply.
    let params: Vec<String> = op["parameters"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["in"].as_str().map(str::to_string))
        .collect();
    let secured = op.get("security").is_some_and(|s| s.as_array().is_some_and(|a| !a.is_empty()));
    let has_body = op.get("requestBody").is_some();
    // An import's body is a file, not JSON, with a limit of its own.
    let json_body = op.pointer("/requestBody/content/application~1json").is_some();
    let mut common: Vec<(&str, &str)> = Vec::new();
    if params.iter().any(|p| p == "path" || p == "query") || has_body {
        common.push(("400", "The path, query or body cannot be read"));
    }
    if params.iter().any(|p| p == "path") {
        common.push(("404", "No such resource"));
    }
    if params.iter().any(|p| p == "query") || has_body {
        common.push(("422", "A value is outside what the API accepts; `errors` says which"));
    }
    if secured {
        common.push(("401", "No valid token"));
        common.push(("403", "The token's role may not do this"));
    }
    if json_body {
        common.push(("413", "The body is over 64 KiB"));
        common.push(("415", "The body is not sent as application/json"));
    }
    let Some(responses) = op["responses"].as_object_mut() else { return };
    for (status, description) in common {
        responses.entry(status).or_insert_with(|| {
            json!({
                "description": description,
                "content": { "application/problem+json": { "schema": { "$ref": "#/components/schemas/Problem" } } },
            })
        });
    }
    if path != "/health" && path != "/openapi.json" {
        responses.entry("503").or_insert_with(|| {
            json!({
                "description": "The store is unreachable for now; nothing was done. Retry after the Retry-After seconds",
                "headers": { "Retry-After": { "$ref": "#/components/headers/Retry-After" } },
                "content": { "application/problem+json": { "schema": { "$ref": "#/components/schemas/Problem" } } },
            })
        });
    }
    for (status, response) in responses.iter_mut() {
        let Some(response) = response.as_object_mut() else { continue };
        if status.starts_with('4') || status.starts_with('5') {
            response.entry("description").or_insert_with(|| json!(reason(status)));
            let content = response.entry("content").or_insert_with(|| json!({}));
            let schema = content
                .as_object_mut()
                .and_then(|c| c.remove("application/json"))
                .unwrap_or_else(|| json!({ "schema": { "$ref": "#/components/schemas/Problem" } }));
            content["application/problem+json"] = schema;
        } else if status.starts_with('2') || status.starts_with('3') {
            let headers = response.entry("headers").or_insert_with(|| json!({}));
            headers["API-Version"] = json!({ "$ref": "#/components/headers/API-Version" });
        }
        if response.get("description").is_some_and(|d| d == "") {
            response.insert("description".into(), json!(reason(status)));
        }
    }
}

fn reason(status: &str) -> String {
    status
        .parse::<u16>()
        .ok()
        .and_then(|s| axum::http::StatusCode::from_u16(s).ok())
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Answer")
        .to_string()
}

/// `Written_Transfer` -> `WrittenTransfer`, `Vec_Foo` -> `VecFoo`.
fn upper_camel(name: &str) -> String {
    name.split('_')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut chars = p.chars();
            chars.next().map(|c| c.to_ascii_uppercase().to_string() + chars.as_str()).unwrap_or_default()
        })
        .collect()
}

fn rewrite_refs(value: &mut Value, renames: &[(String, String)]) {
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                if key == "$ref" {
                    if let Some((_, new)) = renames.iter().find(|(old, _)| v == old) {
                        *v = json!(new);
                    }
                } else {
                    rewrite_refs(v, renames);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| rewrite_refs(v, renames)),
        _ => {}
    }
}
