//! A throwaway copy of a ledger, to try bookings on before they are made:
//! the import books a file there first, row by row through the real ledger,
//! so every rule is checked exactly as it would be, and the real ledger is
//! touched only when the whole file is good. It lives here because only
//! `store` writes the log's tables, even a copy's.

use anyhow::Context;
use sqlx::Row;

use crate::on_db;
use crate::store::chain::canonical_json;
use crate::store::repository::read_log;
use crate::store::Db;

/// Rows copied per statement from PostgreSQL.
const COPY_PAGE: i64 = 500;

/// Copies `db` into a new SQLite file at `path` and returns its URL. A
/// SQLite ledger is copied whole (`VACUUM INTO`); a PostgreSQL one by its
/// log, client ids and idempotency keys, after which the caller rebuilds the
/// read models. Returns whether the read models came along.
pub async fn copy(db: &Db, path: &std::path::Path, mut progress: impl FnMut(i64)) -> anyhow::Result<(String, bool)> {
    let url = format!("sqlite://{}", path.display());
    match db {
        Db::Sqlite(pool) => {
            sqlx::query("VACUUM INTO $1")
                .bind(path.display().to_string())
                .execute(pool)
                .await
                .context("copying the ledger to try the import on")?;
            Ok((url, true))
        }
        Db::Postgres(pool) => {
            let scratch = Db::connect(&url).await?;
            scratch.migrate().await?;
            let Db::Sqlite(target) = &scratch else { unreachable!("a sqlite:// URL opens SQLite") };
            let mut after = 0;
            loop {
                let events = read_log(db, after, COPY_PAGE).await?;
                let Some(last) = events.last().map(|e| e.position) else { break };
                let mut tx = target.begin().await?;
                for e in &events {
                    sqlx::query(
                        "INSERT INTO events (position, event_id, recorded_at, aggregate_type, aggregate_id, sequence, \
                         event_type, event_version, payload, metadata, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                    )
                    .bind(e.position)
                    .bind(&e.event_id)
                    .bind(e.recorded_at)
                    .bind(&e.aggregate_type)
                    .bind(&e.aggregate_id)
                    .bind(e.sequence)
                    .bind(&e.event_type)
                    .bind(&e.event_version)
                    .bind(canonical_json(&e.payload))
                    .bind(canonical_json(&e.metadata))
                    .bind(&e.hash)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                after = last;
                progress(after);
            }
            let claims = sqlx::query("SELECT kind, id, aggregate_id, position FROM client_ids").fetch_all(pool).await?;
            let keys = sqlx::query("SELECT key, fingerprint, first_position, last_position FROM idempotency_keys")
                .fetch_all(pool)
                .await?;
            let mut tx = target.begin().await?;
            for r in &claims {
                sqlx::query("INSERT INTO client_ids (kind, id, aggregate_id, position) VALUES ($1, $2, $3, $4)")
                    .bind(r.try_get::<String, _>("kind")?)
                    .bind(r.try_get::<String, _>("id")?)
                    .bind(r.try_get::<String, _>("aggregate_id")?)
                    .bind(r.try_get::<i64, _>("position")?)
                    .execute(&mut *tx)
                    .await?;
            }
            for r in &keys {
                sqlx::query(
                    "INSERT INTO idempotency_keys (key, fingerprint, first_position, last_position) VALUES ($1, $2, $3, $4)",
                )
                .bind(r.try_get::<String, _>("key")?)
                .bind(r.try_get::<String, _>("fingerprint")?)
                .bind(r.try_get::<i64, _>("first_position")?)
                .bind(r.try_get::<i64, _>("last_position")?)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            scratch.close().await;
            Ok((url, false))
        }
    }
}

/// The log's head position of a store, for progress.
pub async fn head(db: &Db) -> anyhow::Result<i64> {
    Ok(on_db!(db, pool => {
        sqlx::query_scalar::<_, i64>("SELECT CAST(COALESCE(MAX(position), 0) AS BIGINT) FROM events").fetch_one(pool).await?
    }))
}
