//! The OpenAPI document matches what the API answers.

use super::*;

// ---------------------------------------------------------------------------
// 5. The OpenAPI document
// ---------------------------------------------------------------------------

fn collect_refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                if k == "$ref" {
                    if let Some(r) = v.as_str() {
                        out.push(r.to_string());
                    }
                }
                collect_refs(v, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

#[tokio::test]
async fn the_openapi_document_is_3_1_and_documents_every_route() {
    let app = App::start(Backend::Sqlite).await;
    seed(&app).await;
    let doc = app.get("/openapi.json").send().await.expect_json(200);
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.1")), "openapi is {}", doc["openapi"]);
    assert_eq!(
        doc,
        serde_json::to_value(wijkbudget::http::openapi()).unwrap(),
        "the served document differs from openapi()"
    );
    let paths = doc["paths"].as_object().expect("paths");

    // Every exercised route is documented (the document does not list itself).
    let mut failures = Vec::new();
    for (method, template) in ROUTES.iter().chain(LIFECYCLE_ROUTES).filter(|(_, t)| *t != "/openapi.json") {
        // Paths are relative to the document's server, `/api/v1`.
        let documented = paths.get(*template).and_then(|item| item.get(method.to_lowercase()));
        match documented {
            None => failures.push(format!("{method} {API}{template} is not documented")),
            Some(op) => {
                let statuses: Vec<&String> =
                    op["responses"].as_object().map(|r| r.keys().collect()).unwrap_or_default();
                if !statuses.iter().any(|s| s.starts_with('2')) {
                    failures.push(format!("{method} {template} documents no success response"));
                }
                let public = ["/health", "/ready"].contains(template);
                let secured = op["security"].as_array().is_some_and(|s| s.iter().any(|r| r.get("bearer").is_some()));
                if secured == public {
                    failures.push(format!("{method} {template}: security is {}", op["security"]));
                }
                if !public && !(statuses.iter().any(|s| *s == "401") && statuses.iter().any(|s| *s == "403")) {
                    failures.push(format!("{method} {template} does not document 401 and 403"));
                }
                if method == &"POST" && op["requestBody"]["content"]["application/json"].is_null() {
                    failures.push(format!("{method} {template} documents no JSON request body"));
                }
            }
        }
    }

    // Every documented operation is routed: it never meets the fallback's
    // "no such path" nor a 405. (A 404 for a missing resource is fine.)
    let exercised: BTreeSet<(String, String)> =
        ROUTES.iter().chain(LIFECYCLE_ROUTES).map(|(m, t)| (m.to_lowercase(), t.to_string())).collect();
    let methods = ["get", "put", "post", "delete", "patch", "head", "options", "trace"];
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap().iter().filter(|(k, _)| methods.contains(&k.as_str())) {
            if !exercised.contains(&(method.clone(), path.clone())) {
                eprintln!("note: {method} {path} is documented; this file does not exercise it beyond routing");
            }
            // Parameters: a path parameter is in the template, and the template's are declared.
            let declared: Vec<(&str, &str)> = op["parameters"]
                .as_array()
                .map(|ps| {
                    ps.iter().map(|p| (p["name"].as_str().unwrap_or(""), p["in"].as_str().unwrap_or(""))).collect()
                })
                .unwrap_or_default();
            for (name, location) in &declared {
                if *location == "path" && !path.contains(&format!("{{{name}}}")) {
                    failures.push(format!("{method} {path}: parameter `{name}` is documented as a path parameter, but the path has no {{{name}}} (it is a query parameter)"));
                }
            }
            for segment in path.split('/').filter(|s| s.starts_with('{')) {
                let name = segment.trim_matches(|c| c == '{' || c == '}');
                if !declared.contains(&(name, "path")) {
                    failures.push(format!("{method} {path}: path parameter `{name}` is not declared"));
                }
            }
            let concrete = path
                .strip_prefix(API)
                .unwrap_or(path)
                .replace("{wijk_id}", OOST)
                .replace("{fund_id}", FUND)
                .replace("{expense_id}", WEGAPLEIN)
                .replace("{commitment_id}", "c-1")
                .replace("{year}", "2022");
            let head = app.head().await;
            // No body: a write answers 415 before it does anything.
            let resp = app.req(method.to_uppercase().parse().unwrap(), &concrete).by(Who::Finance).send().await;
            let unrouted = resp.status == StatusCode::METHOD_NOT_ALLOWED
                || (resp.status == StatusCode::NOT_FOUND && resp.text().contains("no such path"));
            if unrouted {
                failures.push(format!("documented {method} {path} is not routed: {} {}", resp.status, resp.text()));
            }
            if app.head().await != head {
                failures.push(format!("documented {method} {path} stored events for a request without a body"));
            }
        }
    }

    // Every reference resolves, and bearer auth and Problem are defined.
    let mut refs = Vec::new();
    collect_refs(&doc, &mut refs);
    for r in refs {
        let target = r.strip_prefix('#').map(|p| doc.pointer(p));
        if !matches!(target, Some(Some(_))) {
            failures.push(format!("unresolved $ref {r}"));
        }
    }
    assert_eq!(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    assert!(doc["components"]["schemas"]["Problem"].is_object());
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());

    // The document validates, if the validator happens to be installed. A
    // second run on a copy with misplaced path parameters moved to the query
    // shows whether anything else is wrong.
    match validate_openapi(&doc) {
        None => eprintln!("openapi-spec-validator is not installed; only the structural checks ran"),
        Some(Ok(())) => {}
        Some(Err(why)) => {
            failures.push(format!("openapi-spec-validator: {why}"));
            let mut repaired = doc.clone();
            for (path, item) in repaired["paths"].as_object_mut().unwrap() {
                for op in item.as_object_mut().unwrap().values_mut() {
                    for param in op.get_mut("parameters").and_then(Value::as_array_mut).into_iter().flatten() {
                        let name = param["name"].as_str().unwrap_or("").to_string();
                        if param["in"] == "path" && !path.contains(&format!("{{{name}}}")) {
                            param["in"] = json!("query");
                            param["required"] = json!(false);
                        }
                    }
                }
            }
            if let Some(Err(why)) = validate_openapi(&repaired) {
                failures.push(format!("openapi-spec-validator, with query parameters repaired: {why}"));
            }
        }
    }
    app.finish().await;
    assert_no_failures("OpenAPI", &failures);
}

/// Runs Python's openapi-spec-validator on a document; None if it is not installed.
fn validate_openapi(doc: &Value) -> Option<Result<(), String>> {
    let probe = std::process::Command::new("python3").args(["-c", "import openapi_spec_validator"]).output();
    if !probe.is_ok_and(|o| o.status.success()) {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, serde_json::to_vec(doc).unwrap()).unwrap();
    let script = "import json, sys\n\
                  from openapi_spec_validator import validate\n\
                  try:\n    validate(json.load(open(sys.argv[1])))\n\
                  except Exception as e:\n    sys.exit(type(e).__name__ + ': ' + str(e)[:400])";
    let out = std::process::Command::new("python3").args(["-c", script]).arg(&file).output().unwrap();
    Some(if out.status.success() { Ok(()) } else { Err(String::from_utf8_lossy(&out.stderr).trim().to_string()) })
}
