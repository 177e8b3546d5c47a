//! The web app in a real headless Chromium, driven over WebDriver: each
//! role signs in and reads the same figures the API gives, is refused what
//! it may not see, and finance books through the form. axe-core checks
//! every page for WCAG 2.1 AA violations.
//!
//! Needs Debian's `chromium` and `chromium-driver`, and the `axe-core`
//! package in `~/.cache/wijkbudget` (or `WIJKBUDGET_AXE`); `.ci/run`
//! installs all three. Without them these tests fail and say how to get
//! them: they are never skipped. With `WIJKBUDGET_SCREENSHOTS=DIR` they
//! save each role's main page there (`docs/screenshots` for the README).

mod common;
mod web;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{Backend, TestStore};
use fantoccini::actions::InputSource;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use web::dutch_euro;
use wijkbudget::auth::{create_token, Role};
use wijkbudget::service::Service;

/// The service with the demo loaded, serving over a real socket.
struct Server {
    base: String,
    api_tokens: Vec<(Role, String)>,
    _store: TestStore,
}

impl Server {
    async fn start() -> Self {
        let store = TestStore::new(Backend::Sqlite).await;
        let service = Service::open(&store.url).await.expect("the service opens");
        wijkbudget::demo::load(&service.ledger, |_, _| {}).await.expect("the demo loads");
        let mut api_tokens = Vec::new();
        for (role, name, wijken) in [
            (Role::Finance, "Fenna Financiën", vec![]),
            (Role::Wijkregisseur, "Ward Regisseur", vec!["oost-1223".to_string()]),
            (Role::Council, "Cor Raadslid", vec![]),
            (Role::Auditor, "Anna Auditor", vec![]),
        ] {
            api_tokens.push((role, create_token(&service.db, role, &wijken, name).await.unwrap()));
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let ready = move |addr: SocketAddr| {
                let _ = tx.send(addr);
            };
            service.serve("127.0.0.1:0".parse().unwrap(), ready).await.expect("the service serves");
        });
        let addr = rx.await.expect("the service starts");
        Self { base: format!("http://{addr}"), api_tokens, _store: store }
    }

    fn token(&self, role: Role) -> &str {
        &self.api_tokens.iter().find(|(r, _)| *r == role).unwrap().1
    }

    /// The API's JSON answer, over HTTP like any client.
    async fn api(&self, role: Role, path: &str) -> Value {
        let url = format!("{}/api/v1{path}", self.base);
        let output = tokio::process::Command::new("curl")
            .args(["-sf", "-H", &format!("Authorization: Bearer {}", self.token(role)), &url])
            .output()
            .await
            .expect("curl runs");
        assert!(output.status.success(), "GET {url} failed");
        serde_json::from_slice(&output.stdout).expect("the API answers JSON")
    }
}

/// A headless Chromium under its own chromedriver.
struct Browser {
    client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
    axe: String,
}

fn find_program(env: &str, name: &str) -> PathBuf {
    if let Ok(path) = std::env::var(env) {
        return PathBuf::from(path);
    }
    for dir in ["/usr/bin", "/usr/local/bin", "/usr/lib/chromium"] {
        let path = PathBuf::from(dir).join(name);
        if path.exists() {
            return path;
        }
    }
    panic!(
        "{name} is not installed. The browser tests need Debian's chromium and chromium-driver: \
         run `bash .ci/run`, or `apt-get install chromium chromium-driver` (or set {env})"
    );
}

fn axe_source() -> String {
    let path = std::env::var("WIJKBUDGET_AXE").map(PathBuf::from).unwrap_or_else(|_| {
        PathBuf::from(std::env::var("HOME").unwrap_or_default())
            .join(".cache/wijkbudget/node_modules/axe-core/axe.min.js")
    });
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "axe-core is not at {} ({e}). Install it with `bash .ci/run`, or \
             `npm install --prefix ~/.cache/wijkbudget axe-core@4.10.3` (or set WIJKBUDGET_AXE)",
            path.display()
        )
    })
}

/// A failing test must not leave its chromedriver (and with it Chromium) running.
impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Browser {
    async fn start() -> Self {
        let axe = axe_source();
        let chromium = find_program("WIJKBUDGET_CHROMIUM", "chromium");
        let chromedriver = find_program("WIJKBUDGET_CHROMEDRIVER", "chromedriver");
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let driver = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{} does not start: {e}", chromedriver.display()));
        let profile = tempfile::tempdir().unwrap();
        // The flags this machine needs: no sandbox as root, and no calls home
        // on a closed network.
        let capabilities = json!({
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                    "--no-first-run", "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--window-size=1280,1000", "--lang=nl-NL",
                    format!("--user-data-dir={}", profile.path().display()),
                ]
            }
        });
        let capabilities = capabilities.as_object().unwrap().clone();
        let mut last_error = String::new();
        for _ in 0..50 {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector)
                .capabilities(capabilities.clone())
                .connect(&format!("http://127.0.0.1:{port}"))
                .await
            {
                Ok(client) => return Self { client, driver, _profile: profile, axe },
                Err(e) => last_error = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("Chromium does not start under {} ({}): {last_error}", chromedriver.display(), chromium.display());
    }

    async fn stop(self) {
        let _ = self.client.clone().close().await;
    }

    async fn goto(&self, url: &str) {
        self.client.goto(url).await.unwrap_or_else(|e| panic!("{url}: {e}"));
    }

    async fn text(&self, css: &str) -> String {
        let element = self.client.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("no {css}: {e}"));
        element.text().await.unwrap()
    }

    /// Waits for the next page to show this element (a click does not wait for the page it loads).
    async fn wait_for(&self, css: &str) {
        if let Err(e) = self.client.wait().at_most(Duration::from_secs(10)).for_element(Locator::Css(css)).await {
            panic!("no {css} on {}: {e}", self.url().await);
        }
    }

    async fn source(&self) -> String {
        self.client.source().await.unwrap()
    }

    async fn url(&self) -> String {
        self.client.current_url().await.unwrap().to_string()
    }

    async fn fill(&self, css: &str, value: &str) {
        let element = self.client.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("no {css}: {e}"));
        element.clear().await.unwrap();
        element.send_keys(value).await.unwrap();
    }

    /// Sets a date input's value as its picker would (typing into one depends on the locale).
    async fn set_date(&self, css: &str, iso: &str) {
        let element = self.client.find(Locator::Css(css)).await.unwrap();
        let element = serde_json::to_value(element).unwrap();
        self.client.execute("arguments[0].value = arguments[1];", vec![element, json!(iso)]).await.unwrap();
    }

    async fn choose(&self, css: &str, value: &str) {
        let element = self.client.find(Locator::Css(css)).await.unwrap();
        element.select_by_value(value).await.unwrap();
    }

    async fn submit(&self, css: &str) {
        self.client.find(Locator::Css(css)).await.unwrap().click().await.unwrap();
    }

    async fn sign_in(&self, server: &Server, role: Role) {
        self.goto(&format!("{}/inloggen", server.base)).await;
        self.fill("#veld-token", server.token(role)).await;
        self.submit("form[action='/inloggen'] button[type=submit]").await;
        self.wait_for("form.sign-out").await;
        assert!(!self.url().await.contains("/inloggen"), "{role} is signed in");
        assert!(!self.url().await.contains("wb_"), "no token in the address");
    }

    async fn sign_out(&self) {
        self.submit("form.sign-out button").await;
        self.wait_for("#veld-token").await;
        assert!(self.url().await.contains("/inloggen"));
    }

    /// axe-core's WCAG 2.1 A and AA rule violations on the page shown now.
    async fn accessibility_violations(&self) -> Vec<String> {
        self.client.execute(&self.axe, vec![]).await.expect("axe-core loads into the page");
        let script = "const done = arguments[arguments.length - 1];
            axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] } })
              .then(r => done(r.violations.map(v => v.id + ': ' + v.help + ' at ' + v.nodes.map(n => n.target.join(' ')).join(', '))))
              .catch(e => done(['axe failed: ' + e]));";
        let violations = self.client.execute_async(script, vec![]).await.expect("axe-core runs");
        serde_json::from_value(violations).unwrap()
    }

    async fn assert_accessible(&self, what: &str) {
        let violations = self.accessibility_violations().await;
        assert!(violations.is_empty(), "{what}: axe-core finds {violations:#?}");
    }

    async fn screenshot(&self, name: &str) {
        if let Ok(dir) = std::env::var("WIJKBUDGET_SCREENSHOTS") {
            std::fs::create_dir_all(&dir).unwrap();
            let png = self.client.screenshot().await.unwrap();
            std::fs::write(PathBuf::from(dir).join(format!("{name}.png")), png).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_role_reads_the_apis_figures_is_refused_the_rest_and_every_page_is_accessible() {
    let server = Server::start().await;
    let browser = Browser::start().await;
    let base = server.base.clone();

    // The sign-in page itself.
    browser.goto(&format!("{base}/inloggen")).await;
    browser.assert_accessible("the sign-in page").await;
    // The check can fail: an input without a label is found.
    browser
        .client
        .execute("document.querySelector('main').appendChild(document.createElement('input'));", vec![])
        .await
        .unwrap();
    let found = browser.accessibility_violations().await;
    assert!(found.iter().any(|v| v.starts_with("label")), "axe-core misses an unlabelled input: {found:?}");

    // The wijkregisseur signs in with the keyboard alone: Tab past the skip
    // link and the home link to the token, type it, and press Enter.
    browser.goto(&format!("{base}/inloggen")).await;
    let keys = |text: &str| {
        let text = text.to_string();
        let client = browser.client.clone();
        async move {
            let actions = fantoccini::actions::KeyActions::new("toetsenbord".into());
            let actions = text.chars().fold(actions, |a, c| {
                a.then(fantoccini::actions::KeyAction::Down { value: c })
                    .then(fantoccini::actions::KeyAction::Up { value: c })
            });
            client.perform_actions(actions).await.expect("the keys are sent");
        }
    };
    keys("\u{E004}\u{E004}\u{E004}").await;
    let focused = browser.client.active_element().await.unwrap();
    assert_eq!(focused.attr("id").await.unwrap().as_deref(), Some("veld-token"), "Tab reaches the token field");
    keys(server.token(Role::Wijkregisseur)).await;
    keys("\u{E007}").await;
    browser.wait_for("form.sign-out").await;

    // Their own wijk, as today and as of a day.
    assert!(browser.url().await.ends_with("/wijken/oost-1223"), "{}", browser.url().await);
    let api = server.api(Role::Wijkregisseur, "/wijken/oost-1223/budget?year=2022").await;
    assert_eq!(browser.text("[data-testid=resterend]").await, dutch_euro(api["amount_remaining"].as_str().unwrap()));
    browser.assert_accessible("Mijn wijk").await;
    browser.screenshot("wijkregisseur-mijn-wijk").await;
    browser.goto(&format!("{base}/wijken/oost-1223?jaar=2022&peildatum=2022-06-30")).await;
    let api = server.api(Role::Wijkregisseur, "/wijken/oost-1223/budget?year=2022&as_of=2022-06-30").await;
    assert_eq!(browser.text("[data-testid=resterend]").await, dutch_euro(api["amount_remaining"].as_str().unwrap()));
    for refused in ["/fondsen", "/wijken/centrum", "/boeken", "/integriteit"] {
        browser.goto(&format!("{base}{refused}")).await;
        assert_eq!(browser.text("h1").await, "Geen toegang", "{refused} for a wijkregisseur");
    }
    browser.assert_accessible("the 403 page").await;
    browser.sign_out().await;

    // Council: the funds, and what A21-182 was spent on.
    browser.sign_in(&server, Role::Council).await;
    assert!(browser.url().await.ends_with("/fondsen"));
    let funds = server.api(Role::Council, "/funds?year=2022").await;
    for fund in funds.as_array().unwrap() {
        let row = browser.text(&format!("tr[data-fund='{}']", fund["fund_id"].as_str().unwrap())).await;
        for column in ["amount", "amount_allocated", "amount_spent"] {
            let shown = dutch_euro(fund[column].as_str().unwrap());
            assert!(row.contains(&shown), "Fondsen: {column} {shown} not in {row}");
        }
    }
    browser.assert_accessible("Fondsen").await;
    browser.screenshot("raad-fondsen").await;
    browser.goto(&format!("{base}/fondsen/A21-182")).await;
    assert!(browser.text("[data-testid=per-initiatief]").await.contains("Herinrichting Wegaplein"));
    browser.assert_accessible("Amendement A21-182").await;
    browser.goto(&format!("{base}/audittrail?wijk=oost-1223")).await;
    assert!(!browser.source().await.contains("demo-finance"), "council sees no names");
    browser.goto(&format!("{base}/jaarafsluiting")).await;
    browser.assert_accessible("Jaarafsluiting").await;
    browser.goto(&format!("{base}/wijken")).await;
    browser.assert_accessible("the list of wijken").await;
    browser.goto(&format!("{base}/bestaat-niet")).await;
    assert_eq!(browser.text("h1").await, "Niet gevonden");
    browser.assert_accessible("the 404 page").await;
    browser.goto(&format!("{base}/fondsen")).await;
    browser.sign_out().await;

    // The auditor: the trail, an event and its chain, integrity, the close.
    browser.sign_in(&server, Role::Auditor).await;
    browser.goto(&format!("{base}/audittrail?wijk=oost-1223")).await;
    browser.assert_accessible("Audittrail").await;
    browser.screenshot("auditor-audittrail").await;
    // Each row of the trail links to its event, which shows its place in the chain.
    let position: i64 = browser.text("[data-testid=audittrail] a[href^='/gebeurtenissen/']").await.parse().unwrap();
    browser.submit("[data-testid=audittrail] a[href^='/gebeurtenissen/']").await;
    browser.wait_for("[data-testid=hash]").await;
    let events = server.api(Role::Auditor, &format!("/events?after={}&limit=2", position - 2)).await;
    assert_eq!(browser.text("[data-testid=hash]").await, events["events"][1]["hash"].as_str().unwrap());
    assert_eq!(browser.text("[data-testid=vorige-hash]").await, events["events"][0]["hash"].as_str().unwrap());
    browser.assert_accessible("an event").await;
    browser.goto(&format!("{base}/integriteit")).await;
    let integrity = server.api(Role::Auditor, "/integrity").await;
    let head = integrity["head"].as_str().unwrap();
    assert_eq!(
        format!("{}:{}", browser.text("[data-testid=positie]").await, browser.text("[data-testid=kop-hash]").await),
        head
    );
    browser.assert_accessible("Integriteit").await;
    browser.goto(&format!("{base}/jaarafsluiting?jaar=2021")).await;
    let statements = server.api(Role::Auditor, "/years/2021/close-statement").await;
    for s in statements.as_array().unwrap() {
        let shown = browser.text(&format!("[data-testid='afsluiting-{}'] tfoot", s["fund_id"].as_str().unwrap())).await;
        assert!(shown.contains(&dutch_euro(s["amount_spent"].as_str().unwrap())), "{shown}");
    }
    browser.sign_out().await;
    browser.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finance_books_through_the_form_a_mistake_stores_nothing_and_a_double_submit_books_once() {
    let server = Server::start().await;
    let browser = Browser::start().await;
    let base = server.base.clone();
    browser.sign_in(&server, Role::Finance).await;
    assert!(browser.url().await.ends_with("/boeken"));
    browser.assert_accessible("Boeken").await;
    browser.screenshot("financien-boeken").await;
    let head = |v: Value| v["head"].as_str().unwrap().split(':').next().unwrap().parse::<i64>().unwrap();
    let before = head(server.api(Role::Finance, "/integrity").await);

    // A mistake: more than Oost 1223 has left in begroting-2022 (€ 3.180,00).
    browser.choose("#veld-wijk", "oost-1223").await;
    browser.choose("#veld-fonds", "begroting-2022").await;
    browser.fill("#veld-bedrag", "5.000,00").await;
    browser.fill("#veld-initiatief", "Bankjes Wegaplein").await;
    browser.fill("#veld-thema", "ontmoeten").await;
    browser.set_date("#veld-boekdatum", "2022-10-01").await;
    browser.fill("#veld-referentie", "factuur 78").await;
    browser.submit("form[action='/boeken/uitgave'] button[type=submit]").await;
    browser.wait_for(".error-summary").await;
    assert_eq!(browser.text(".error-summary h2").await, "Er is een probleem");
    assert!(browser.text("#veld-bedrag-fout").await.contains("€ 3.180,00"));
    browser.assert_accessible("Boeken with an error").await;
    assert_eq!(head(server.api(Role::Finance, "/integrity").await), before, "a refused booking stores nothing");

    // Put right, and sent twice: a double click.
    browser.fill("#veld-bedrag", "1.000,00").await;
    let form_id = browser
        .client
        .find(Locator::Css("input[name=formulier_id]"))
        .await
        .unwrap()
        .attr("value")
        .await
        .unwrap()
        .expect("the form carries its id");
    let button = browser.client.find(Locator::Css("form[action='/boeken/uitgave'] button[type=submit]")).await.unwrap();
    let button_json = serde_json::to_value(&button).unwrap();
    browser
        .client
        .execute("arguments[0].click(); arguments[0].click();", vec![button_json])
        .await
        .expect("the button clicks");
    browser.wait_for("[data-testid=beschikbaar]").await;
    assert_eq!(browser.text("[data-testid=beschikbaar]").await, "€ 2.180,00");
    browser.assert_accessible("the booking's result").await;
    // A refresh of the result page asks for the result again and sends nothing.
    browser.client.refresh().await.unwrap();
    browser.wait_for("[data-testid=beschikbaar]").await;
    // The back button sends nothing by itself (pages are not cached, so the
    // browser asks before it posts again); and the same form sent again books
    // nothing, as tests/web_app.rs shows for three sends of one form.
    browser.client.back().await.unwrap();
    assert_eq!(head(server.api(Role::Finance, "/integrity").await), before + 1, "one form, one booking");
    let booked = server.api(Role::Finance, "/wijken/oost-1223/audit-trail?limit=1000").await;
    let rows_of_form =
        booked["rows"].as_array().unwrap().iter().filter(|r| r["expense_id"] == format!("uitgave-{form_id}")).count();
    assert_eq!(rows_of_form, 2, "the form's expense is booked once: one pair of postings");

    // The bar moved: the wijk page shows the new figures, as the API does.
    browser.goto(&format!("{base}/wijken/oost-1223?jaar=2022")).await;
    let api = server.api(Role::Finance, "/wijken/oost-1223/budget?year=2022").await;
    assert_eq!(api["amount_remaining"], "2180.00");
    assert_eq!(browser.text("[data-testid=resterend]").await, "€ 2.180,00");
    let bar = browser.source().await;
    assert!(bar.contains("Beschikbaar: € 2.180,00"), "the bar's description shows the new amount");
    browser.goto(&format!("{base}/boeken/verplichting")).await;
    browser.assert_accessible("Boeken: verplichting").await;
    browser.goto(&format!("{base}/boeken/betaling")).await;
    browser.assert_accessible("Boeken: betaling").await;
    browser.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finance_uploads_a_file_reads_the_dry_runs_report_and_books_it() {
    let server = Server::start().await;
    let browser = Browser::start().await;
    let base = server.base.clone();
    browser.sign_in(&server, Role::Finance).await;
    browser.submit("a[href='/boeken/importeren']").await;
    browser.wait_for("#veld-bestand").await;
    browser.assert_accessible("Bestand importeren").await;

    let dir = tempfile::tempdir().unwrap();
    let header = "soort;wijk;fonds;bedrag;boekdatum;uitgave;initiatief;thema;referentie\n";
    let upload = |name: &str, rows: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, format!("{header}{rows}")).unwrap();
        path.display().to_string()
    };
    // Too much for Oost 1223, and an amount no one can read: both rows are reported.
    let bad = upload(
        "fout.csv",
        "uitgave;oost-1223;begroting-2022;5.000,00;01-10-2022;imp-1;Bankjes;ontmoeten;factuur 91\n\
         uitgave;oost-1223;begroting-2022;12,34,56;01-10-2022;imp-2;Bankjes;ontmoeten;factuur 92\n",
    );
    browser.client.find(Locator::Css("#veld-bestand")).await.unwrap().send_keys(&bad).await.unwrap();
    browser.submit("form[action='/boeken/importeren'] button[type=submit]").await;
    browser.wait_for("[data-testid=problemen]").await;
    let problems = browser.text("[data-testid=problemen]").await;
    assert!(problems.contains("bedrag") && problems.contains("12,34,56"), "{problems}");
    browser.assert_accessible("the dry run's report with problems").await;
    browser.screenshot("financien-import-fouten").await;

    let good =
        upload("goed.csv", "uitgave;oost-1223;begroting-2022;1.000,00;01-10-2022;imp-1;Bankjes;ontmoeten;factuur 91\n");
    browser.client.find(Locator::Css("#veld-bestand")).await.unwrap().send_keys(&good).await.unwrap();
    browser.submit("form[action='/boeken/importeren'] button[type=submit]").await;
    browser.wait_for("[data-testid=uitkomst]").await;
    assert!(browser.text("[data-testid=uitkomst]").await.contains("De rij is goed."));
    browser.assert_accessible("a good dry run").await;
    browser.submit("form[action$='/boeken'] button[type=submit]").await;
    browser.wait_for(".confirmation[data-testid=uitkomst]").await;
    assert_eq!(browser.text(".confirmation h2").await, "1 rij geboekt.");
    browser.assert_accessible("the booked import").await;
    browser.goto(&format!("{base}/wijken/oost-1223?jaar=2022")).await;
    assert_eq!(browser.text("[data-testid=resterend]").await, "€ 2.180,00");
    browser.stop().await;
}
