//! Contract fuzzing: requests for every documented operation, generated from
//! the OpenAPI document the server serves, sent as each role through the real
//! router to a real store holding the demo data. Valid, boundary and invalid
//! bodies, parameters and headers. Every answer must:
//! - never be a 5xx;
//! - have a status and content type the document lists for the operation,
//!   and a body that matches the documented schema;
//! - store nothing when it refuses (the log's head is unchanged);
//! - show a wijkregisseur no other wijk's data.
//!
//! The run is bounded and repeatable: proptest with a fixed seed and a fixed
//! case budget (`CASES`); a failure prints the request that caused it.

mod common;

use std::collections::BTreeSet;

use axum::body::Body;
use axum::http::Request;
use axum::Router;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Map, Value};
use tower::ServiceExt;

use common::{Backend, TestStore};
use wijkbudget::auth::{create_token, Role};
use wijkbudget::store::Db;

/// Requests per run: each takes a few milliseconds, so the run stays well
/// inside a minute on two cores.
const CASES: u32 = 3000;
const SEED: [u8; 32] = *b"wijkbudget contract fuzzing 2026";
const OWN_WIJK: &str = "oost-1223";

/// One documented operation.
#[derive(Debug, Clone)]
struct Op {
    method: String,
    path: String,
    params: Vec<Value>,
    body: Option<Value>,
    responses: Map<String, Value>,
}

/// How a case bends the request away from valid.
#[derive(Debug, Clone, Copy)]
enum Mode {
    Valid,
    MissingField,
    UnknownField,
    WrongType,
    Boundary,
    BadParameter,
}

struct World {
    doc: Value,
    ops: Vec<Op>,
    router: Router,
    db: Db,
    tokens: Vec<(&'static str, String)>,
    ids: Ids,
    /// How many answers of each method and status the run saw.
    seen: std::sync::Mutex<std::collections::BTreeMap<String, u32>>,
}

/// Ids that exist in the store, so generated requests reach the domain.
#[derive(Debug, Default)]
struct Ids {
    wijken: Vec<String>,
    funds: Vec<String>,
    expenses: Vec<String>,
    commitments: Vec<String>,
}

fn operations(doc: &Value) -> Vec<Op> {
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if !["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                continue;
            }
            ops.push(Op {
                method: method.to_uppercase(),
                path: path.clone(),
                params: op["parameters"].as_array().cloned().unwrap_or_default(),
                body: op["requestBody"]["content"]["application/json"]["schema"].as_object().map(|s| json!(s)),
                responses: op["responses"].as_object().cloned().unwrap_or_default(),
            });
        }
    }
    ops
}

fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(r) => resolve(doc, doc.pointer(r.trim_start_matches('#')).unwrap_or(&Value::Null)),
        None => schema,
    }
}

fn pick<'a, T>(rng: &mut StdRng, items: &'a [T]) -> &'a T {
    &items[rng.gen_range(0..items.len())]
}

fn random_id(rng: &mut StdRng) -> String {
    let len = *pick(rng, &[1usize, 3, 8, 20, 64]);
    (0..len).map(|_| *pick(rng, b"abcdefghijklmnopqrstuvwxyz0123456789-_.") as char).collect()
}

fn known_or_new(rng: &mut StdRng, known: &[String]) -> String {
    if !known.is_empty() && rng.gen_bool(0.8) {
        pick(rng, known).clone()
    } else {
        random_id(rng)
    }
}

fn date(rng: &mut StdRng) -> String {
    let year = *pick(rng, &[2020, 2021, 2022, 2022, 2022, 2023, 2024]);
    let (month, day) = *pick(rng, &[(1, 1), (1, 4), (3, 15), (6, 30), (9, 15), (12, 31), (2, 28)]);
    format!("{year}-{month:02}-{day:02}")
}

fn amount(rng: &mut StdRng) -> Value {
    let text = match rng.gen_range(0..8) {
        0 => "0.01".to_string(),
        1 => "1000000000.00".to_string(),
        2 => format!("{}", rng.gen_range(1..100_000)),
        3 => format!("{}.{:02}", rng.gen_range(0..5_000), rng.gen_range(1..100)),
        _ => format!("{}.00", rng.gen_range(1..2_000)),
    };
    if rng.gen_bool(0.2) {
        serde_json::from_str(&text).unwrap()
    } else {
        json!(text)
    }
}

/// A value for `schema`, valid unless `mode` says otherwise at the top.
fn generate(world: &World, rng: &mut StdRng, name: &str, schema: &Value, depth: usize) -> Value {
    let doc = &world.doc;
    let ids = &world.ids;
    let schema = resolve(doc, schema);
    if let Some(choices) = schema["oneOf"].as_array().or(schema["anyOf"].as_array()) {
        let choice = pick(rng, choices).clone();
        return generate(world, rng, name, &choice, depth);
    }
    if let Some(options) = schema["enum"].as_array() {
        return pick(rng, options).clone();
    }
    // Names first: they tell what a string means to the domain.
    match name {
        "wijk_id" | "from_wijk" | "to_wijk" => return json!(known_or_new(rng, &ids.wijken)),
        "fund_id" => return json!(known_or_new(rng, &ids.funds)),
        "expense_id" => return json!(known_or_new(rng, &ids.expenses)),
        "commitment_id" => return json!(known_or_new(rng, &ids.commitments)),
        "amount" | "settled_amount" => return amount(rng),
        "year" => return json!(*pick(rng, &[2021, 2022, 2022, 2023])),
        _ => {}
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    let non_null: Vec<&str> = types.iter().copied().filter(|t| *t != "null").collect();
    if non_null.is_empty() && types.contains(&"null") {
        return Value::Null;
    }
    if types.contains(&"null") && rng.gen_bool(0.1) {
        return Value::Null;
    }
    match non_null.first().copied().unwrap_or("object") {
        "string" if schema["format"] == "date" => json!(date(rng)),
        "string" => {
            let words = ["Burendag", "Wegaplein", "spelen", "groen", "factuur 42", "Raadsbesluit", "x"];
            let mut text = pick(rng, &words).to_string();
            if let Some(max) = schema["maxLength"].as_u64() {
                text.truncate(max as usize);
            }
            if let Some(pattern) = schema["pattern"].as_str() {
                if pattern.contains("A-Za-z0-9") {
                    text = random_id(rng);
                }
            }
            json!(text)
        }
        "integer" => {
            let min = schema["minimum"].as_i64().unwrap_or(0);
            let max = schema["maximum"].as_i64().unwrap_or(min + 1000);
            let inside = rng.gen_range(min..=max);
            json!(*pick(rng, &[min, max, inside]))
        }
        "number" => amount(rng),
        "boolean" => json!(rng.gen_bool(0.5)),
        "array" => {
            let n = if depth > 3 { 0 } else { rng.gen_range(0..3) };
            let item = schema["items"].clone();
            Value::Array((0..n).map(|_| generate(world, rng, name, &item, depth + 1)).collect())
        }
        _ => {
            let mut out = Map::new();
            let required: BTreeSet<&str> =
                schema["required"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
            for (key, sub) in schema["properties"].as_object().into_iter().flatten() {
                if required.contains(key.as_str()) || rng.gen_bool(0.5) {
                    out.insert(key.clone(), generate(world, rng, key, sub, depth + 1));
                }
            }
            Value::Object(out)
        }
    }
}

/// Bends a valid body as `mode` says.
fn bend(rng: &mut StdRng, body: &mut Value, mode: Mode) {
    let Some(object) = body.as_object_mut() else { return };
    let keys: Vec<String> = object.keys().cloned().collect();
    match mode {
        Mode::MissingField if !keys.is_empty() => {
            object.remove(pick(rng, &keys));
        }
        Mode::UnknownField => {
            object.insert("surprise".into(), json!(1));
        }
        Mode::WrongType if !keys.is_empty() => {
            let key = pick(rng, &keys).clone();
            object.insert(key, pick(rng, &[json!(true), json!([]), json!({}), json!(-1), json!("")]).clone());
        }
        Mode::Boundary if !keys.is_empty() => {
            let key = pick(rng, &keys).clone();
            let value = pick(
                rng,
                &[
                    json!("a".repeat(64)),
                    json!("a".repeat(65)),
                    json!("a".repeat(501)),
                    json!(" "),
                    json!("0.001"),
                    json!("-1"),
                    json!("0"),
                ],
            )
            .clone();
            object.insert(key, value);
        }
        _ => {}
    }
}

fn path_value(world: &World, rng: &mut StdRng, name: &str, mode: Mode) -> String {
    if matches!(mode, Mode::BadParameter) && rng.gen_bool(0.5) {
        return pick(rng, &["a".repeat(65), "x%20y".to_string(), "-".to_string(), "%F0%9F%92%B0".to_string()]).clone();
    }
    let ids = &world.ids;
    match name {
        "wijk_id" => known_or_new(rng, &ids.wijken),
        "fund_id" => known_or_new(rng, &ids.funds),
        "expense_id" => known_or_new(rng, &ids.expenses),
        "commitment_id" => known_or_new(rng, &ids.commitments),
        "year" => pick(rng, &["2021", "2022", "2023", "1999", "2101", "twenty"]).to_string(),
        _ => random_id(rng),
    }
}

fn query_value(world: &World, rng: &mut StdRng, param: &Value, mode: Mode) -> String {
    let name = param["name"].as_str().unwrap_or("");
    if matches!(mode, Mode::BadParameter) && rng.gen_bool(0.5) {
        return pick(rng, &["0", "1001", "abc", "-1", "2022-13-01", ""]).to_string();
    }
    let schema = resolve(&world.doc, &param["schema"]);
    match name {
        "limit" => pick(rng, &["1", "2", "100", "1000"]).to_string(),
        "after" => rng.gen_range(0..300).to_string(),
        "as_of" => date(rng),
        "year" => pick(rng, &["2021", "2022", "2023"]).to_string(),
        _ => match generate(world, rng, name, schema, 0) {
            Value::String(s) => s,
            Value::Null => String::new(),
            other => other.to_string(),
        },
    }
}

/// What one case sends.
#[derive(Debug)]
struct Sent {
    method: String,
    uri: String,
    role: &'static str,
    headers: Vec<(String, String)>,
    body: Option<String>,
}

fn build(world: &World, op: &Op, role: usize, seed: u64, mode: Mode) -> Sent {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut path = op.path.clone();
    let mut query = Vec::new();
    let mut headers = Vec::new();
    for param in &op.params {
        let name = param["name"].as_str().unwrap_or("");
        match param["in"].as_str() {
            Some("path") => path = path.replace(&format!("{{{name}}}"), &path_value(world, &mut rng, name, mode)),
            Some("query") if param["required"] == true || rng.gen_bool(0.5) => {
                query.push(format!("{name}={}", query_value(world, &mut rng, param, mode)))
            }
            Some("header") if name.eq_ignore_ascii_case("idempotency-key") && rng.gen_bool(0.8) => {
                let key = if matches!(mode, Mode::BadParameter) && rng.gen_bool(0.5) {
                    pick(&mut rng, &["x".repeat(201), " ".to_string()]).clone()
                } else {
                    format!("fuzz-{}", rng.gen::<u64>())
                };
                headers.push(("idempotency-key".to_string(), key));
            }
            _ => {}
        }
    }
    if matches!(mode, Mode::BadParameter) && rng.gen_bool(0.3) {
        query.push("unknown_parameter=1".into());
    }
    let body = op.body.as_ref().map(|schema| {
        let mut value = generate(world, &mut rng, "", schema, 0);
        bend(&mut rng, &mut value, mode);
        value.to_string()
    });
    if op.method == "GET" && rng.gen_bool(0.2) {
        headers.push(("accept".into(), "text/csv".into()));
    }
    let uri = if query.is_empty() { format!("/api/v1{path}") } else { format!("/api/v1{path}?{}", query.join("&")) };
    Sent { method: op.method.clone(), uri, role: world.tokens[role].0, headers, body }
}

/// Checks `value` against the subset of JSON Schema the document uses.
fn conforms(doc: &Value, schema: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
    let schema = resolve(doc, schema);
    if let Some(choices) = schema["oneOf"].as_array().or(schema["anyOf"].as_array()) {
        let fits = choices.iter().filter(|c| {
            let mut e = Vec::new();
            conforms(doc, c, value, at, &mut e);
            e.is_empty()
        });
        if fits.count() == 0 {
            errors.push(format!("{at}: {value} matches none of {}", Value::Array(choices.clone())));
        }
        return;
    }
    if let Some(all) = schema["allOf"].as_array() {
        all.iter().for_each(|s| conforms(doc, s, value, at, errors));
    }
    if let Some(options) = schema["enum"].as_array() {
        if !options.contains(value) {
            errors.push(format!("{at}: {value} is not one of {options:?}"));
        }
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => return,
    };
    let fits = types.iter().any(|t| match *t {
        "null" => value.is_null(),
        "string" => value.is_string(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        "array" => value.is_array(),
        "object" => value.is_object(),
        _ => true,
    });
    if !fits {
        errors.push(format!("{at}: {value} is not {types:?}"));
        return;
    }
    if let (Some(items), Some(array)) = (schema.get("items"), value.as_array()) {
        for (i, item) in array.iter().enumerate() {
            conforms(doc, items, item, &format!("{at}/{i}"), errors);
        }
    }
    if let Some(object) = value.as_object() {
        for key in schema["required"].as_array().into_iter().flatten().filter_map(Value::as_str) {
            if !object.contains_key(key) {
                errors.push(format!("{at}: required `{key}` is missing"));
            }
        }
        let properties = schema["properties"].as_object();
        for (key, sub) in object {
            match properties.and_then(|p| p.get(key)) {
                Some(sub_schema) => conforms(doc, sub_schema, sub, &format!("{at}/{key}"), errors),
                None if schema["additionalProperties"] == false => {
                    errors.push(format!("{at}: `{key}` is not documented"))
                }
                None => {}
            }
        }
    }
}

/// Every `wijk_id` in a wijkregisseur's answer must be their own.
fn foreign_wijken(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                if key == "wijk_id" && v.as_str().is_some_and(|w| w != OWN_WIJK) {
                    out.push(v.to_string());
                }
                foreign_wijken(v, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| foreign_wijken(v, out)),
        _ => {}
    }
}

async fn head(db: &Db) -> i64 {
    wijkbudget::projections::status(db).await.expect("the store answers").1
}

async fn check(world: &World, op: &Op, sent: Sent) -> Result<(), String> {
    let token = &world.tokens.iter().find(|(r, _)| *r == sent.role).unwrap().1;
    let mut req = Request::builder().method(sent.method.as_str()).uri(&sent.uri);
    req = req.header("authorization", format!("Bearer {token}"));
    for (name, value) in &sent.headers {
        req = req.header(name.as_str(), value.as_str());
    }
    if sent.body.is_some() {
        req = req.header("content-type", "application/json");
    }
    let before = head(&world.db).await;
    let request = match req.body(Body::from(sent.body.clone().unwrap_or_default())) {
        Ok(r) => r,
        // A header value the HTTP library itself refuses never leaves a client.
        Err(_) => return Ok(()),
    };
    let resp = world.router.clone().oneshot(request).await.unwrap();
    let status = resp.status().as_u16();
    *world.seen.lock().unwrap().entry(format!("{} {status}", sent.method)).or_default() += 1;
    let content_type = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let bytes = axum::body::to_bytes(resp.into_body(), 16 << 20).await.unwrap();
    let after = head(&world.db).await;
    let text = String::from_utf8_lossy(&bytes);
    let mut errors = Vec::new();
    if status >= 500 {
        errors.push(format!("a {status}"));
    }
    match op.responses.get(&status.to_string()) {
        None => errors.push(format!("status {status} is not documented (documented: {:?})", op.responses.keys())),
        Some(documented) => {
            let mime = content_type.split(';').next().unwrap_or("").trim();
            match documented["content"].get(mime) {
                None if bytes.is_empty() && documented["content"].is_null() => {}
                None => errors.push(format!("content type `{content_type}` is not documented for {status}")),
                Some(media) if mime.ends_with("json") => match serde_json::from_slice::<Value>(&bytes) {
                    Ok(body) => {
                        conforms(&world.doc, &media["schema"], &body, "#", &mut errors);
                        if sent.role == "wijkregisseur" && status < 300 {
                            let mut foreign = Vec::new();
                            foreign_wijken(&body, &mut foreign);
                            if !foreign.is_empty() {
                                errors.push(format!("a wijkregisseur saw wijken {foreign:?}"));
                            }
                        }
                    }
                    Err(e) => errors.push(format!("the body is not JSON: {e}")),
                },
                Some(_) => {
                    if sent.role == "wijkregisseur" && status < 300 && mime == "text/csv" {
                        let others =
                            world.ids.wijken.iter().filter(|w| *w != OWN_WIJK && text.contains(&format!(",{w},")));
                        let others: Vec<_> = others.collect();
                        if !others.is_empty() {
                            errors.push(format!("a wijkregisseur's CSV names wijken {others:?}"));
                        }
                    }
                }
            }
        }
    }
    if status >= 400 && after != before {
        errors.push(format!("refused with {status}, yet the log's head moved {before} -> {after}"));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        let shown: String = text.chars().take(600).collect();
        Err(format!(
            "{} {} as {} {:?} body {:?}\nanswered {status} {content_type}: {shown}\n- {}",
            sent.method,
            sent.uri,
            sent.role,
            sent.headers,
            sent.body,
            errors.join("\n- ")
        ))
    }
}

async fn world(store: &TestStore) -> (World, tokio::sync::watch::Sender<bool>, tokio::task::JoinHandle<()>) {
    let service = wijkbudget::service::Service::open(&store.url).await.unwrap();
    wijkbudget::demo::load(&service.ledger, |_, _| {}).await.unwrap();
    service.projector.catch_up(|_| {}).await.unwrap();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let wijkbudget::service::Service { db, ledger, projector } = service;
    let projector = tokio::spawn(projector.run(stopped));
    let mut tokens = Vec::new();
    for (name, role) in [
        ("finance", Role::Finance),
        ("auditor", Role::Auditor),
        ("council", Role::Council),
        ("wijkregisseur", Role::Wijkregisseur),
    ] {
        let wijken = if role == Role::Wijkregisseur { vec![OWN_WIJK.to_string()] } else { vec![] };
        tokens.push((name, create_token(&db, role, &wijken, name).await.unwrap()));
    }
    // A caller without a valid token: every secured operation must say 401.
    tokens.push(("nobody", "wb_not_a_token".to_string()));
    let strings = |sql: &'static str| {
        let db = db.clone();
        async move { wijkbudget::on_db!(&db, pool => sqlx::query_scalar::<_, String>(sql).fetch_all(pool).await.unwrap()) }
    };
    let ids = Ids {
        wijken: strings("SELECT wijk_id FROM rm_wijken ORDER BY wijk_id").await,
        funds: strings("SELECT fund_id FROM rm_funds ORDER BY fund_id").await,
        expenses: strings("SELECT expense_id FROM rm_expenses ORDER BY expense_id").await,
        commitments: strings("SELECT commitment_id FROM rm_commitments ORDER BY commitment_id").await,
    };
    assert!(!ids.wijken.is_empty() && !ids.funds.is_empty() && !ids.commitments.is_empty(), "{ids:?}");
    let router = wijkbudget::http::router(wijkbudget::http::AppState::new(ledger));
    let doc = wijkbudget::http::openapi();
    let ops = operations(&doc);
    (World { doc, ops, router, db, tokens, ids, seen: Default::default() }, stop, projector)
}

#[test]
fn every_generated_request_gets_a_documented_answer_and_a_refusal_stores_nothing() {
    for backend in common::BACKENDS {
        fuzz(backend);
    }
}

fn fuzz(backend: Backend) {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let store = runtime.block_on(TestStore::new(backend));
    let (world, stop, projector) = runtime.block_on(world(&store));
    let modes = [
        Mode::Valid,
        Mode::Valid,
        Mode::Valid,
        Mode::MissingField,
        Mode::UnknownField,
        Mode::WrongType,
        Mode::Boundary,
        Mode::BadParameter,
    ];
    let config = Config { cases: CASES, failure_persistence: None, max_shrink_iters: 200, ..Config::default() };
    let mut runner = TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &SEED));
    // Half the cases as finance, the only role that writes.
    let roles = prop_oneof![Just(0usize), 0..world.tokens.len()];
    let cases = (0..world.ops.len(), roles, any::<u64>(), 0..modes.len());
    let result = runner.run(&cases, |(op, role, seed, mode)| {
        let op = &world.ops[op];
        let sent = build(&world, op, role, seed, modes[mode]);
        runtime.block_on(check(&world, op, sent)).map_err(TestCaseError::fail)
    });
    eprintln!("{backend:?}: answers seen: {:?}", world.seen.lock().unwrap());
    let _ = stop.send(true);
    runtime.block_on(async {
        projector.await.unwrap();
        store.cleanup().await;
    });
    if let Err(failure) = result {
        panic!("{backend:?}: {failure}");
    }
}
