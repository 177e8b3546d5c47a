//! Wiring: opens a store, applies migrations, and runs the projector and
//! the HTTP server until shutdown.

use std::net::SocketAddr;

use anyhow::Context;
use tokio::sync::watch;

use crate::http::{self, AppState};
use crate::ledger::Ledger;
use crate::projections::{self, Projector};
use crate::store::repository::LedgerRepository;
use crate::store::Db;

/// An open store with its command side and its projector.
pub struct Service {
    pub db: Db,
    pub ledger: Ledger,
    pub projector: Projector,
}

impl Service {
    /// Connects and migrates; the projector is created but not yet running.
    pub async fn open(database_url: &str) -> anyhow::Result<Self> {
        Self::open_with(database_url, true).await
    }

    /// Like [`Service::open`]; with `migrate` false it only checks that the
    /// schema is up to date, for a least-privilege service role.
    pub async fn open_with(database_url: &str, migrate: bool) -> anyhow::Result<Self> {
        let db = Db::connect(database_url).await?;
        if migrate {
            db.migrate().await?;
        } else {
            db.check_migrated().await?;
        }
        let repo = LedgerRepository::new(db.clone());
        let projector = Projector::new(db.clone(), repo.appended());
        let ledger = Ledger::new(repo, projector.subscribe());
        Ok(Self { db, ledger, projector })
    }

    /// Serves HTTP on `listen` until SIGTERM or Ctrl-C; in-flight requests
    /// finish first, and the projector stops between transactions.
    pub async fn serve(self, listen: SocketAddr, ready: impl FnOnce(SocketAddr)) -> anyhow::Result<()> {
        let Self { db, ledger, projector } = self;
        // Catching up can mean a whole rebuild (a new projection version on a
        // big log), so it runs in rebuild-sized batches and shows progress.
        let projector = projector.with_batch_size(projections::REBUILD_BATCH);
        projector
            .catch_up(|position| tracing::info!(position, "bringing the read models up to date"))
            .await
            .context("bringing the read models up to date")?;
        let projector = projector.with_batch_size(projections::BATCH);
        let (stop, stopped) = watch::channel(false);
        let projector_task = tokio::spawn(projector.run(stopped));
        let listener = tokio::net::TcpListener::bind(listen).await.with_context(|| {
            format!("listening on {listen}; is another process using it? pick another with --listen")
        })?;
        ready(listener.local_addr()?);
        let state = AppState::new(ledger);
        let verifier = tokio::spawn(verify_periodically(db.clone(), state.last_verification.clone()));
        axum::serve(listener, http::router(state))
            .with_graceful_shutdown(shutdown_signal())
            .await
            .context("serving HTTP")?;
        let _ = stop.send(true);
        verifier.abort();
        let _ = projector_task.await;
        db.close().await;
        tracing::info!("stopped cleanly");
        Ok(())
    }
}

/// How often the service re-verifies the whole hash chain by itself.
const VERIFY_EVERY: std::time::Duration = std::time::Duration::from_secs(6 * 3600);

/// Re-walks the chain at start and then every [`VERIFY_EVERY`], keeping the
/// outcome for `GET /api/v1/integrity`.
async fn verify_periodically(db: Db, cell: crate::verify::LastVerificationCell) {
    // Each run must extend the last head that verified: a chain rewritten (or
    // cut short) in between would otherwise verify anew. A failed run does
    // not forget it.
    let mut last_good: Option<crate::verify::Head> = None;
    loop {
        match crate::verify::verify_database(&db, last_good.as_ref(), false).await {
            Ok(outcome) => {
                match &outcome {
                    Ok(report) => last_good = Some(report.head.clone()),
                    Err(failure) => tracing::error!(%failure, "the event log fails verification"),
                }
                *cell.write().await = Some(crate::verify::LastVerification::from(&outcome));
            }
            Err(err) => tracing::warn!(error = %format!("{err:#}"), "could not verify the event log"),
        }
        tokio::time::sleep(VERIFY_EVERY).await;
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
    tracing::info!("shutdown requested; finishing in-flight requests");
}
