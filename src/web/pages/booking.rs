//! Boeken (finance only): record an expense, a commitment, or a payment on
//! a commitment. Each rendered form carries its own id, which becomes the
//! booking's own id (its expense or commitment id), so a double click, a
//! refresh after sending or the back button books it once: the ledger
//! answers a repeat with "already recorded", and the page shows the same
//! result. A mistake is shown next to its field, and nothing is stored.

use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use maud::{html, Markup};
use serde::Deserialize;

use super::booking_rules::{refusal, Check, FORM};
use super::{allow, render, PageResult};
use crate::domain::fund::{ApplicantKind, CommitmentDetails, Decision, ExpenseDetails, FundCommand};
use crate::domain::ids::{CommitmentId, ExpenseId, FundId, Text, WijkId};
use crate::http::AppState;
use crate::ledger::{CommandMeta, Outcome};
use crate::projections::queries::{self, Period};
use crate::web::components::{csrf_field, error_summary, layout, Field, FieldError, Section};
use crate::web::format::euro;
use crate::web::session::{query_string, random_hex, Viewer};

/// How long a booking waits for the read models before showing its result.
const READ_YOUR_WRITES_WAIT: Duration = Duration::from_secs(5);

/// What a form posts. Every field is text, so that what was typed comes back
/// unchanged when something is wrong.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
pub struct BookingForm {
    csrf: String,
    formulier_id: String,
    wijk: String,
    fonds: String,
    verplichting: String,
    bedrag: String,
    initiatief: String,
    thema: String,
    aanvrager: String,
    soort_aanvrager: String,
    besluit: String,
    besloten_op: String,
    regeling: String,
    boekdatum: String,
    referentie: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Expense,
    Commitment,
    Payment,
}

impl Kind {
    fn path(self) -> &'static str {
        match self {
            Kind::Expense => "/boeken/uitgave",
            Kind::Commitment => "/boeken/verplichting",
            Kind::Payment => "/boeken/betaling",
        }
    }
    fn title(self) -> &'static str {
        match self {
            Kind::Expense => "Uitgave boeken",
            Kind::Commitment => "Verplichting aangaan",
            Kind::Payment => "Betaling op een verplichting",
        }
    }
    fn anchor(self) -> &'static str {
        match self {
            Kind::Expense => "uitgave",
            Kind::Commitment => "verplichting",
            Kind::Payment => "betaling",
        }
    }
    /// The booking's own id, derived from the form's id.
    fn own_id(self, form_id: &str) -> String {
        format!("{}-{form_id}", self.anchor())
    }
}

/// The choices the forms offer: the wijken, and the funds of open years.
struct Choices {
    wijken: Vec<(String, String)>,
    funds: Vec<(String, String)>,
}

async fn choices(state: &AppState) -> Result<Choices, Response> {
    let db = state.ledger.db();
    let wijken = queries::wijk_summaries(db, Period::default()).await.map_err(super::unavailable)?;
    let funds = queries::funds(db, None).await.map_err(super::unavailable)?;
    Ok(Choices {
        wijken: wijken.into_iter().map(|w| (w.wijk_id, w.name)).collect(),
        funds: funds
            .into_iter()
            .filter(|f| f.closed_on.is_none())
            .rev()
            .map(|f| (f.fund_id.clone(), format!("{} ({}, {})", f.name, f.fund_id, f.year)))
            .collect(),
    })
}

fn select(name: &str, label: &str, options: &[(String, String)], chosen: &str, errors: &[FieldError]) -> Markup {
    let id = format!("veld-{name}");
    let error = errors.iter().find(|e| e.field == name);
    html! {
        div class={ "field" @if error.is_some() { " field-error" } } {
            label for=(id) { (label) }
            @if let Some(e) = error { p class="error-message" id={ (id) "-fout" } { span class="visually-hidden" { "Fout: " } (e.message) } }
            select id=(id) name=(name) aria-describedby=[error.map(|_| format!("{id}-fout"))] aria-invalid=[error.map(|_| "true")] {
                option value="" selected[chosen.is_empty()] { "Kies…" }
                @for (value, text) in options { option value=(value) selected[chosen == value] { (text) } }
            }
        }
    }
}

/// Organisation or private person, as radio buttons in a fieldset; the
/// subsidy register never shows a private person's name.
fn applicant_kind_field(chosen: &str, errors: &[FieldError]) -> Markup {
    let error = errors.iter().find(|e| e.field == "soort_aanvrager");
    html! {
        div class={ "field" @if error.is_some() { " field-error" } } id="veld-soort_aanvrager" {
            fieldset aria-describedby="veld-soort_aanvrager-hint" {
                legend { "Soort aanvrager" }
                p class="hint" id="veld-soort_aanvrager-hint" { "Van een particulier publiceert de gemeente nooit de naam." }
                @if let Some(e) = error { p class="error-message" { span class="visually-hidden" { "Fout: " } (e.message) } }
                @for (value, label) in [("organisatie", "Organisatie"), ("particulier", "Particulier")] {
                    div class="radio" {
                        input type="radio" id={ "soort-" (value) } name="soort_aanvrager" value=(value) checked[chosen == value];
                        label for={ "soort-" (value) } { (label) }
                    }
                }
            }
        }
    }
}

/// A date as a date input holds it: typed as `15-09-2022`, it comes back as
/// `2022-09-15`, which the input shows (it would drop the other form).
fn iso_if_date(text: &str) -> String {
    chrono::NaiveDate::parse_from_str(text.trim(), "%d-%m-%Y").map_or_else(|_| text.to_string(), |d| d.to_string())
}

fn form(kind: Kind, viewer: &Viewer, c: &Choices, f: &BookingForm, errors: &[FieldError]) -> Markup {
    let (boekdatum, besloten_op) = (iso_if_date(&f.boekdatum), iso_if_date(&f.besloten_op));
    let field =
        |name: &'static str, label: &'static str, hint: Option<&'static str>, kind: &'static str, value: &str| {
            Field { name, label, hint, kind, value, errors, extra: None }.render()
        };
    let form_error = errors.iter().find(|e| e.field == FORM);
    html! {
        section class="booking" aria-labelledby="formulier-titel" {
            h2 id="formulier-titel" { (kind.title()) }
            @if let Some(e) = form_error { p class="error-message" id={ "veld-" (FORM) } { (e.message) } }
            form method="post" action=(kind.path()) novalidate {
                (csrf_field(viewer))
                input type="hidden" name="formulier_id" value=(f.formulier_id);
                @if kind == Kind::Payment {
                    (field("verplichting", "Verplichting", Some("Het kenmerk van de verplichting, zoals SUB-2022-017"), "text", &f.verplichting))
                } @else {
                    (select("wijk", "Wijk", &c.wijken, &f.wijk, errors))
                    (select("fonds", "Fonds", &c.funds, &f.fonds, errors))
                }
                (Field { name: "bedrag", label: "Bedrag in euro", hint: Some("Bijvoorbeeld 1.250,00"), kind: "text", value: &f.bedrag, errors, extra: Some("decimal") }.render())
                @if kind != Kind::Payment {
                    (field("initiatief", "Initiatief", None, "text", &f.initiatief))
                    (field("thema", "Thema", Some("Bijvoorbeeld groen, spelen of ontmoeten"), "text", &f.thema))
                }
                @if kind == Kind::Commitment {
                    (field("aanvrager", "Aanvrager", Some("De organisatie of bewonersgroep die de subsidie aanvroeg"), "text", &f.aanvrager))
                    (applicant_kind_field(&f.soort_aanvrager, errors))
                    (field("besluit", "Besluit (kenmerk)", Some("Het kenmerk van de subsidieverlening"), "text", &f.besluit))
                    (field("besloten_op", "Besloten op", Some("Bijvoorbeeld 15-09-2022"), "date", &besloten_op))
                    (field("regeling", "Subsidieregeling", None, "text", &f.regeling))
                }
                (field("boekdatum", "Boekdatum", Some("Bijvoorbeeld 15-09-2022"), "date", &boekdatum))
                @if kind != Kind::Commitment {
                    (field("referentie", "Referentie", Some("Bijvoorbeeld het factuurnummer"), "text", &f.referentie))
                }
                button type="submit" class="button" { (kind.title()) }
            }
        }
    }
}

fn fresh() -> BookingForm {
    BookingForm { formulier_id: random_hex(16), ..Default::default() }
}

/// One form on its own page (one thing per page), with the other forms a
/// link away.
fn booking_page(viewer: &Viewer, c: &Choices, kind: Kind, f: &BookingForm, errors: &[FieldError]) -> Markup {
    let body = html! {
        h1 { "Boeken" }
        (error_summary(errors))
        p { "Elke boeking komt als nieuwe gebeurtenis in het grootboek; niets wordt overschreven. Een fout herstelt u met een correctie." }
        nav aria-label="Soort boeking" { ul class="inline" {
            @for other in [Kind::Expense, Kind::Commitment, Kind::Payment] {
                li { @if other == kind { a href=(other.path()) aria-current="page" { (other.title()) } } @else { a href=(other.path()) { (other.title()) } } }
            }
            li { a href=(super::import::PATH) { "Bestand importeren" } }
        } }
        (form(kind, viewer, c, f, errors))
    };
    let title = if errors.is_empty() { "Boeken" } else { "Fout: Boeken" };
    layout(title, Some(viewer), Section::Boeken, body)
}

async fn blank(kind: Kind, state: &AppState, viewer: &Viewer) -> PageResult {
    allow(viewer, Section::Boeken)?;
    let c = choices(state).await?;
    Ok(render(booking_page(viewer, &c, kind, &fresh(), &[])))
}

pub async fn page(State(state): State<AppState>, viewer: Viewer) -> PageResult {
    blank(Kind::Expense, &state, &viewer).await
}

pub async fn commitment_form(State(state): State<AppState>, viewer: Viewer) -> PageResult {
    blank(Kind::Commitment, &state, &viewer).await
}

pub async fn payment_form(State(state): State<AppState>, viewer: Viewer) -> PageResult {
    blank(Kind::Payment, &state, &viewer).await
}

/// A command read from a form, with the place to show its result.
struct Parsed {
    fund_id: FundId,
    command: FundCommand,
    wijk_id: Option<String>,
}

/// The booking's own id from the form's id; a form without one was not rendered here.
fn own_id(kind: Kind, f: &BookingForm, check: &mut Check) -> String {
    let form_id = f.formulier_id.trim();
    if form_id.is_empty() || form_id.len() > 40 {
        check.fail(FORM, "Dit formulier is onvolledig. Open de pagina opnieuw.");
    }
    kind.own_id(form_id)
}

fn parse(kind: Kind, f: &BookingForm, check: &mut Check) -> Option<Parsed> {
    let own_id = own_id(kind, f, check);
    let amount = check.amount("bedrag", &f.bedrag);
    let booked_on = check.date("boekdatum", "boekdatum", &f.boekdatum);
    match kind {
        Kind::Expense | Kind::Commitment => {
            let wijk = check.value("wijk", "de wijk", &f.wijk, WijkId::parse);
            let fund = check.value("fonds", "het fonds", &f.fonds, FundId::parse);
            let initiative = check.value("initiatief", "het initiatief", &f.initiatief, Text::parse);
            let theme = check.value("thema", "het thema", &f.thema, Text::parse);
            if kind == Kind::Expense {
                let reference = check.value("referentie", "de referentie", &f.referentie, Text::parse);
                let expense_id = check.value(FORM, "het formulier-id", &own_id, ExpenseId::parse);
                let (wijk, fund, amount, initiative, theme, booked_on, reference, expense_id) =
                    (wijk?, fund?, amount?, initiative?, theme?, booked_on?, reference?, expense_id?);
                Some(Parsed {
                    fund_id: fund,
                    wijk_id: Some(wijk.to_string()),
                    command: FundCommand::RecordExpense(ExpenseDetails {
                        expense_id,
                        wijk_id: wijk,
                        amount,
                        initiative,
                        theme,
                        booked_on,
                        reference,
                    }),
                })
            } else {
                let applicant = check.value("aanvrager", "de aanvrager", &f.aanvrager, Text::parse);
                let applicant_kind = match f.soort_aanvrager.as_str() {
                    "organisatie" => Some(ApplicantKind::Organisation),
                    "particulier" => Some(ApplicantKind::Private),
                    _ => {
                        check.fail("soort_aanvrager", "Kies of de aanvrager een organisatie of een particulier is.");
                        None
                    }
                };
                let decision = check.value("besluit", "het besluit", &f.besluit, Text::parse);
                let decided_on = check.date("besloten_op", "besluitdatum", &f.besloten_op);
                let grant_rule = check.value("regeling", "de subsidieregeling", &f.regeling, Text::parse);
                let commitment_id = check.value(FORM, "het formulier-id", &own_id, CommitmentId::parse);
                let (wijk, fund, amount, initiative, theme, booked_on) =
                    (wijk?, fund?, amount?, initiative?, theme?, booked_on?);
                let (applicant, applicant_kind, decision, decided_on, grant_rule, commitment_id) =
                    (applicant?, applicant_kind?, decision?, decided_on?, grant_rule?, commitment_id?);
                Some(Parsed {
                    fund_id: fund,
                    wijk_id: Some(wijk.to_string()),
                    command: FundCommand::Commit(CommitmentDetails {
                        commitment_id,
                        wijk_id: wijk,
                        amount,
                        initiative,
                        applicant,
                        applicant_kind,
                        theme,
                        decision: Decision { reference: decision, adopted_on: decided_on },
                        grant_rule,
                        booked_on,
                    }),
                })
            }
        }
        Kind::Payment => None,
    }
}

async fn book(kind: Kind, state: AppState, viewer: Viewer, headers: HeaderMap, f: BookingForm) -> PageResult {
    allow(&viewer, Section::Boeken)?;
    if !viewer.csrf_matches(&f.csrf) {
        return Err(super::bad_request(
            &viewer,
            "Het formulier was verlopen. Open de pagina Boeken opnieuw en vul het nog eens in.",
        ));
    }
    let mut check = Check::default();
    let parsed = match kind {
        Kind::Payment => parse_payment(&state, &f, &mut check).await?,
        _ => parse(kind, &f, &mut check),
    };
    let Some(parsed) = parsed.filter(|_| check.errors.is_empty()) else {
        return refused(&state, &viewer, kind, &f, &check.errors).await;
    };
    let meta = CommandMeta {
        actor: viewer.caller.actor(),
        correlation_id: crate::http::correlation_id(&headers),
        idempotency: None,
    };
    match state.ledger.fund(&parsed.fund_id, parsed.command, &meta).await {
        Ok(outcome) => {
            // A repeat (Unchanged) may have raced the first send, which may
            // still be on its way into the read models: wait for the head.
            let last_position = match outcome {
                Outcome::Recorded { last_position, .. } => last_position,
                Outcome::Unchanged => {
                    crate::store::repository::head(state.ledger.db()).await.map_err(super::unavailable)?.0
                }
            };
            if !state.ledger.wait_for_projection(last_position, READ_YOUR_WRITES_WAIT).await {
                tracing::warn!(
                    last_position,
                    "the projector is behind; showing the booking before the read models caught up"
                );
            }
            let target = format!(
                "/boeken/geboekt?{}",
                query_string(&[
                    ("soort", kind.anchor()),
                    ("wijk", parsed.wijk_id.as_deref().unwrap_or("")),
                    ("fonds", parsed.fund_id.as_str()),
                ])
            );
            // Post, then redirect: a refresh of the result page sends nothing again.
            Ok(Redirect::to(&target).into_response())
        }
        Err(err) => match refusal(&err) {
            Some(error) => refused(&state, &viewer, kind, &f, &[error]).await,
            None => Err(super::unavailable(err)),
        },
    }
}

/// The form again, with what was typed and what is wrong with it; nothing was stored.
async fn refused(state: &AppState, viewer: &Viewer, kind: Kind, f: &BookingForm, errors: &[FieldError]) -> PageResult {
    let c = choices(state).await?;
    let page = booking_page(viewer, &c, kind, f, errors);
    Ok((StatusCode::UNPROCESSABLE_ENTITY, render(page)).into_response())
}

/// A payment names its commitment; the fund and wijk are the commitment's.
async fn parse_payment(state: &AppState, f: &BookingForm, check: &mut Check) -> Result<Option<Parsed>, Response> {
    let own_id = own_id(Kind::Payment, f, check);
    let commitment = check.value("verplichting", "de verplichting", &f.verplichting, CommitmentId::parse);
    let amount = check.amount("bedrag", &f.bedrag);
    let booked_on = check.date("boekdatum", "boekdatum", &f.boekdatum);
    let reference = check.value("referentie", "de referentie", &f.referentie, Text::parse);
    let Some(commitment_id) = commitment else { return Ok(None) };
    let fund_id = state.ledger.fund_of_commitment(&commitment_id).await.map_err(super::unavailable)?;
    let Some(fund_id) = fund_id else {
        check.fail("verplichting", format!("Verplichting {commitment_id} bestaat niet."));
        return Ok(None);
    };
    let wijk_id = crate::projections::reports::commitment(state.ledger.db(), commitment_id.as_str())
        .await
        .map_err(super::unavailable)?
        .map(|c| c.wijk_id);
    let expense_id = check.value(FORM, "het formulier-id", &own_id, ExpenseId::parse);
    let (Some(amount), Some(booked_on), Some(reference), Some(expense_id)) = (amount, booked_on, reference, expense_id)
    else {
        return Ok(None);
    };
    Ok(Some(Parsed {
        fund_id,
        wijk_id,
        command: FundCommand::Pay { commitment_id, expense_id, amount, booked_on, reference },
    }))
}

pub async fn expense(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    Form(f): Form<BookingForm>,
) -> PageResult {
    book(Kind::Expense, state, viewer, headers, f).await
}

pub async fn commitment(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    Form(f): Form<BookingForm>,
) -> PageResult {
    book(Kind::Commitment, state, viewer, headers, f).await
}

pub async fn payment(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    Form(f): Form<BookingForm>,
) -> PageResult {
    book(Kind::Payment, state, viewer, headers, f).await
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct DoneQuery {
    soort: String,
    wijk: String,
    fonds: String,
}

/// The result of a booking: what the wijk has available now.
pub async fn done(State(state): State<AppState>, viewer: Viewer, Query(q): Query<DoneQuery>) -> PageResult {
    allow(&viewer, Section::Boeken)?;
    let what = match q.soort.as_str() {
        "uitgave" => "De uitgave is geboekt.",
        "verplichting" => "De verplichting is vastgelegd.",
        "betaling" => "De betaling is geboekt.",
        _ => "Geboekt.",
    };
    let budget =
        queries::wijk_budget(state.ledger.db(), &q.wijk, Period::default()).await.map_err(super::unavailable)?;
    let body = html! {
        div class="confirmation" role="status" {
            h1 { (what) }
            @if let Some(b) = &budget {
                @if let Some(line) = b.funds.iter().find(|l| l.fund_id == q.fonds) {
                    p { "Beschikbaar voor " (b.name) " uit " (line.fund_id) ": " strong data-testid="beschikbaar" { (euro(line.totals.amount_remaining.0)) } }
                }
                p { "Resterend wijkbudget van " (b.name) " in totaal: " strong data-testid="resterend" { (euro(b.totals.amount_remaining.0)) } }
            }
        }
        p { a class="button" href="/boeken" { "Nog een boeking" } " "
            @if budget.is_some() { a href={ "/wijken/" (q.wijk) } { "Naar de wijk" } } }
    };
    Ok(render(layout("Geboekt", Some(&viewer), Section::Boeken, body)))
}
