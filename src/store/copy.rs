//! A throwaway copy of a ledger, to try bookings on before they are made,
//! and the way back: the import books a file on a copy first, row by row
//! through the real `Ledger`, so every rule is checked exactly as it would
//! be; only when the whole file is good does the real ledger change. It
//! lives here because only `store` writes the log's tables, even a copy's.

use anyhow::Context;

use crate::on_db;
use crate::store::repository::{head_or_genesis, insert_events, read_log, APPEND_LOCK, HEAD_SQL};
use crate::store::{Db, WritePool};

/// Events read and written per statement.
const PAGE: i64 = 500;

/// Copies `db` into a new SQLite file at `path`, opened for scratch work
/// ([`Db::connect_scratch`]). A SQLite ledger is copied whole (`VACUUM
/// INTO`); a PostgreSQL one by its log, client ids and idempotency keys,
/// after which the caller rebuilds the read models. Returns the copy and
/// whether the read models came along.
pub async fn copy(db: &Db, path: &std::path::Path, progress: impl FnMut(i64)) -> anyhow::Result<(Db, bool)> {
    match db {
        Db::Sqlite(pool) => {
            sqlx::query("VACUUM INTO $1")
                .bind(path.display().to_string())
                .execute(pool)
                .await
                .context("copying the ledger to try the import on")?;
            Ok((Db::connect_scratch(path).await?, true))
        }
        Db::Postgres(_) => {
            let scratch = Db::connect_scratch(path).await?;
            scratch.migrate().await?;
            append_log_rows_if(db, &scratch, None, progress).await?;
            Ok((scratch, false))
        }
    }
}

/// Appends to `db` what `copy` holds after position `base`: its events,
/// client ids and idempotency keys, in one transaction under the append
/// lock, but only if `db`'s head is still `base` (position and hash), the
/// head the copy was made from. Then the copy's events were decided on
/// exactly the state `db` still has, every check of every command holds
/// on `db` as it held on the copy, and the copy's hash chain continues
/// `db`'s. Returns false, having written nothing, if `db` moved on.
pub async fn append_from_copy(
    copy: &Db,
    db: &Db,
    base: &(i64, String),
    progress: impl FnMut(i64),
) -> anyhow::Result<bool> {
    append_log_rows_if(copy, db, Some(base), progress).await
}

/// Copies the log rows of `from` after `expect`'s position (or all of them)
/// into `to`, in one transaction; with `expect`, only if `to`'s head,
/// read under the append lock, is `expect`.
async fn append_log_rows_if(
    from: &Db,
    to: &Db,
    expect: Option<&(i64, String)>,
    mut progress: impl FnMut(i64),
) -> anyhow::Result<bool> {
    let after = expect.map_or(0, |(position, _)| *position);
    let postgres = matches!(to, Db::Postgres(_));
    on_db!(to, pool => {
        let mut tx = pool.begin_locked(APPEND_LOCK).await?;
        if let Some(expect) = expect {
            if head_or_genesis(sqlx::query_as(HEAD_SQL).fetch_optional(&mut *tx).await?) != *expect {
                return Ok(false);
            }
        }
        let mut position = after;
        loop {
            let events = read_log(from, position, PAGE).await?;
            let Some(last) = events.last().map(|e| e.position) else { break };
            // Payload and metadata as their canonical text: what was hashed.
            let mut sql = sqlx::QueryBuilder::new("");
            insert_events!(sql, &events, postgres);
            sql.build().persistent(false).execute(&mut *tx).await?;
            position = last;
            progress(position);
        }
        let claims: Vec<(String, String, String, i64)> = on_db!(from, source => {
            sqlx::query_as("SELECT kind, id, aggregate_id, position FROM client_ids WHERE position > $1 ORDER BY position")
                .bind(after)
                .fetch_all(source)
                .await?
        });
        for chunk in claims.chunks(PAGE as usize) {
            let mut sql = sqlx::QueryBuilder::new("INSERT INTO client_ids (kind, id, aggregate_id, position) ");
            sql.push_values(chunk, |mut row, (kind, id, owner, position)| {
                row.push_bind(kind.as_str()).push_bind(id.as_str()).push_bind(owner.as_str()).push_bind(*position);
            });
            sql.build().persistent(false).execute(&mut *tx).await?;
        }
        let keys: Vec<(String, String, i64, i64)> = on_db!(from, source => {
            sqlx::query_as(
                "SELECT key, fingerprint, first_position, last_position FROM idempotency_keys \
                 WHERE first_position > $1 ORDER BY first_position",
            )
            .bind(after)
            .fetch_all(source)
            .await?
        });
        for chunk in keys.chunks(PAGE as usize) {
            let mut sql = sqlx::QueryBuilder::new(
                "INSERT INTO idempotency_keys (key, fingerprint, first_position, last_position) ",
            );
            sql.push_values(chunk, |mut row, (key, fingerprint, first, last)| {
                row.push_bind(key.as_str()).push_bind(fingerprint.as_str()).push_bind(*first).push_bind(*last);
            });
            sql.build().persistent(false).execute(&mut *tx).await?;
        }
        if expect.is_some() {
            crate::failpoint::hit("import-before-commit");
        }
        tx.commit().await?;
        Ok(true)
    })
}
