//! The NLGov REST API Design Rules (Logius, the core set of version 2 as
//! published in Logius-standaarden/API-Design-Rules), asserted on the
//! document the server generates and on what it actually sends, so they
//! cannot regress. Each check names its rule.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::Value;
use tower::ServiceExt;

use common::{Backend, TestStore};

const METHODS: [&str; 5] = ["get", "put", "post", "delete", "patch"];

fn operations(doc: &Value) -> Vec<(String, String, &Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("a path item") {
            if METHODS.contains(&method.as_str()) {
                out.push((method.clone(), path.clone(), op));
            }
        }
    }
    out
}

fn is_upper_camel(name: &str) -> bool {
    name.chars().next().is_some_and(|c| c.is_ascii_uppercase()) && name.chars().all(|c| c.is_ascii_alphanumeric())
}

fn is_kebab(segment: &str) -> bool {
    (segment.starts_with('{') && segment.ends_with('}'))
        || (!segment.is_empty()
            && segment.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
            && !segment.starts_with('-')
            && !segment.ends_with('-'))
}

fn is_semver(version: &str) -> bool {
    let core = version.split(['-', '+']).next().unwrap_or("");
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()) && (p == &"0" || !p.starts_with('0')))
}

#[test]
fn the_generated_document_meets_the_design_rules() {
    let doc = wijkbudget::http::openapi();
    let mut failures = Vec::new();

    // /core/uri-version: `servers` carries the major version, prefixed by v.
    let servers = doc["servers"].as_array().cloned().unwrap_or_default();
    if servers.is_empty() || !servers.iter().all(|s| s["url"].as_str().is_some_and(|u| u.ends_with("/v1"))) {
        failures.push(format!("/core/uri-version: servers {servers:?} do not all end in /v1"));
    }
    // /core/semver and the version header's value.
    let version = doc["info"]["version"].as_str().unwrap_or("");
    if !is_semver(version) || !version.starts_with("1.") {
        failures.push(format!("/core/semver: info.version {version:?} is not a 1.x semver"));
    }
    // /core/doc-openapi-contact: name, url and email.
    for key in ["name", "url", "email"] {
        if doc["info"]["contact"][key].as_str().is_none_or(str::is_empty) {
            failures.push(format!("info.contact.{key} is missing"));
        }
    }
    let declared_tags: Vec<&str> =
        doc["tags"].as_array().into_iter().flatten().filter_map(|t| t["name"].as_str()).collect();
    for tag in doc["tags"].as_array().into_iter().flatten() {
        if tag["description"].as_str().is_none_or(str::is_empty) {
            failures.push(format!("tag {} has no description", tag["name"]));
        }
    }
    // UpperCamelCase schema names.
    for name in doc["components"]["schemas"].as_object().expect("schemas").keys() {
        if !is_upper_camel(name) {
            failures.push(format!("schema name {name} is not UpperCamelCase"));
        }
    }
    if doc["components"]["headers"]["API-Version"]["schema"].is_null() {
        failures.push("the API-Version header is not defined under components.headers".into());
    }

    let ops = operations(&doc);
    assert!(ops.len() >= 25, "only {} operations", ops.len());
    for (method, path, op) in ops {
        let at = format!("{method} {path}");
        // /core/no-trailing-slash and kebab-case segments; paths are relative to the server.
        if path.ends_with('/') || path.starts_with("/api/") {
            failures.push(format!("{at}: a trailing slash or a path not relative to the server"));
        }
        for segment in path.split('/').skip(1) {
            if !is_kebab(segment) {
                failures.push(format!("{at}: segment {segment:?} is not kebab-case"));
            }
        }
        if op["description"].as_str().is_none_or(|d| d.trim().is_empty()) {
            failures.push(format!("{at}: no description"));
        }
        let tags: Vec<&str> = op["tags"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        if tags.is_empty() || !tags.iter().all(|t| declared_tags.contains(t)) {
            failures.push(format!("{at}: tags {tags:?} are not all declared in {declared_tags:?}"));
        }
        for (status, response) in op["responses"].as_object().expect("responses") {
            let content = response["content"].as_object();
            match status.chars().next() {
                // /core/version-header: declared on every 2xx and 3xx.
                Some('2' | '3') => {
                    if response["headers"]["API-Version"].is_null() {
                        failures.push(format!("{at} {status}: API-Version is not declared"));
                    }
                }
                // Every error is problem+json, with status, title and detail required.
                Some('4' | '5') => {
                    let types: Vec<&String> = content.map(|c| c.keys().collect()).unwrap_or_default();
                    if types != ["application/problem+json"] {
                        failures
                            .push(format!("{at} {status}: declared as {types:?}, not only application/problem+json"));
                    }
                    let schema = &response["content"]["application/problem+json"]["schema"]["$ref"];
                    if schema != "#/components/schemas/Problem" {
                        failures.push(format!("{at} {status}: the schema is {schema}, not Problem"));
                    }
                }
                _ => failures.push(format!("{at}: status {status}")),
            }
        }
        // The limits the server enforces are in the schema.
        for param in op["parameters"].as_array().into_iter().flatten() {
            if param["name"] == "limit" && (param["schema"]["minimum"] != 1 || param["schema"]["maximum"] != 1000) {
                failures.push(format!("{at}: limit is not documented as 1..=1000: {}", param["schema"]));
            }
        }
    }
    let required: Vec<&str> = doc["components"]["schemas"]["Problem"]["required"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    for key in ["type", "title", "status", "detail", "code"] {
        if !required.contains(&key) {
            failures.push(format!("Problem does not require {key}"));
        }
    }
    let identifier = &doc["components"]["schemas"]["Identifier"];
    if identifier["minLength"] != 1 || identifier["maxLength"] != 64 {
        failures.push(format!("identifiers are not documented as 1 to 64 characters: {identifier}"));
    }
    assert!(failures.is_empty(), "{} design rule failures:\n{}", failures.len(), failures.join("\n"));
}

/// What the server sends keeps the document's promises: every answer names
/// the API's version, and every error is a problem with status, title and
/// detail, even the ones axum would answer by itself.
#[tokio::test]
async fn every_answer_carries_api_version_and_every_error_is_a_problem() {
    let store = TestStore::new(Backend::Sqlite).await;
    let service = wijkbudget::service::Service::open(&store.url).await.unwrap();
    let router = wijkbudget::http::router(wijkbudget::http::AppState::new(service.ledger.clone()));
    let version = wijkbudget::http::openapi()["info"]["version"].as_str().unwrap().to_string();
    let token =
        wijkbudget::auth::create_token(&store.db, wijkbudget::auth::Role::Finance, &[], "finance").await.unwrap();

    let cases: Vec<(&str, &str, Option<&str>, u16)> = vec![
        ("GET", "/api/v1/health", None, 200),
        ("GET", "/api/v1/openapi.json", None, 200),
        ("GET", "/api/v1/wijken", None, 401),
        ("GET", "/api/v1/no-such-thing", None, 404),
        ("DELETE", "/api/v1/wijken", None, 405),
        ("GET", "/api/v1/wijken/", None, 404),
        // A year that is not a number: axum's own refusal, made a problem.
        ("GET", "/api/v1/years/twenty/close-statement", Some(&token), 400),
        ("GET", "/api/v1/events?limit=0", Some(&token), 422),
        ("GET", "/api/v1/events?limit=abc", Some(&token), 400),
    ];
    let mut failures = Vec::new();
    for (method, uri, bearer, status) in cases {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(token) = bearer {
            req = req.header("authorization", format!("Bearer {token}"));
        }
        let resp = router.clone().oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
        let at = format!("{method} {uri}");
        if resp.status() != StatusCode::from_u16(status).unwrap() {
            failures.push(format!("{at}: {} instead of {status}", resp.status()));
        }
        if resp.headers().get("api-version").and_then(|v| v.to_str().ok()) != Some(version.as_str()) {
            failures.push(format!("{at}: API-Version is {:?}, not {version}", resp.headers().get("api-version")));
        }
        if status >= 400 {
            let content_type =
                resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
            let body = axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap();
            let problem: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            if content_type != "application/problem+json" {
                failures.push(format!("{at}: content type {content_type}"));
            }
            if problem["status"] != status
                || problem["title"].as_str().is_none_or(str::is_empty)
                || problem["detail"].as_str().is_none_or(str::is_empty)
            {
                failures.push(format!("{at}: not a problem with status, title and detail: {problem}"));
            }
            if uri.contains("limit=0")
                && (problem["errors"][0]["in"] != "query" || problem["errors"][0]["location"] != "#/limit")
            {
                failures
                    .push(format!("{at}: the invalid-input extension does not point at the query's limit: {problem}"));
            }
        }
    }
    service.db.close().await;
    store.cleanup().await;
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
