//! The web app through its router, as a browser without script would use
//! it: signing in and out, sessions and CSRF, the role rules, escaping,
//! and booking through the forms. `tests/browser.rs` drives the same pages
//! in a real Chromium.

mod common;
mod web;

use axum::http::header;
use common::{Backend, BACKENDS};
use web::{dutch_euro, DemoApp};
use wijkbudget::auth::{revoke_token, Role};

#[tokio::test]
async fn signing_in_gives_an_httponly_strict_session_and_never_puts_the_token_in_a_url() {
    let app = DemoApp::start(Backend::Sqlite).await;
    let mut browser = app.browser();
    // Unsigned, every page sends you to sign in, and brings you back after.
    let page = browser.get("/wijken/oost-1223?jaar=2022").await;
    page.expect_status(303);
    assert!(page.location().starts_with("/inloggen?terug=%2Fwijken%2Foost-1223%3Fjaar%3D2022"), "{}", page.location());

    let form = browser.get("/inloggen").await;
    form.expect_status(200);
    let sign_in_cookie = form.set_cookies().join("\n");
    assert!(sign_in_cookie.contains("HttpOnly") && sign_in_cookie.contains("SameSite=Strict"), "{sign_in_cookie}");

    // A form that does not carry this browser's sign-in value is refused.
    let forged = browser.post("/inloggen", &[("csrf", "forged"), ("token", &app.tokens.finance), ("terug", "/")]).await;
    forged.expect_status(400);
    assert!(!browser.cookies.contains_key("wb_sessie"));

    // A wrong token is refused next to its field.
    let wrong = browser.sign_in("wb_000000000000000000000000000000000000000000000000").await;
    wrong.expect_status(422);
    assert!(wrong.body.contains("Er is een probleem") && wrong.body.contains("href=\"#veld-token\""));

    let signed_in = browser.sign_in(&app.tokens.regisseur).await;
    signed_in.expect_status(303);
    let session = signed_in.set_cookies().into_iter().find(|c| c.starts_with("wb_sessie=")).expect("a session cookie");
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(session.contains(flag), "the session cookie lacks {flag}: {session}");
    }
    assert!(!session.contains(&app.tokens.regisseur), "the token is not the cookie");
    assert!(!signed_in.location().contains("wb_"), "no token in the address: {}", signed_in.location());

    let home = browser.get("/").await;
    assert_eq!(home.location(), "/wijken/oost-1223", "a wijkregisseur starts at their wijk");
    let wijk = browser.get("/wijken/oost-1223").await;
    wijk.expect_status(200);
    assert!(wijk.body.contains("Resterend wijkbudget"));
    app.finish().await;
}

#[tokio::test]
async fn a_revoked_token_ends_its_sessions_and_signing_out_ends_the_session() {
    let app = DemoApp::start(Backend::Sqlite).await;
    let mut auditor = app.signed_in(Role::Auditor).await;
    auditor.get("/audittrail?wijk=oost-1223").await.expect_status(200);
    let mut finance = app.signed_in(Role::Finance).await;
    finance.get("/boeken").await.expect_status(200);

    assert_eq!(revoke_token(&app.db, "Anna Auditor").await.unwrap(), 1);
    let after = auditor.get("/audittrail?wijk=oost-1223").await;
    after.expect_status(303);
    assert!(after.location().contains("reden=ingetrokken"), "{}", after.location());
    assert!(!auditor.cookies.contains_key("wb_sessie"), "the session cookie is cleared");

    // Signing out needs the session's CSRF token, and then the session is gone.
    let boeken = finance.get("/boeken").await;
    let csrf = boeken.input_value("csrf");
    let stolen_cookie = finance.cookies.clone();
    finance.post("/uitloggen", &[("csrf", "wrong")]).await.expect_status(400);
    finance.post("/uitloggen", &[("csrf", &csrf)]).await.expect_status(303);
    finance.cookies = stolen_cookie;
    finance.get("/boeken").await.expect_status(303);
    app.finish().await;
}

#[tokio::test]
async fn each_page_follows_the_apis_role_rules_with_a_clear_403_page() {
    use Role::*;
    let app = DemoApp::start(Backend::Sqlite).await;
    // (page, who may open it); everyone else gets the app's own 403 page.
    let pages: &[(&str, &[Role])] = &[
        ("/wijken/oost-1223", &[Finance, Auditor, Council, Wijkregisseur]),
        ("/wijken/centrum", &[Finance, Auditor, Council]),
        ("/wijken/oost-1223/csv", &[Finance, Auditor, Council, Wijkregisseur]),
        ("/fondsen", &[Finance, Auditor, Council]),
        ("/fondsen/A21-182", &[Finance, Auditor, Council]),
        ("/audittrail?wijk=oost-1223", &[Finance, Auditor, Council, Wijkregisseur]),
        ("/audittrail?wijk=centrum", &[Finance, Auditor, Council]),
        ("/gebeurtenissen/1", &[Finance, Auditor]),
        ("/integriteit", &[Finance, Auditor]),
        ("/jaarafsluiting?jaar=2021", &[Finance, Auditor, Council]),
        ("/jaarafsluiting/csv?jaar=2021", &[Finance, Auditor, Council]),
        ("/jaarafsluiting/xlsx?jaar=2021", &[Finance, Auditor, Council]),
        ("/audittrail/xlsx?wijk=oost-1223", &[Finance, Auditor, Council, Wijkregisseur]),
        ("/audittrail/xlsx?wijk=centrum", &[Finance, Auditor, Council]),
        ("/boeken", &[Finance]),
        ("/boeken/verplichting", &[Finance]),
        ("/boeken/betaling", &[Finance]),
        ("/boeken/importeren", &[Finance]),
        ("/boeken/importeren/voorbeeld.csv", &[Finance]),
        ("/boeken/importeren/grootboek.xlsx", &[Finance]),
        ("/subsidieregister/csv?jaar=2022", &[Finance, Auditor, Council]),
        ("/subsidieregister/xlsx?jaar=2022", &[Finance, Auditor, Council]),
    ];
    let mut failures = Vec::new();
    for role in wijkbudget::auth::ROLES {
        let mut browser = app.signed_in(role).await;
        for (path, allowed) in pages {
            let page = browser.get(path).await;
            let expected = if allowed.contains(&role) { 200 } else { 403 };
            if page.status.as_u16() != expected {
                failures.push(format!("{role} {path}: {} (wanted {expected})", page.status));
            } else if expected == 403 && !(page.body.contains("Geen toegang") && page.body.contains("Hoofdmenu")) {
                failures.push(format!("{role} {path}: the 403 is not the app's own page"));
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    app.finish().await;
}

#[tokio::test]
async fn council_members_see_no_names_in_the_audit_trail() {
    let app = DemoApp::start(Backend::Sqlite).await;
    let actor = app.api(Role::Finance, "/wijken/oost-1223/audit-trail?limit=1").await["rows"][0]["actor"]
        .as_str()
        .unwrap()
        .to_string();
    let mut finance = app.signed_in(Role::Finance).await;
    assert!(finance.get("/audittrail?wijk=oost-1223").await.body.contains(&actor));
    let mut council = app.signed_in(Role::Council).await;
    let page = council.get("/audittrail?wijk=oost-1223").await;
    page.expect_status(200);
    assert!(!page.body.contains(&actor), "council sees {actor}");
    let csv = council.get("/audittrail/csv?wijk=oost-1223").await;
    assert!(!csv.body.contains(&actor), "council's CSV holds {actor}");
    for (who, browser) in [("council", &mut council), ("finance", &mut finance)] {
        let xlsx = browser.get_bytes("/audittrail/xlsx?wijk=oost-1223").await;
        let mut book: calamine::Xlsx<_> = calamine::open_workbook_from_rs(std::io::Cursor::new(xlsx)).unwrap();
        let sheet = calamine::Reader::worksheet_range(&mut book, "oost-1223").unwrap();
        let names = sheet.rows().any(|r| r.iter().any(|c| c.to_string() == actor));
        assert_eq!(names, who == "finance", "{who}'s workbook shows {actor}: {names}");
    }
    app.finish().await;
}

#[tokio::test]
async fn pages_refuse_framing_and_script_from_anywhere_but_themselves() {
    let app = DemoApp::start(Backend::Sqlite).await;
    let mut browser = app.signed_in(Role::Council).await;
    for path in ["/inloggen", "/fondsen", "/bestaat-niet", "/boeken"] {
        let page = browser.get(path).await;
        let csp = page.headers.get(header::CONTENT_SECURITY_POLICY).and_then(|v| v.to_str().ok()).unwrap_or("");
        for directive in ["default-src 'none'", "script-src 'self'", "frame-ancestors 'none'", "form-action 'self'"] {
            assert!(csp.contains(directive), "{path}: CSP {csp:?} lacks {directive}");
        }
        assert_eq!(page.headers.get(header::X_FRAME_OPTIONS).unwrap(), "DENY", "{path}");
        assert!(!page.body.contains("<script>"), "{path} has inline script");
        assert!(!page.body.contains("style=\""), "{path} has inline style, which the CSP blocks");
    }
    app.finish().await;
}

/// The CSRF token and a fresh form id from the Boeken page.
async fn blank_form(browser: &mut web::Browser, path: &str) -> (String, String) {
    let page = browser.get(path).await;
    page.expect_status(200);
    (page.input_value("csrf"), page.input_value("formulier_id"))
}

#[tokio::test]
async fn a_stored_script_in_an_initiative_is_shown_as_text() {
    let app = DemoApp::start(Backend::Sqlite).await;
    let mut finance = app.signed_in(Role::Finance).await;
    let (csrf, form_id) = blank_form(&mut finance, "/boeken").await;
    let script = "<script>alert('wijk')</script>";
    let booked = finance
        .post(
            "/boeken/uitgave",
            &[
                ("csrf", &csrf),
                ("formulier_id", &form_id),
                ("wijk", "oost-1223"),
                ("fonds", "begroting-2022"),
                ("bedrag", "10,00"),
                ("initiatief", script),
                ("thema", "\"><img src=x onerror=alert(1)>"),
                ("boekdatum", "2022-10-01"),
                ("referentie", "factuur <b>1</b>"),
            ],
        )
        .await;
    booked.expect_status(303);
    for path in ["/wijken/oost-1223?jaar=2022", "/fondsen/begroting-2022", "/audittrail?wijk=oost-1223&jaar=2022"] {
        let page = finance.get(path).await;
        page.expect_status(200);
        assert!(!page.body.contains(script) && !page.body.contains("<img src=x"), "{path} shows raw markup");
        assert!(
            page.body.contains("&lt;script&gt;alert('wijk')&lt;/script&gt;"),
            "{path} does not show the name as text"
        );
    }
    app.finish().await;
}

#[tokio::test]
async fn a_booking_form_shows_every_mistake_beside_its_field_keeps_what_was_typed_and_stores_nothing() {
    for backend in BACKENDS {
        let app = DemoApp::start(backend).await;
        let mut finance = app.signed_in(Role::Finance).await;
        let head = app.head().await;
        let (csrf, form_id) = blank_form(&mut finance, "/boeken/uitgave").await;
        let mut fields = vec![
            ("csrf", csrf.as_str()),
            ("formulier_id", form_id.as_str()),
            ("wijk", "oost-1223"),
            ("fonds", "begroting-2022"),
            ("bedrag", "12,345"),
            ("initiatief", ""),
            ("thema", "groen"),
            ("boekdatum", "31-02-2022"),
            ("referentie", "factuur 77"),
        ];
        let page = finance.post("/boeken/uitgave", &fields).await;
        page.expect_status(422);
        for (field, words) in
            [("bedrag", "twee decimalen"), ("initiatief", "Vul het initiatief in"), ("boekdatum", "geen datum")]
        {
            assert!(
                page.body.contains(&format!("href=\"#veld-{field}\"")),
                "{backend:?}: the summary does not link {field}"
            );
            assert!(page.body.contains(words), "{backend:?}: no message for {field} ({words})");
            assert!(page.body.contains(&format!("id=\"veld-{field}-fout\"")), "{backend:?}: no error beside {field}");
        }
        assert!(
            page.body.contains("value=\"12,345\"") && page.body.contains("value=\"factuur 77\""),
            "what was typed is kept"
        );
        assert_eq!(app.head().await, head, "{backend:?}: a refused form stores nothing");

        // The domain's refusal, in Dutch, beside the amount: Oost 1223 has € 3.180,00 left.
        fields[4] = ("bedrag", "5.000,00");
        fields[5] = ("initiatief", "Bankjes Wegaplein");
        fields[7] = ("boekdatum", "2022-10-01");
        let page = finance.post("/boeken/uitgave", &fields).await;
        page.expect_status(422);
        assert!(page.body.contains("heeft nog € 3.180,00 over uit fonds begroting-2022"), "{backend:?}: {}", page.body);
        assert!(page.body.contains("id=\"veld-bedrag-fout\""));
        assert_eq!(app.head().await, head, "{backend:?}: an overspend stores nothing");
        app.finish().await;
    }
}

#[tokio::test]
async fn a_booking_form_books_once_however_often_it_is_sent_and_shows_the_new_available_amount() {
    for backend in BACKENDS {
        let app = DemoApp::start(backend).await;
        let mut finance = app.signed_in(Role::Finance).await;
        let head = app.head().await;
        let (csrf, form_id) = blank_form(&mut finance, "/boeken").await;
        let fields = [
            ("csrf", csrf.as_str()),
            ("formulier_id", form_id.as_str()),
            ("wijk", "oost-1223"),
            ("fonds", "begroting-2022"),
            ("bedrag", "1.000,00"),
            ("initiatief", "Bankjes Wegaplein"),
            ("thema", "ontmoeten"),
            ("boekdatum", "2022-10-01"),
            ("referentie", "factuur 78"),
        ];
        // A double click, then the back button and send again.
        for _ in 0..3 {
            let sent = finance.post("/boeken/uitgave", &fields).await;
            sent.expect_status(303);
            assert!(sent.location().starts_with("/boeken/geboekt?"), "{}", sent.location());
        }
        assert_eq!(app.head().await, head + 1, "{backend:?}: one form, one booking");
        let done = finance.get("/boeken/geboekt?soort=uitgave&wijk=oost-1223&fonds=begroting-2022").await;
        let api = app.api(Role::Finance, "/wijken/oost-1223/budget").await;
        let line = api["funds"].as_array().unwrap().iter().find(|f| f["fund_id"] == "begroting-2022").unwrap();
        assert_eq!(line["amount_remaining"], "2180.00");
        assert!(done.body.contains(&dutch_euro("2180.00")), "{backend:?}: the result shows the new available amount");
        // Its postings carry the request's correlation id, to find it in the service's logs.
        let trail = app.api(Role::Finance, "/wijken/oost-1223/audit-trail?limit=1000").await;
        let expense_id = format!("uitgave-{form_id}");
        let rows: Vec<&serde_json::Value> =
            trail["rows"].as_array().unwrap().iter().filter(|r| r["expense_id"] == expense_id.as_str()).collect();
        assert_eq!(rows.len(), 2, "{backend:?}: one pair of postings");
        assert!(
            rows.iter().all(|r| r["correlation_id"].as_str().is_some_and(|id| id.len() >= 8)),
            "{backend:?}: {rows:?}"
        );

        // The same form sent with other details is not booked again either.
        let mut changed = fields;
        changed[4] = ("bedrag", "2,00");
        let page = finance.post("/boeken/uitgave", &changed).await;
        page.expect_status(422);
        assert!(page.body.contains("al eens met andere gegevens geboekt"));
        assert_eq!(app.head().await, head + 1);
        app.finish().await;
    }
}

#[tokio::test]
async fn a_commitment_and_a_payment_on_it_are_booked_through_the_forms() {
    let app = DemoApp::start(Backend::Sqlite).await;
    let mut finance = app.signed_in(Role::Finance).await;
    let (csrf, form_id) = blank_form(&mut finance, "/boeken/verplichting").await;
    let committed = finance
        .post(
            "/boeken/verplichting",
            &[
                ("csrf", &csrf),
                ("formulier_id", &form_id),
                ("wijk", "oost-1223"),
                ("fonds", "begroting-2022"),
                ("bedrag", "1.500,00"),
                ("initiatief", "Buurtfeest"),
                ("thema", "ontmoeten"),
                ("aanvrager", "Buurtvereniging Oost"),
                ("soort_aanvrager", "organisatie"),
                ("besluit", "SUB-2022-099"),
                ("besloten_op", "2022-09-01"),
                ("regeling", "Subsidieregeling wijkbudgetten Hilversum"),
                ("boekdatum", "2022-09-01"),
            ],
        )
        .await;
    committed.expect_status(303);
    let commitment_id = format!("verplichting-{form_id}");
    let view = app.api(Role::Finance, &format!("/commitments/{commitment_id}")).await;
    assert_eq!(view["amount"], "1500.00");

    let (csrf, form_id) = blank_form(&mut finance, "/boeken/betaling").await;
    let pay = |amount: &'static str| {
        [
            ("csrf", csrf.clone()),
            ("formulier_id", form_id.clone()),
            ("verplichting", commitment_id.clone()),
            ("bedrag", amount.to_string()),
            ("boekdatum", "2022-10-01".to_string()),
            ("referentie", "betaalopdracht 1".to_string()),
        ]
    };
    let too_much = pay("2.000,00");
    let refs: Vec<(&str, &str)> = too_much.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let page = finance.post("/boeken/betaling", &refs).await;
    page.expect_status(422);
    assert!(page.body.contains("staat nog € 1.500,00 open"), "{}", page.body);
    let right = pay("500,00");
    let refs: Vec<(&str, &str)> = right.iter().map(|(k, v)| (*k, v.as_str())).collect();
    finance.post("/boeken/betaling", &refs).await.expect_status(303);
    let view = app.api(Role::Finance, &format!("/commitments/{commitment_id}")).await;
    assert_eq!(view["amount_paid"], "500.00");
    // The wijk page lists it as open, with what is left.
    let wijk = finance.get("/wijken/oost-1223?jaar=2022").await;
    assert!(wijk.body.contains(&commitment_id) && wijk.body.contains("€ 1.000,00"));
    app.finish().await;
}

#[tokio::test]
async fn the_wijk_page_shows_the_apis_figures_today_and_as_of_a_day() {
    for backend in BACKENDS {
        let app = DemoApp::start(backend).await;
        let mut council = app.signed_in(Role::Council).await;
        for (query, api_query) in
            [("jaar=2022", "year=2022"), ("jaar=2022&peildatum=2022-06-30", "year=2022&as_of=2022-06-30")]
        {
            let page = council.get(&format!("/wijken/oost-1223?{query}")).await;
            page.expect_status(200);
            let api = app.api(Role::Council, &format!("/wijken/oost-1223/budget?{api_query}")).await;
            for line in api["funds"].as_array().unwrap() {
                let row_start =
                    page.body.find(&format!("data-fund=\"{}\"", line["fund_id"].as_str().unwrap())).unwrap();
                let row = &page.body[row_start..row_start + page.body[row_start..].find("</tr>").unwrap()];
                for column in ["amount_allocated", "amount_spent", "amount_committed", "amount_remaining"] {
                    let shown = dutch_euro(line[column].as_str().unwrap());
                    assert!(row.contains(&shown), "{backend:?} {query}: {column} {shown} not in {row}");
                }
            }
            let remaining = dutch_euro(api["amount_remaining"].as_str().unwrap());
            assert!(page.body.contains(&format!("data-testid=\"resterend\">{remaining}<")), "{backend:?} {query}");
        }
        // The CSV holds the same figures as the page.
        let csv = council.get("/wijken/oost-1223/csv?jaar=2022").await;
        assert!(csv.headers.get(header::CONTENT_DISPOSITION).is_some());
        assert!(csv.body.lines().any(|l| l.starts_with("\"total\"") && l.contains("\"3180.00\"")), "{}", csv.body);
        app.finish().await;
    }
}

#[tokio::test]
async fn a_funds_page_follows_the_money_to_what_it_was_spent_on() {
    let app = DemoApp::start(Backend::Sqlite).await;
    let mut council = app.signed_in(Role::Council).await;
    let page = council.get("/fondsen/A21-182").await;
    page.expect_status(200);
    assert!(page.body.contains("Herinrichting Wegaplein"), "A21-182's page shows the Wegaplein");
    assert!(page.body.contains("€ 50.000,00"));
    // The 2021 begroting's money was carried over; its page follows it into 2022.
    let funds = app.api(Role::Council, "/funds?year=2021").await;
    let closed =
        funds.as_array().unwrap().iter().find(|f| f["carry_over_fund"].is_string()).expect("a carried-over fund");
    let next = closed["carry_over_fund"].as_str().unwrap();
    let page = council.get(&format!("/fondsen/{}", closed["fund_id"].as_str().unwrap())).await;
    assert!(page.body.contains(&format!("via de overheveling naar <a href=\"/fondsen/{next}\"")), "{}", page.body);
    app.finish().await;
}

#[tokio::test]
async fn finance_starts_a_verification_and_watches_it_finish() {
    let app = DemoApp::start(Backend::Sqlite).await;
    let mut auditor = app.signed_in(Role::Auditor).await;
    let page = auditor.get("/integriteit").await;
    assert!(!page.body.contains("Controleer de keten nu"), "only finance may start one");
    let csrf = page.input_value("csrf");
    auditor.post("/integriteit", &[("csrf", &csrf)]).await.expect_status(403);

    let mut finance = app.signed_in(Role::Finance).await;
    let page = finance.get("/integriteit").await;
    let csrf = page.input_value("csrf");
    finance.post("/integriteit", &[("csrf", "wrong")]).await.expect_status(400);
    let started = finance.post("/integriteit", &[("csrf", &csrf)]).await;
    started.expect_status(303);
    let head = app.head().await;
    let mut finished = false;
    // A busy machine may take a while; the deadline is generous, not a timing.
    for _ in 0..600 {
        let page = finance.get("/integriteit").await;
        if page.body.contains("Controle gestart door Fenna Financiën") && page.body.contains("data-testid=\"uitkomst\"")
        {
            let gestart = &page.body[page.body.find("Controle gestart door").unwrap()..];
            assert!(
                gestart.contains("In orde.") && gestart.contains(&format!("{head} gebeurtenissen gecontroleerd")),
                "{gestart}"
            );
            finished = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(finished, "the verification finishes and says so");
    app.finish().await;
}

#[tokio::test]
async fn finance_imports_a_file_from_the_booking_pages_sees_every_bad_row_and_books_it_once_good() {
    let app = DemoApp::start(Backend::Sqlite).await;
    let mut auditor = app.signed_in(Role::Auditor).await;
    auditor.get("/boeken/importeren").await.expect_status(403);

    let mut finance = app.signed_in(Role::Finance).await;
    let page = finance.get("/boeken/importeren").await;
    page.expect_status(200);
    assert!(page.body.contains("enctype=\"multipart/form-data\""), "a plain upload, without script");
    let csrf = page.input_value("csrf");
    let header = "soort;wijk;fonds;bedrag;boekdatum;uitgave;initiatief;thema;referentie\n";
    let bad = format!(
        "{header}uitgave;oost-1223;begroting-2022;5.000,00;01-10-2022;imp-1;Bankjes;ontmoeten;factuur 91\n\
         uitgave;oost-1223;begroting-2022;12,34,56;01-10-2022;imp-2;Bankjes;ontmoeten;factuur 92\n"
    );
    let file = |text: &str| ("bestand", "boekingen.csv", text.as_bytes().to_vec());

    // A forged form, or none at all, books nothing.
    let (name, file_name, bytes) = file(&bad);
    finance.post_file("/boeken/importeren", &[("csrf", "forged")], (name, file_name, &bytes)).await.expect_status(400);
    let empty = finance.post_file("/boeken/importeren", &[("csrf", &csrf)], ("bestand", "", b"")).await;
    assert!(empty.body.contains("Kies een bestand om te importeren."), "{}", empty.body);

    // The dry run's report lists every bad row, and nothing is stored.
    let head = app.head().await;
    let started =
        finance.post_file("/boeken/importeren", &[("csrf", &csrf), ("proef", "ja")], (name, file_name, &bytes)).await;
    started.expect_status(303);
    let report = wait_for_import(&mut finance, started.location()).await;
    assert!(report.contains("Er is niets geboekt"), "{report}");
    assert!(report.contains("2 problemen in 2 rijen"), "{report}");
    assert!(report.contains("oost-1223 has 3180.00 left"), "row 2 says what the wijk had left: {report}");
    assert!(report.contains("`12,34,56` is not an amount"), "row 3's mistake too: {report}");
    assert_eq!(app.head().await, head, "a dry run stores nothing");

    // Put right and checked, then booked from the report without sending it again.
    let good =
        format!("{header}uitgave;oost-1223;begroting-2022;1.000,00;01-10-2022;imp-1;Bankjes;ontmoeten;factuur 91\n");
    let (name, file_name, bytes) = file(&good);
    let started =
        finance.post_file("/boeken/importeren", &[("csrf", &csrf), ("proef", "ja")], (name, file_name, &bytes)).await;
    let checked_at = started.location().to_string();
    let report = wait_for_import(&mut finance, &checked_at).await;
    assert!(report.contains("De rij is goed."), "{report}");
    assert_eq!(app.head().await, head);
    let booked = finance.post(&format!("{checked_at}/boeken"), &[("csrf", &csrf)]).await;
    booked.expect_status(303);
    let report = wait_for_import(&mut finance, booked.location()).await;
    assert!(report.contains("1 rij geboekt."), "{report}");
    assert_eq!(app.head().await, head + 1);
    let budget = app.api(Role::Finance, "/wijken/oost-1223/budget?year=2022").await;
    assert_eq!(budget["amount_remaining"], "2180.00");
    // The same check cannot be booked twice.
    finance.post(&format!("{checked_at}/boeken"), &[("csrf", &csrf)]).await.expect_status(400);
    app.finish().await;
}

/// Follows an import's page until it shows its outcome.
async fn wait_for_import(finance: &mut web::Browser, path: &str) -> String {
    for _ in 0..600 {
        let page = finance.get(path).await;
        page.expect_status(200);
        if !page.body.contains("data-auto-refresh") {
            return page.body;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the import at {path} did not finish in 30 s");
}
