//! Integriteit: the hash chain's head, the last verification and its
//! result; finance can start a verification and watch it progress.

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Redirect};
use axum::Form;
use chrono::{DateTime, Utc};
use maud::html;
use serde::Deserialize;

use super::{allow, render, PageResult};
use crate::auth::Role;
use crate::http::AppState;
use crate::verify::LastVerification;
use crate::web::components::{csrf_field, layout, Section};
use crate::web::format::instant;
use crate::web::session::Viewer;

/// A verification started from the page: who started it, how far it got,
/// and how it ended.
#[derive(Debug, Clone)]
pub struct VerificationRun {
    pub started_by: String,
    pub started_at: DateTime<Utc>,
    pub done: u64,
    pub total: u64,
    /// None while it runs.
    pub finished: Option<LastVerification>,
    /// Set when the log could not be read at all.
    pub failed_to_run: bool,
}

impl VerificationRun {
    fn running(&self) -> bool {
        self.finished.is_none() && !self.failed_to_run
    }
}

fn outcome(v: &LastVerification) -> maud::Markup {
    html! {
        @if v.ok {
            p class="ok" data-testid="uitkomst" { strong { "In orde." } " " (v.events.unwrap_or(0)) " gebeurtenissen gecontroleerd; de keten sluit tot " span class="mono" { (v.head.as_deref().unwrap_or("")) } "." }
        } @else {
            p class="problem" data-testid="uitkomst" { strong { "Niet in orde: " } (v.first_problem.as_deref().unwrap_or("")) }
        }
        p { "Klaar op " (instant(&v.finished_at.to_rfc3339())) "." }
    }
}

pub async fn page(State(state): State<AppState>, viewer: Viewer) -> PageResult {
    allow(&viewer, Section::Integriteit)?;
    let (position, hash) = crate::store::repository::head(state.ledger.db()).await.map_err(super::unavailable)?;
    let last = state.last_verification.read().await.clone();
    let run = state.web.verification.read().await.clone();
    let running = run.as_ref().is_some_and(VerificationRun::running);
    let body = html! {
        h1 { "Integriteit" }
        p { "Elke gebeurtenis in het grootboek draagt de hash van de vorige. Wie er één verandert of weghaalt, breekt de keten; een controle vindt de eerste breuk." }
        h2 { "Kop van de keten" }
        dl class="facts" {
            dt { "Laatste positie" } dd data-testid="positie" { (position) }
            dt { "Hash" } dd class="mono" data-testid="kop-hash" { (hash) }
        }
        h2 { "Laatste controle door de dienst" }
        @match &last {
            Some(v) => { (outcome(v)) }
            None => { p { "De dienst heeft de keten sinds de start nog niet helemaal gecontroleerd." } }
        }
        @if let Some(run) = &run {
            h2 { "Controle gestart door " (run.started_by) }
            @if running {
                // With script the page reloads itself while it runs; without, the link does.
                p role="status" data-auto-refresh="2" { "Bezig: " (run.done) " van " (run.total) " gebeurtenissen gecontroleerd. " a href="/integriteit" { "Toon de voortgang opnieuw" } }
                progress max=(run.total.max(1)) value=(run.done) aria-label="Voortgang van de controle" { (run.done) " van " (run.total) }
            } @else if let Some(v) = &run.finished {
                (outcome(v))
            } @else {
                p class="problem" { "De controle kon het grootboek niet lezen. Probeer het later opnieuw." }
            }
        }
        @if viewer.caller.role == Role::Finance && !running {
            form method="post" action="/integriteit" {
                (csrf_field(&viewer))
                button type="submit" class="button" { "Controleer de keten nu" }
            }
        }
    };
    Ok(render(layout("Integriteit", Some(&viewer), Section::Integriteit, body)))
}

#[derive(Debug, Deserialize)]
pub struct StartForm {
    #[serde(default)]
    csrf: String,
}

/// Starts a verification in the background and shows its progress.
pub async fn start(State(state): State<AppState>, viewer: Viewer, Form(f): Form<StartForm>) -> PageResult {
    if viewer.caller.role != Role::Finance {
        return Err(super::forbidden(&viewer, "Alleen Financiën start een controle van de keten."));
    }
    if !viewer.csrf_matches(&f.csrf) {
        return Err(super::bad_request(
            &viewer,
            "Het formulier was verlopen. Open de pagina opnieuw en probeer het nog eens.",
        ));
    }
    {
        let mut slot = state.web.verification.write().await;
        if slot.as_ref().is_some_and(VerificationRun::running) {
            return Ok(Redirect::to("/integriteit").into_response());
        }
        *slot = Some(VerificationRun {
            started_by: viewer.caller.name.clone(),
            started_at: Utc::now(),
            done: 0,
            total: 0,
            finished: None,
            failed_to_run: false,
        });
    }
    let web = Arc::clone(&state.web);
    let last = state.last_verification.clone();
    let db = state.ledger.db().clone();
    tokio::spawn(async move {
        let progress_web = Arc::clone(&web);
        let outcome = crate::verify::verify_database_reporting(&db, None, move |done, total| {
            // Progress is a courtesy: a busy lock skips an update, never blocks the walk.
            if let Ok(mut slot) = progress_web.verification.try_write() {
                if let Some(run) = slot.as_mut() {
                    run.done = done;
                    run.total = total;
                }
            }
        })
        .await;
        let mut slot = web.verification.write().await;
        let Some(run) = slot.as_mut() else { return };
        match outcome {
            Ok(outcome) => {
                let finished = LastVerification::from(&outcome);
                run.done = run.total;
                run.finished = Some(finished.clone());
                *last.write().await = Some(finished);
            }
            Err(err) => {
                tracing::warn!(error = %format!("{err:#}"), "a verification started from the web app could not run");
                run.failed_to_run = true;
            }
        }
    });
    Ok(Redirect::to("/integriteit").into_response())
}
