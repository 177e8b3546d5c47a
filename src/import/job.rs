//! Imports started over HTTP, from the API or the web app's booking pages.
//! A large file takes longer than a request may, so an import runs in the
//! background and is followed by its id; one runs at a time per process,
//! because each is checked against the whole ledger as it stands. The last
//! few runs are kept in memory with their reports, and are lost when the
//! service stops: the ledger itself holds what they booked, and importing
//! the same file again books nothing twice.

use std::collections::VecDeque;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::sync::RwLock;

use super::rows::Row;
use super::Report;
use crate::ledger::{Actor, Ledger};
use crate::service::Service;

/// Finished runs kept for their reports, newest first.
const KEEP: usize = 10;

/// One import: who started it, how far it got, and how it ended.
#[derive(Debug, Clone)]
pub struct ImportRun {
    pub id: String,
    pub started_by: String,
    pub started_at: DateTime<Utc>,
    /// The file's name as uploaded, if it had one.
    pub file_name: Option<String>,
    pub dry_run: bool,
    /// The step it is at: reading, copying, checking, booking, projecting.
    pub stage: String,
    pub done: u64,
    pub total: u64,
    pub state: RunState,
    /// The rows, kept after a dry run, so the same file can be booked
    /// without sending it again; dropped once the run is booked or forgotten.
    pub rows: Option<Arc<Vec<Row>>>,
}

#[derive(Debug, Clone)]
pub enum RunState {
    Running,
    Finished(Report),
    /// The ledger failed underneath (not a bad row): why, and that the file
    /// can simply be imported again.
    Failed(String),
}

impl ImportRun {
    pub fn running(&self) -> bool {
        matches!(self.state, RunState::Running)
    }

    /// Whether this was a dry run without a problem, whose rows can be booked now.
    pub fn bookable(&self) -> bool {
        self.dry_run && self.rows.is_some() && matches!(&self.state, RunState::Finished(r) if r.problems.is_empty())
    }
}

/// Another import is still running.
#[derive(Debug)]
pub struct Busy(pub String);

/// The imports of this process.
#[derive(Debug, Default)]
pub struct Imports {
    runs: RwLock<VecDeque<ImportRun>>,
}

impl Imports {
    /// Starts importing `rows` in the background; returns the run's id, or
    /// [`Busy`] with the id of the import still running.
    pub async fn start(
        self: &Arc<Self>,
        ledger: &Ledger,
        rows: Vec<Row>,
        file_name: Option<String>,
        dry_run: bool,
        actor: Actor,
    ) -> Result<String, Busy> {
        let id = uuid::Uuid::new_v4().to_string();
        let rows = Arc::new(rows);
        {
            let mut runs = self.runs.write().await;
            if let Some(running) = runs.iter().find(|r| r.running()) {
                return Err(Busy(running.id.clone()));
            }
            runs.push_front(ImportRun {
                id: id.clone(),
                started_by: actor.name.clone(),
                started_at: Utc::now(),
                file_name,
                dry_run,
                stage: "reading".into(),
                done: 0,
                total: rows.len() as u64,
                state: RunState::Running,
                rows: None,
            });
            runs.truncate(KEEP);
        }
        let service = Service::of_ledger(ledger);
        let imports = Arc::clone(self);
        let run_id = id.clone();
        tokio::spawn(async move {
            let progress_imports = Arc::clone(&imports);
            let progress_id = run_id.clone();
            let outcome = super::import(&service, &rows, dry_run, &actor, move |stage, done, total| {
                // Progress is a courtesy: a busy lock skips an update, never blocks the import.
                if let Ok(mut runs) = progress_imports.runs.try_write() {
                    if let Some(run) = runs.iter_mut().find(|r| r.id == progress_id) {
                        if run.stage != stage {
                            run.stage = stage.to_string();
                        }
                        run.done = done;
                        run.total = total;
                    }
                }
            })
            .await;
            let mut runs = imports.runs.write().await;
            let Some(run) = runs.iter_mut().find(|r| r.id == run_id) else { return };
            run.done = run.total;
            match outcome {
                Ok(report) => {
                    if report.dry_run && report.problems.is_empty() {
                        run.rows = Some(rows);
                    }
                    run.state = RunState::Finished(report);
                }
                Err(err) => {
                    tracing::warn!(error = %format!("{err:#}"), "an import failed to run");
                    run.state = RunState::Failed(format!("{err:#}"));
                }
            }
        });
        Ok(id)
    }

    pub async fn get(&self, id: &str) -> Option<ImportRun> {
        self.runs.read().await.iter().find(|r| r.id == id).cloned()
    }

    /// Books the rows of a good dry run, without the file being sent again:
    /// the new run's id, None if `id` is no good dry run whose rows are
    /// still here (they are booked once), or [`Busy`].
    pub async fn book_dry_run(
        self: &Arc<Self>,
        id: &str,
        ledger: &Ledger,
        actor: Actor,
    ) -> Result<Option<String>, Busy> {
        let (file_name, rows) = {
            let mut runs = self.runs.write().await;
            if let Some(running) = runs.iter().find(|r| r.running()) {
                return Err(Busy(running.id.clone()));
            }
            let Some(run) = runs.iter_mut().find(|r| r.id == id && r.bookable()) else { return Ok(None) };
            let rows = run.rows.take().expect("a bookable run has its rows");
            (run.file_name.clone(), Arc::try_unwrap(rows).unwrap_or_else(|shared| shared.as_ref().clone()))
        };
        self.start(ledger, rows, file_name, false, actor).await.map(Some)
    }
}
