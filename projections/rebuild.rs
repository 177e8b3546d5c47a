//! `wijkbudget rebuild` on PostgreSQL: the read models are built again
//! beside the live ones, in a schema of their own, and swapped in at the
//! end in one transaction. The service keeps serving the old read models
//! (and keeps projecting into them) until the swap, instead of showing
//! half-empty pages for as long as the rebuild takes.
//!
//! Steps, and what a crash at each leaves (`tests/faults.rs` kills a
//! rebuild at every one):
//! 1. `wb_rebuild` is created afresh, with a copy of every read-model table
//!    without its indexes; only the unique keys the projection looks rows
//!    up by are added, and none on the two tables that grow with the log,
//!    `rm_postings` and `rm_expenses`. Crash: the live read models are
//!    untouched; the next rebuild drops the schema.
//! 2. The log is streamed into it (`rebuild_load`): postings and expenses
//!    copied in, everything else written by the projector's own code
//!    (`Apply`, the connections' `search_path` pointing at the new tables),
//!    without waiting for each commit to reach the disk: the swap's commit
//!    does. Crash: as 1.
//! 3. The remaining keys and indexes are built, what the load left for
//!    after it (reversals, a reversal's descriptions) is applied, and the
//!    tables analysed. Crash: as 1.
//! 4. The swap, one transaction: the append lock (no append can slip in),
//!    the checkpoint row's lock (no projector step is running), the events
//!    appended meanwhile projected, the live tables moved to `wb_retired`
//!    and the new ones into their place, the checkpoint set. Crash before
//!    its commit: PostgreSQL rolls all of it back, the live read models are
//!    untouched; after it: the new read models are live.
//! 5. `wb_retired` and `wb_rebuild` are dropped. Crash: leftovers only, which
//!    the next rebuild drops.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Context;
use sqlx::{ConnectOptions, Connection, Executor, PgConnection, PgPool};

use super::apply::READ_MODEL_TABLES;
pub use super::rebuild_load::COPIED;
use super::rebuild_load::{self, SIDE_TABLES};
use super::{Apply, CHECKPOINT, REBUILD_BATCH};
use crate::store::repository::{chained_event_from_row, log_page_sql, APPEND_LOCK};

/// Where the new read models are built, and where the old ones go at the swap.
const BUILDING: &str = "wb_rebuild";
const RETIRED: &str = "wb_retired";

/// What a rebuild reports as it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// The log is loaded up to this position.
    Loaded(i64),
    /// The load is done; keys and indexes are being built.
    Indexing,
    /// The swap has projected what was appended meanwhile up to this position.
    Swapping(i64),
}

/// A finished rebuild: the position the read models are at after the swap,
/// and how long its steps took (steps 1 and 5, making and dropping the
/// schemas, are counted in the load and the swap).
#[derive(Debug, Clone, Copy)]
pub struct Rebuilt {
    pub position: i64,
    pub load: Duration,
    pub indexing: Duration,
    pub swap: Duration,
}

/// Rebuilds the read models of the store behind `pool` from the whole log
/// and swaps them in, telling `progress` where it is.
pub async fn rebuild_beside(pool: &PgPool, mut progress: impl FnMut(Progress)) -> anyhow::Result<Rebuilt> {
    let started = Instant::now();
    // Every statement of a rebuild runs long by design; sqlx's warnings
    // about slow statements would only bury the progress bar.
    let options = pool.connect_options().as_ref().clone().log_slow_statements(log::LevelFilter::Off, Duration::ZERO);
    // A connection of its own: its search_path is changed below, and it
    // must never go back to the pool like that.
    let mut conn = PgConnection::connect_with(&options).await?;
    let live: String = sqlx::query_scalar("SELECT current_schema()").fetch_one(&mut conn).await?;
    let live_quoted = quote(&live);
    let fresh = format!(
        "DROP SCHEMA IF EXISTS {RETIRED} CASCADE; DROP SCHEMA IF EXISTS {BUILDING} CASCADE; CREATE SCHEMA {BUILDING}"
    );
    conn.execute(sqlx::raw_sql(&fresh)).await?;

    // 1. The tables, without their indexes.
    let mut tables: Vec<&str> = READ_MODEL_TABLES.to_vec();
    tables.push("projector_checkpoints");
    for table in &tables {
        let create = format!(
            "CREATE TABLE {BUILDING}.{table} (LIKE {live_quoted}.{table} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
        );
        conn.execute(sqlx::raw_sql(&create)).await?;
    }
    let (keys, indexes) = definitions(&mut conn, &live, &tables).await?;
    let copied = |table: &str| COPIED.contains(&table);
    for (table, key) in keys.iter().filter(|(table, _)| !copied(table)) {
        conn.execute(sqlx::raw_sql(&format!("ALTER TABLE {BUILDING}.{table} ADD {key}"))).await?;
    }

    // 2. The log, streamed into them.
    let session = format!("SET search_path = {BUILDING}, {live_quoted}; SET synchronous_commit = off");
    conn.execute(sqlx::raw_sql(&session)).await?;
    conn.execute(sqlx::raw_sql(SIDE_TABLES)).await?;
    sqlx::query("INSERT INTO projector_checkpoints (name, position) VALUES ($1, 0)")
        .bind(CHECKPOINT)
        .execute(&mut conn)
        .await?;
    let mut position =
        rebuild_load::load(&options, &session, &mut conn, &mut |p| progress(Progress::Loaded(p))).await?;
    let load = started.elapsed();
    progress(Progress::Indexing);

    // 3. The rest of the keys, the indexes, what the load left to update,
    // and statistics for the planner.
    for (table, key) in keys.iter().filter(|(table, _)| copied(table)) {
        conn.execute(sqlx::raw_sql(&format!("ALTER TABLE {BUILDING}.{table} ADD {key}"))).await?;
    }
    for definition in &indexes {
        conn.execute(sqlx::raw_sql(definition)).await?;
    }
    rebuild_load::finish(&mut conn).await?;
    for table in READ_MODEL_TABLES {
        conn.execute(sqlx::raw_sql(&format!("ANALYZE {BUILDING}.{table}"))).await?;
    }
    crate::failpoint::hit("rebuild-before-swap");
    let indexing = started.elapsed() - load;

    // 4. The swap.
    conn.execute(sqlx::raw_sql("SET synchronous_commit = on")).await?;
    let mut tx = conn.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(APPEND_LOCK).execute(&mut *tx).await?;
    sqlx::query(&format!("SELECT position FROM {live_quoted}.projector_checkpoints FOR UPDATE"))
        .execute(&mut *tx)
        .await?;
    while let Some(last) = project_batch(&mut tx, position).await? {
        position = last;
        progress(Progress::Swapping(position));
    }
    tx.execute(sqlx::raw_sql(&format!("CREATE SCHEMA {RETIRED}"))).await?;
    for table in READ_MODEL_TABLES {
        let swap = format!(
            "ALTER TABLE {live_quoted}.{table} SET SCHEMA {RETIRED}; ALTER TABLE {BUILDING}.{table} SET SCHEMA {live_quoted}"
        );
        tx.execute(sqlx::raw_sql(&swap)).await?;
        crate::failpoint::hit("rebuild-mid-swap");
    }
    // As a reset does: only this version's checkpoint remains.
    tx.execute(sqlx::raw_sql(&format!("DELETE FROM {live_quoted}.projector_checkpoints"))).await?;
    sqlx::query(&format!("INSERT INTO {live_quoted}.projector_checkpoints (name, position) VALUES ($1, $2)"))
        .bind(CHECKPOINT)
        .bind(position)
        .execute(&mut *tx)
        .await?;
    tx.commit().await.context("swapping the rebuilt read models in")?;
    crate::failpoint::hit("rebuild-after-swap");

    // 5. Leftovers.
    conn.execute(sqlx::raw_sql(&format!("DROP SCHEMA {RETIRED} CASCADE; DROP SCHEMA {BUILDING} CASCADE"))).await?;
    conn.close().await?;
    Ok(Rebuilt { position, load, indexing, swap: started.elapsed() - load - indexing })
}

/// Projects the next batch after `position` on `conn`'s transaction:
/// the position of its last event, or none at the log's head.
async fn project_batch(conn: &mut PgConnection, position: i64) -> anyhow::Result<Option<i64>> {
    let events = sqlx::query(&log_page_sql())
        .bind(position)
        .bind(REBUILD_BATCH)
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(chained_event_from_row)
        .collect::<sqlx::Result<Vec<_>>>()?;
    let Some(last) = events.last().map(|e| e.position) else { return Ok(None) };
    conn.apply_batch(&events, last).await?;
    Ok(Some(last))
}

/// The live tables' unique keys (table, `CONSTRAINT name ...` to add) and
/// their other indexes (`CREATE INDEX` statements, aimed at the new tables),
/// as the migrations made them.
async fn definitions(
    conn: &mut PgConnection,
    live: &str,
    tables: &[&str],
) -> anyhow::Result<(Vec<(String, String)>, Vec<String>)> {
    let tables: Vec<String> = tables.iter().map(|t| t.to_string()).collect();
    let keys: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT t.relname::text, c.conname::text, pg_get_constraintdef(c.oid) FROM pg_constraint c \
         JOIN pg_class t ON t.oid = c.conrelid JOIN pg_namespace n ON n.oid = t.relnamespace \
         WHERE n.nspname = $1 AND t.relname = ANY($2) AND c.contype IN ('p', 'u') ORDER BY 1, 2",
    )
    .bind(live)
    .bind(&tables)
    .fetch_all(&mut *conn)
    .await?;
    // With an empty search_path every definition names its table's schema,
    // so it can be pointed at the new table without guessing.
    let mut by_table: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut tx = conn.begin().await?;
    tx.execute(sqlx::raw_sql("SET LOCAL search_path = pg_catalog")).await?;
    let indexes: Vec<(String, String)> = sqlx::query_as(
        "SELECT t.relname::text, pg_get_indexdef(i.indexrelid) FROM pg_index i \
         JOIN pg_class t ON t.oid = i.indrelid JOIN pg_namespace n ON n.oid = t.relnamespace \
         WHERE n.nspname = $1 AND t.relname = ANY($2) \
         AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid) ORDER BY 1, 2",
    )
    .bind(live)
    .bind(&tables)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    for (table, definition) in indexes {
        let on_live = format!(" ON {}.{table} ", quote(live));
        anyhow::ensure!(definition.contains(&on_live), "unexpected index definition `{definition}`");
        by_table
            .entry(table.clone())
            .or_default()
            .push(definition.replace(&on_live, &format!(" ON {BUILDING}.{table} ")));
    }
    let keys =
        keys.into_iter().map(|(table, name, definition)| (table, format!("CONSTRAINT {name} {definition}"))).collect();
    Ok((keys, by_table.into_values().flatten().collect()))
}

/// An identifier as PostgreSQL quotes it only when it must (`public` stays
/// `public`), as `pg_get_indexdef` writes it.
fn quote(identifier: &str) -> String {
    let plain = identifier.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !identifier.starts_with(|c: char| c.is_ascii_digit());
    if plain {
        identifier.to_string()
    } else {
        format!("\"{}\"", identifier.replace('"', "\"\""))
    }
}
