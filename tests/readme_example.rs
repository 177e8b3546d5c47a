//! The README's worked example, run as written: every curl line of it,
//! taken from README.md itself, against the real binary serving a temp
//! SQLite file, with each answer's status and key figures checked. If the
//! README and the service drift apart, this test says where.

use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const README: &str = include_str!("../README.md");

/// A `serve` process that is stopped however the test ends.
struct Server {
    child: Child,
    addr: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wijkbudget(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_wijkbudget")).args(args).env("RUST_LOG", "warn").output().expect("the binary runs")
}

fn serve(database: &str) -> Server {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    drop(listener);
    let child = Command::new(env!("CARGO_BIN_EXE_wijkbudget"))
        .args(["serve", "--listen", &addr, "--database", database])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("serve starts");
    let server = Server { child, addr };
    // Start-up migrates and verifies an empty log: well under a second, but
    // a loaded CI machine may take longer, so wait for the port, not a time.
    let started = Instant::now();
    while TcpStream::connect(&server.addr).is_err() {
        assert!(started.elapsed() < Duration::from_secs(60), "serve never listened on {}", server.addr);
        std::thread::sleep(Duration::from_millis(50));
    }
    server
}

/// The first fenced block of `lang` after the line starting with `marker`.
fn readme_block(marker: &str, lang: &str) -> String {
    let rest = &README[README.find(marker).unwrap_or_else(|| panic!("README has no `{marker}`"))..];
    let fence = format!("```{lang}\n");
    let start = rest.find(&fence).unwrap_or_else(|| panic!("no {lang} block after `{marker}`")) + fence.len();
    let end = start + rest[start..].find("```").expect("the block ends");
    rest[start..end].to_string()
}

/// Every fenced block of `lang` in the section that starts with `marker`
/// (up to the next `## ` heading).
fn readme_blocks(marker: &str, lang: &str) -> Vec<String> {
    let rest = &README[README.find(marker).unwrap_or_else(|| panic!("README has no `{marker}`"))..];
    let section = &rest[..rest[marker.len()..].find("\n## ").map_or(rest.len(), |end| end + marker.len())];
    let fence = format!("```{lang}\n");
    section
        .split("```")
        .skip(1)
        .step_by(2)
        .filter_map(|block| block.strip_prefix(&fence[3..]))
        .map(str::to_string)
        .collect()
}

/// Shell statements, one per command: a statement goes on while a single
/// quote is open or its line ends in a backslash.
fn statements(block: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in block.lines() {
        current.push_str(line);
        current.push('\n');
        let open_quote = current.matches('\'').count() % 2 == 1;
        if !open_quote && !line.trim_end().ends_with('\\') {
            out.push(std::mem::take(&mut current));
        }
    }
    assert!(current.is_empty(), "an unfinished statement: {current}");
    out
}

/// One curl line's answer.
#[derive(Debug)]
struct Answer {
    line: String,
    status: u16,
    content_type: String,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{}: not JSON ({e}): {}", self.line, self.body))
    }

    fn expect(&self, status: u16, content_type: &str) -> &Self {
        assert_eq!(self.status, status, "{}\nanswered {}", self.line, self.body);
        assert!(self.content_type.starts_with(content_type), "{}: content type {}", self.line, self.content_type);
        self
    }
}

/// Runs each curl statement of `block` in bash, after the block's other
/// statements (the variables), with `T` set and the README's address
/// pointed at this server. curl's own flags only add where the answer goes.
fn run_curl_lines(block: &str, setup: &str, dir: &Path) -> Vec<Answer> {
    let (curls, vars): (Vec<String>, Vec<String>) =
        statements(block).into_iter().partition(|s| s.trim_start().starts_with("curl "));
    let setup = format!("set -eu\n{setup}\n{}", vars.concat());
    curls
        .into_iter()
        .map(|line| {
            let body = dir.join("answer");
            let instrumented = line.replacen(
                "curl ",
                &format!("curl -sS -o '{}' -w '%{{http_code}} %{{content_type}}' ", body.display()),
                1,
            );
            let output = Command::new("bash")
                .arg("-c")
                .arg(format!("{setup}{instrumented}"))
                .current_dir(dir)
                .output()
                .expect("bash runs");
            let meta = String::from_utf8_lossy(&output.stdout).into_owned();
            assert!(output.status.success(), "{line}\nfailed: {}", String::from_utf8_lossy(&output.stderr));
            let (status, content_type) = meta.split_once(' ').unwrap_or((&meta, ""));
            Answer {
                line: line.trim().to_string(),
                status: status.parse().unwrap_or_else(|_| panic!("{line}: no status in {meta:?}")),
                content_type: content_type.to_string(),
                body: std::fs::read_to_string(&body).unwrap_or_default(),
            }
        })
        .collect()
}

#[test]
fn the_readme_worked_example_runs_as_written_and_books_the_wegaplein() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", dir.path().join("ledger.db").display());
    let created = wijkbudget(&["token", "create", "--role", "finance", "--name", "finance", "--database", &database]);
    assert!(created.status.success(), "{created:?}");
    let token = String::from_utf8(created.stdout).unwrap().trim().to_string();
    let server = serve(&database);

    let example = readme_block("### A worked example", "sh");
    assert!(example.contains("API=http://127.0.0.1:8080/api/v1"), "the example's address: {example}");
    let example = example.replace("127.0.0.1:8080", &server.addr);
    let setup = format!("T='{token}'");
    let answers = run_curl_lines(&example, &setup, dir.path());
    assert_eq!(answers.len(), 7, "the example's curl lines: {answers:#?}");

    answers[0].expect(201, "application/json");
    answers[1].expect(201, "application/json");
    let allocation = answers[2].expect(201, "application/json").json();
    assert_eq!(allocation["resource"]["booked_on"], "2022-01-01", "the default booking date: {allocation}");
    let expense = answers[3].expect(201, "application/json").json();
    assert_eq!(expense["resource"]["booked_on"], "2022-09-15");

    let budget = answers[4].expect(200, "application/json").json();
    let a21 = budget["funds"]
        .as_array()
        .and_then(|funds| funds.iter().find(|f| f["fund_id"] == "A21-182"))
        .unwrap_or_else(|| panic!("A21-182 in the budget: {budget}"));
    assert_eq!(
        [&a21["amount_allocated"], &a21["amount_spent"], &a21["amount_remaining"]],
        ["50000.00", "50000.00", "0.00"],
        "{budget}"
    );

    let fund = answers[5].expect(200, "application/json").json();
    assert_eq!(fund["fund_id"], "A21-182", "{fund}");
    assert!(fund.to_string().contains("Herinrichting Wegaplein"), "what A21-182 was spent on: {fund}");

    let csv = &answers[6].expect(200, "text/csv").body;
    assert!(csv.lines().count() >= 3, "a header, the allocation and the expense: {csv}");
    assert!(csv.contains("Herinrichting Wegaplein") && csv.contains("-50000.00"), "{csv}");

    // The 51st euro: refused exactly as the README shows, and nothing stored.
    // Its block uses the example's variables.
    let variables: String = statements(&example).into_iter().filter(|s| !s.trim_start().starts_with("curl ")).collect();
    let setup = format!("{setup}\n{variables}");
    let refusal = readme_block("A 51st euro is refused", "sh");
    let refused = run_curl_lines(&refusal, &setup, dir.path());
    assert_eq!(refused.len(), 1, "one curl line for the 51st euro: {refused:#?}");
    let problem = refused[0].expect(422, "application/problem+json").json();
    let documented: Value =
        serde_json::from_str(&readme_block("A 51st euro is refused", "json")).expect("the README's problem is JSON");
    assert_eq!(problem, documented, "the README's refusal is the service's");
    let budget_after = run_curl_lines(&answers[4].line, &setup, dir.path());
    assert_eq!(budget_after[0].json(), budget, "the refused expense stored nothing");
}

/// Runs each `wijkbudget` line of a README block in `dir`, as written but
/// for the binary's path; each must succeed.
fn run_block_lines(block: &str, dir: &Path) {
    for line in block.lines().filter(|l| l.starts_with("wijkbudget ")) {
        let args: Vec<&str> = line.trim_start_matches("wijkbudget ").split_whitespace().collect();
        let output = Command::new(env!("CARGO_BIN_EXE_wijkbudget"))
            .args(&args)
            .current_dir(dir)
            .env("RUST_LOG", "warn")
            .env_remove("DATABASE_URL")
            .output()
            .expect("the binary runs");
        assert!(
            output.status.success(),
            "`{line}` failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

#[test]
fn the_readmes_import_and_export_lines_run_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let examples = dir.path().join("examples");
    std::fs::create_dir(&examples).unwrap();
    let demo_file = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/demo-import.csv");
    std::fs::copy(&demo_file, examples.join("demo-import.csv")).unwrap();
    for block in readme_blocks("## Importing the books", "sh") {
        run_block_lines(&block, dir.path());
    }
    assert!(dir.path().join("books.db").exists(), "the import made its ledger");
    // The export lines read the demo's ledger: the demo file imported stands in for `demo`.
    let imported = wijkbudget(&[
        "import",
        "--file",
        demo_file.to_str().unwrap(),
        "--database",
        &format!("sqlite://{}", dir.path().join("wijkbudget-demo.db").display()),
    ]);
    assert!(imported.status.success(), "{}", String::from_utf8_lossy(&imported.stderr));
    let blocks = readme_blocks("## Taking the books out", "sh");
    assert_eq!(blocks.len(), 3, "the section's blocks: {blocks:?}");
    for block in blocks {
        run_block_lines(&block, dir.path());
    }
    for file in
        ["audittrail-2022.xlsx", "jaarafsluiting-2021.csv", "subsidieregister-2022.csv", "boekingen.xlsx", "copy.db"]
    {
        assert!(dir.path().join(file).exists(), "the README's export wrote {file}");
    }
}

#[test]
fn the_readmes_import_over_the_api_runs_as_written_and_its_report_is_at_the_id_it_names() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("examples")).unwrap();
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/demo-import.csv"),
        dir.path().join("examples/demo-import.csv"),
    )
    .unwrap();
    let database = format!("sqlite://{}", dir.path().join("ledger.db").display());
    let created = wijkbudget(&["token", "create", "--role", "finance", "--name", "finance", "--database", &database]);
    assert!(created.status.success(), "{created:?}");
    let token = String::from_utf8(created.stdout).unwrap().trim().to_string();
    let server = serve(&database);
    let setup = format!("T='{token}'");

    let blocks = readme_blocks("## Importing the books", "sh");
    let api = blocks.iter().find(|b| b.contains("curl ")).expect("the section shows the API's import");
    let started = run_curl_lines(&api.replace("127.0.0.1:8080", &server.addr), &setup, dir.path());
    assert_eq!(started.len(), 1, "{started:#?}");
    let started = started[0].expect(202, "application/json").json();
    let id = started["id"].as_str().expect("the answer has the import's id");
    let follow = format!("curl -s -H \"Authorization: Bearer $T\" http://{}/api/v1/imports/{id}\n", server.addr);
    for _ in 0..600 {
        let report = run_curl_lines(&follow, &setup, dir.path()).remove(0).expect(200, "application/json").json();
        if report["status"] != "running" {
            assert_eq!(report["status"], "finished", "{report}");
            assert_eq!(report["problems"], serde_json::json!([]), "{report}");
            assert_eq!(report["booked"], 0, "a dry run books nothing: {report}");
            assert!(report["rows"].as_u64().unwrap() > 100, "{report}");
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("the import did not finish in 60 s");
}
