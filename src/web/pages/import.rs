//! Boeken › Bestand importeren (finance only): upload a spreadsheet of
//! bookings, see every bad row on a page, and book the file once it is
//! good. The import itself is the CLI's and the API's
//! ([`crate::import::job`]): checked row by row on a copy of the ledger,
//! all or nothing, and idempotent by content.
//!
//! The form is a plain multipart upload, so it works without script; a
//! running import's page reloads itself (app.js) or offers a link to.

use axum::extract::{Multipart, Path, State};
use axum::response::{IntoResponse, Redirect};
use axum::Form;
use maud::{html, Markup};
use serde::Deserialize;

use super::{allow, render, PageResult};
use crate::http::AppState;
use crate::import::job::{Busy, ImportRun, RunState};
use crate::web::components::{csrf_field, error_summary, layout, FieldError, Section};
use crate::web::format::instant;
use crate::web::session::Viewer;

pub const PATH: &str = "/boeken/importeren";
const BUSY: &str = "Er loopt al een import; er kan er één tegelijk lopen. Probeer het over een minuut opnieuw.";
/// The demo's bookings as an import file: the format by example.
const EXAMPLE: &str = include_str!("../../../examples/demo-import.csv");

fn stage_name(stage: &str) -> &str {
    match stage {
        "reading" => "bestand lezen",
        "copying" => "kopie van het grootboek maken",
        "checking" => "rijen controleren",
        "booking" => "boeken",
        "projecting" => "overzichten bijwerken",
        other => other,
    }
}

/// "1 rij", "2 rijen".
fn count(n: usize, one: &str, more: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {more}")
    }
}

/// A column as the Dutch header of the import file names it.
fn dutch_header(column: &str) -> &str {
    crate::import::rows::COLUMNS.iter().find(|c| c.0 == column).map_or(column, |c| c.1)
}

fn upload_form(viewer: &Viewer, errors: &[FieldError], dry_run: bool) -> Markup {
    let error = errors.iter().find(|e| e.field == "bestand");
    html! {
        form method="post" action=(PATH) enctype="multipart/form-data" novalidate {
            (csrf_field(viewer))
            div class={ "field" @if error.is_some() { " field-error" } } {
                label for="veld-bestand" { "Bestand (CSV of XLSX)" }
                p class="hint" id="veld-bestand-hint" {
                    "Eén boeking per rij, met de kolommen van het "
                    a href={ (PATH) "/voorbeeld.csv" } download { "voorbeeldbestand" } "."
                }
                @if let Some(e) = error { p class="error-message" id="veld-bestand-fout" { span class="visually-hidden" { "Fout: " } (e.message) } }
                input type="file" id="veld-bestand" name="bestand" accept=".csv,.xlsx,text/csv,application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
                    aria-describedby={ "veld-bestand-hint" @if error.is_some() { " veld-bestand-fout" } } aria-invalid=[error.map(|_| "true")];
            }
            div class="field checkbox" {
                input type="checkbox" id="veld-proef" name="proef" value="ja" checked[dry_run];
                label for="veld-proef" { "Alleen controleren: niets boeken" }
            }
            button type="submit" class="button" { "Bestand inlezen" }
        }
    }
}

fn upload_page(viewer: &Viewer, errors: &[FieldError], dry_run: bool) -> Markup {
    let body = html! {
        h1 { "Bestand importeren" }
        (error_summary(errors))
        p { "Elke rij wordt eerst gecontroleerd alsof ze geboekt wordt, in de volgorde van het bestand. Alleen als alle rijen goed zijn, wordt het bestand geboekt: helemaal of niet. Een bestand dat al geïmporteerd is, boekt niets nog eens." }
        (upload_form(viewer, errors, dry_run))
        h2 { "Het grootboek als importbestand" }
        p { "Alle boekingen tot nu, in de kolommen van een importbestand: een ander grootboek leest het in tot dezelfde bedragen. "
            a href={ (PATH) "/grootboek.xlsx" } download { "Download als Excel" } }
        p { a href="/boeken" { "Terug naar Boeken" } }
    };
    layout(
        if errors.is_empty() { "Bestand importeren" } else { "Fout: Bestand importeren" },
        Some(viewer),
        Section::Boeken,
        body,
    )
}

pub async fn form(viewer: Viewer) -> PageResult {
    allow(&viewer, Section::Boeken)?;
    Ok(render(upload_page(&viewer, &[], true)))
}

pub async fn example(viewer: Viewer) -> PageResult {
    allow(&viewer, Section::Boeken)?;
    Ok(super::wijk::download("voorbeeld-import.csv", "text/csv; charset=utf-8", EXAMPLE.as_bytes().to_vec()))
}

/// The whole ledger as bookings, as `wijkbudget export --what bookings` writes it.
pub async fn ledger_as_bookings(State(state): State<AppState>, viewer: Viewer) -> PageResult {
    allow(&viewer, Section::Boeken)?;
    let file = crate::spreadsheet::render(
        state.ledger.db(),
        crate::spreadsheet::What::Bookings,
        crate::spreadsheet::ExportFormat::Xlsx,
        None,
        None,
        false,
    )
    .await
    .map_err(super::unavailable)?;
    Ok(super::wijk::download(&file.file_name, file.media_type, file.bytes))
}

/// What the upload form sent.
#[derive(Default)]
struct Upload {
    csrf: String,
    dry_run: bool,
    file_name: Option<String>,
    bytes: Vec<u8>,
}

async fn read_upload(mut multipart: Multipart) -> Result<Upload, String> {
    let mut upload = Upload::default();
    while let Some(field) = multipart.next_field().await.map_err(|e| e.body_text())? {
        match field.name() {
            Some("csrf") => upload.csrf = field.text().await.map_err(|e| e.body_text())?,
            Some("proef") => upload.dry_run = true,
            Some("bestand") => {
                upload.file_name = field.file_name().filter(|n| !n.is_empty()).map(str::to_string);
                upload.bytes = field.bytes().await.map_err(|e| e.body_text())?.to_vec();
            }
            _ => {}
        }
    }
    Ok(upload)
}

/// Reads the upload and starts the import in the background.
pub async fn upload(State(state): State<AppState>, viewer: Viewer, multipart: Multipart) -> PageResult {
    allow(&viewer, Section::Boeken)?;
    let upload = match read_upload(multipart).await {
        Ok(upload) => upload,
        Err(why) => {
            let error = FieldError {
                field: "bestand".into(),
                message: format!(
                    "Het bestand kwam niet goed aan ({why}). Een bestand mag hoogstens {} MB zijn; splits een groter bestand.",
                    crate::http::imports::IMPORT_BODY_LIMIT >> 20
                ),
            };
            return Ok(render(upload_page(&viewer, &[error], true)));
        }
    };
    if !viewer.csrf_matches(&upload.csrf) {
        return Err(super::bad_request(
            &viewer,
            "Het formulier was verlopen. Open de pagina opnieuw en probeer het nog eens.",
        ));
    }
    let refuse = |message: String| {
        render(upload_page(&viewer, &[FieldError { field: "bestand".into(), message }], upload.dry_run))
    };
    if upload.bytes.is_empty() {
        return Ok(refuse("Kies een bestand om te importeren.".into()));
    }
    let rows = match crate::import::rows::read_bytes(&upload.bytes) {
        Ok(rows) => rows,
        Err(err) => return Ok(refuse(format!("Dit bestand is niet te lezen als tabel van boekingen: {err:#}"))),
    };
    let actor = viewer.caller.actor();
    match state.imports.start(&state.ledger, rows, upload.file_name, upload.dry_run, actor).await {
        Ok(id) => Ok(Redirect::to(&format!("{PATH}/{id}")).into_response()),
        Err(Busy(_)) => Ok(refuse(BUSY.into())),
    }
}

fn report(run: &ImportRun, viewer: &Viewer) -> Markup {
    let path = format!("{PATH}/{}", run.id);
    html! {
        @match &run.state {
            RunState::Running => {
                p role="status" data-auto-refresh="2" {
                    "Bezig met " (stage_name(&run.stage)) ": " (run.done) " van " (run.total) ". "
                    a href=(path) { "Toon de voortgang opnieuw" }
                }
                progress max=(run.total.max(1)) value=(run.done) aria-label="Voortgang van de import" { (run.done) " van " (run.total) }
            }
            RunState::Failed(why) => {
                div class="error-summary" role="alert" tabindex="-1" {
                    h2 { "De import is gestopt" }
                    p { "Het grootboek gaf een fout: " (why) }
                    p { "Importeer het bestand opnieuw: rijen die al geboekt zijn, worden niet nog eens geboekt." }
                }
            }
            RunState::Finished(r) if !r.problems.is_empty() => {
                div class="error-summary" role="alert" aria-labelledby="fouten-titel" tabindex="-1" {
                    h2 id="fouten-titel" { "Er is niets geboekt" }
                    p { (count(r.problems.len(), "probleem", "problemen")) " in " (count(r.rows, "rij", "rijen")) ". Verbeter het bestand en lees het opnieuw in." }
                    p { "De redenen staan er in de woorden van de API; de kolom met de Nederlandse kopnaam." }
                }
                table class="money" data-testid="problemen" {
                    caption { "Problemen per rij" }
                    thead { tr { th scope="col" { "Rij" } th scope="col" { "Kolom" } th scope="col" { "Reden" } } }
                    tbody {
                        @for p in &r.problems {
                            tr { td { (p.row) } td class="mono" { (p.column.as_deref().map(dutch_header).unwrap_or("")) } td { (p.reason) } }
                        }
                    }
                }
            }
            RunState::Finished(r) if r.dry_run => {
                p class="ok" role="status" data-testid="uitkomst" {
                    strong { @if r.rows == 1 { "De rij is goed." } @else { "Alle " (r.rows) " rijen zijn goed." } }
                    " Er is nog niets geboekt."
                }
                @if run.bookable() {
                    form method="post" action={ (path) "/boeken" } {
                        (csrf_field(viewer))
                        button type="submit" class="button" { "Boek dit bestand" }
                    }
                }
            }
            RunState::Finished(r) => {
                div class="confirmation" role="status" data-testid="uitkomst" {
                    @if r.booked == 0 {
                        h2 { "Niets geboekt: " @if r.rows == 1 { "de rij stond" } @else { "alle " (r.rows) " rijen stonden" } " al in het grootboek." }
                    } @else {
                        h2 { (count(r.booked, "rij", "rijen")) " geboekt." }
                        @if r.already > 0 { p { (count(r.already, "rij stond", "rijen stonden")) " al in het grootboek en " @if r.already == 1 { "is" } @else { "zijn" } " niet nog eens geboekt." } }
                    }
                }
            }
        }
    }
}

pub async fn page(State(state): State<AppState>, viewer: Viewer, Path(id): Path<String>) -> PageResult {
    allow(&viewer, Section::Boeken)?;
    let Some(run) = state.imports.get(&id).await else {
        return Err(super::not_found_page(
            Some(&viewer),
            "Deze import is niet (meer) bekend; de dienst onthoudt imports tot hij herstart. Lees het bestand opnieuw in: wat al geboekt is, wordt niet nog eens geboekt.",
        ));
    };
    let title = if run.dry_run { "Controle van het bestand" } else { "Import van het bestand" };
    let body = html! {
        h1 { (title) }
        dl class="facts" {
            dt { "Bestand" } dd { (run.file_name.as_deref().unwrap_or("(zonder naam)")) }
            dt { "Gestart door" } dd { (run.started_by) }
            dt { "Gestart op" } dd { (instant(&run.started_at.to_rfc3339())) }
        }
        (report(&run, &viewer))
        @if !run.running() {
            h2 { "Nog een bestand" }
            (upload_form(&viewer, &[], true))
        }
        p { a href="/boeken" { "Terug naar Boeken" } }
    };
    Ok(render(layout(title, Some(&viewer), Section::Boeken, body)))
}

#[derive(Debug, Deserialize)]
pub struct BookForm {
    #[serde(default)]
    csrf: String,
}

/// Books the rows of a good dry run.
pub async fn book(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    Form(f): Form<BookForm>,
) -> PageResult {
    allow(&viewer, Section::Boeken)?;
    if !viewer.csrf_matches(&f.csrf) {
        return Err(super::bad_request(
            &viewer,
            "Het formulier was verlopen. Open de pagina opnieuw en probeer het nog eens.",
        ));
    }
    let actor = viewer.caller.actor();
    match state.imports.book_dry_run(&id, &state.ledger, actor).await {
        Ok(Some(new_id)) => Ok(Redirect::to(&format!("{PATH}/{new_id}")).into_response()),
        Err(Busy(_)) => Err(super::bad_request(&viewer, BUSY)),
        Ok(None) => Err(super::bad_request(
            &viewer,
            "Deze controle kan niet (meer) geboekt worden: ze had problemen, of is al geboekt. Lees het bestand opnieuw in.",
        )),
    }
}

/// The route table's entry for an upload: a file is larger than any form.
pub fn upload_limit() -> axum::extract::DefaultBodyLimit {
    axum::extract::DefaultBodyLimit::max(crate::http::imports::IMPORT_BODY_LIMIT)
}
