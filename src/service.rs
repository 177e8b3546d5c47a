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
        Ok(Self::on(db))
    }

    /// The command side and projector of a store already open and migrated.
    pub fn on(db: Db) -> Self {
        let repo = LedgerRepository::new(db.clone());
        // Appends project their own events while the read models are up to
        // date; the projector catches up the rest (see ARCHITECTURE.md).
        let projector = Projector::for_repository(&repo);
        let ledger = Ledger::new(repo, projector.subscribe());
        Self { db, ledger, projector }
    }

    /// The service around a ledger already running in this process, such as
    /// the HTTP server's: the same store, the same decided-state cache, and
    /// a projector on the same checkpoint channel.
    pub fn of_ledger(ledger: &Ledger) -> Self {
        let projector = Projector::for_repository(ledger.repository());
        Self { db: ledger.db().clone(), ledger: ledger.clone(), projector }
    }

    /// Serves HTTP on `listen` until SIGTERM or Ctrl-C; in-flight requests
    /// finish first, and the projector stops between transactions.
    pub async fn serve(self, listen: SocketAddr, ready: impl FnOnce(SocketAddr)) -> anyhow::Result<()> {
        self.serve_with(listen, Limits::default(), ready).await
    }

    /// Like [`Service::serve`], with other connection limits.
    pub async fn serve_with(
        self,
        listen: SocketAddr,
        limits: Limits,
        ready: impl FnOnce(SocketAddr),
    ) -> anyhow::Result<()> {
        let Self { db, ledger, projector } = self;
        // Listen for the stop signals before the port opens: a SIGTERM that
        // came between the two would otherwise kill the process outright.
        let stop_signals = StopSignals::register();
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
        serve_connections(listener, http::router(state), limits, stop_signals).await;
        let _ = stop.send(true);
        verifier.abort();
        let _ = projector_task.await;
        db.close().await;
        tracing::info!("stopped cleanly");
        Ok(())
    }
}

/// The most connections served at once. Past it, new connections wait in
/// the listen backlog until one closes, so slow or idle clients cannot use
/// up the process's file descriptors (commonly 1,024), which the store's
/// connections and files need too.
pub const MAX_CONNECTIONS: usize = 256;
/// How long a client has to send a request's headers, counted from when the
/// server starts waiting for them (after connecting, or after the previous
/// answer on a kept-alive connection). A client sending byte by byte, or
/// an idle connection, is cut off after it. A body that never finishes is
/// cut off by the request timeout (`http::REQUEST_TIMEOUT`, 30 s).
pub const HEADER_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// What a server holds its clients to.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// See [`MAX_CONNECTIONS`].
    pub max_connections: usize,
    /// See [`HEADER_READ_TIMEOUT`].
    pub header_read_timeout: std::time::Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self { max_connections: MAX_CONNECTIONS, header_read_timeout: HEADER_READ_TIMEOUT }
    }
}

/// How long in-flight requests get to finish after SIGTERM or Ctrl-C.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(30);

/// Accepts HTTP/1.1 connections until shutdown is asked, at most
/// `max_connections` at a time, each with the header read timeout; then
/// lets in-flight requests finish. (axum::serve sets neither limit.)
async fn serve_connections(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    limits: Limits,
    stop_signals: StopSignals,
) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::service::TowerToHyperService;

    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let shutdown = stop_signals.received();
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of descriptors, or a connection reset before it
                    // was accepted: wait a moment instead of spinning.
                    tracing::warn!(error = %err, "accepting a connection failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout)
            .serve_connection(TokioIo::new(stream), TowerToHyperService::new(router.clone()));
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(error = %err, "connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown()).await.is_err() {
        tracing::warn!("in-flight requests did not finish within {} s; stopping anyway", SHUTDOWN_GRACE.as_secs());
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

/// SIGTERM and Ctrl-C, listened for from the moment they are registered.
struct StopSignals {
    #[cfg(unix)]
    terminate: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    interrupt: Option<tokio::signal::unix::Signal>,
}

impl StopSignals {
    fn register() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Self { terminate: signal(SignalKind::terminate()).ok(), interrupt: signal(SignalKind::interrupt()).ok() }
        }
        #[cfg(not(unix))]
        Self {}
    }

    async fn received(self) {
        #[cfg(unix)]
        {
            let wait = |signal: Option<tokio::signal::unix::Signal>| async move {
                match signal {
                    Some(mut signal) => {
                        signal.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = wait(self.terminate) => {}
                _ = wait(self.interrupt) => {}
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
        tracing::info!("shutdown requested; finishing in-flight requests");
    }
}
