//! Bearer tokens and roles. A token is shown once, when created; only its
//! SHA-256 hash is stored, so a copy of the database reveals no token.
//!
//! A token that authenticated is remembered in memory for at most
//! [`TOKEN_CACHE_TTL`], so a busy client costs one token lookup a second
//! rather than one per request. Revoking a token in this process (the CLI's
//! `wijkbudget token revoke` against the same process's store, or
//! [`revoke_token`]) forgets every remembered token at once; a revocation
//! made by another process (another instance, the CLI run separately) takes
//! effect here within [`TOKEN_CACHE_TTL`].

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use rand::RngCore;
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::Row;

use crate::on_db;
use crate::store::Db;

/// What a caller may do (see the access matrix in README.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Writes everything and reads everything.
    Finance,
    /// Reads only the budget and audit trail of the wijken on its token.
    Wijkregisseur,
    /// Reads wijk summaries and funds; the audit trail without names.
    Council,
    /// Reads everything, including the raw event log; writes nothing.
    Auditor,
}

pub const ROLES: [Role; 4] = [Role::Finance, Role::Wijkregisseur, Role::Council, Role::Auditor];

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Finance => "finance",
            Self::Wijkregisseur => "wijkregisseur",
            Self::Council => "council",
            Self::Auditor => "auditor",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        ROLES
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("unknown role `{s}`; use one of finance, wijkregisseur, council, auditor"))
    }
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub name: String,
    pub role: Role,
    /// The wijken a wijkregisseur may read.
    pub wijken: Vec<String>,
}

impl Caller {
    /// The caller as recorded on the events of what they book.
    pub fn actor(&self) -> crate::ledger::Actor {
        crate::ledger::Actor { name: self.name.clone(), role: self.role.as_str().to_string() }
    }

    pub fn may_read_wijk(&self, wijk_id: &str) -> bool {
        self.role != Role::Wijkregisseur || self.wijken.iter().any(|w| w == wijk_id)
    }
}

fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Creates a token and returns it; it cannot be shown again.
pub async fn create_token(db: &Db, role: Role, wijken: &[String], name: &str) -> anyhow::Result<String> {
    if role == Role::Wijkregisseur && wijken.is_empty() {
        anyhow::bail!("a wijkregisseur token needs at least one --wijk WIJK");
    }
    if role != Role::Wijkregisseur && !wijken.is_empty() {
        anyhow::bail!("--wijk only applies to wijkregisseur tokens; {role} reads every wijk");
    }
    let mut secret = [0u8; 24];
    rand::thread_rng().fill_bytes(&mut secret);
    let token = format!("wb_{}", hex::encode(secret));
    on_db!(db, pool => {
        sqlx::query("INSERT INTO api_tokens (token_hash, name, role, wijken, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(hash_token(&token))
            .bind(name)
            .bind(role.as_str())
            .bind(wijken.join(","))
            .bind(Utc::now().to_rfc3339())
            .execute(pool)
            .await?;
    });
    Ok(token)
}

/// The longest a token revoked by another process (another instance, or the
/// CLI run on its own) is still accepted here. A revocation in this process
/// takes effect at once.
pub const TOKEN_CACHE_TTL: Duration = Duration::from_secs(1);
/// At most this many remembered tokens; when full, the cache starts afresh.
const TOKEN_CACHE_MAX: usize = 10_000;

/// Tokens that authenticated lately, per store: (store, token hash) -> caller.
/// The store is told apart by its pool's identity, so a process with two
/// stores (tests do this) never accepts one store's token for the other.
/// Only positive answers are remembered: an unknown or revoked token is
/// looked up every time.
struct TokenCache {
    /// Bumped by every revocation in this process; an entry from an older
    /// generation is never used.
    generation: AtomicU64,
    entries: Mutex<HashMap<(usize, String), (Caller, Instant, u64)>>,
}

static TOKENS: LazyLock<TokenCache> =
    LazyLock::new(|| TokenCache { generation: AtomicU64::new(0), entries: Mutex::new(HashMap::new()) });

/// Which store a pool reaches, for as long as the pool lives.
fn store_identity(db: &Db) -> usize {
    on_db!(db, pool => std::sync::Arc::as_ptr(&pool.connect_options()) as usize)
}

impl TokenCache {
    fn get(&self, key: &(usize, String)) -> Option<Caller> {
        let generation = self.generation.load(Ordering::SeqCst);
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let (caller, at, seen_generation) = entries.get(key)?;
        (*seen_generation == generation && at.elapsed() < TOKEN_CACHE_TTL).then(|| caller.clone())
    }

    /// `generation` is the one read before the lookup, so a revocation that
    /// raced the lookup leaves an entry that is never used.
    fn put(&self, key: (usize, String), caller: Caller, generation: u64) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= TOKEN_CACHE_MAX {
            entries.clear();
        }
        entries.insert(key, (caller, Instant::now(), generation));
    }

    fn forget_all(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

/// The caller a token belongs to, if it exists and is not revoked (see the
/// module's note on how long a revocation elsewhere takes to reach here).
pub async fn authenticate(db: &Db, token: &str) -> sqlx::Result<Option<Caller>> {
    let hash = hash_token(token);
    let key = (store_identity(db), hash);
    if let Some(caller) = TOKENS.get(&key) {
        return Ok(Some(caller));
    }
    let generation = TOKENS.generation.load(Ordering::SeqCst);
    let caller = lookup(db, &key.1).await?;
    if let Some(caller) = &caller {
        TOKENS.put(key, caller.clone(), generation);
    }
    Ok(caller)
}

async fn lookup(db: &Db, hash: &str) -> sqlx::Result<Option<Caller>> {
    let row = on_db!(db, pool => {
        sqlx::query("SELECT name, role, wijken FROM api_tokens WHERE token_hash = $1 AND revoked_at IS NULL")
            .bind(hash)
            .fetch_optional(pool)
            .await?
            .map(|r| -> sqlx::Result<(String, String, String)> {
                Ok((r.try_get("name")?, r.try_get("role")?, r.try_get("wijken")?))
            })
            .transpose()?
    });
    Ok(row.and_then(|(name, role, wijken)| {
        let role = role.parse().ok()?;
        let wijken = wijken.split(',').filter(|w| !w.is_empty()).map(str::to_string).collect();
        Some(Caller { name, role, wijken })
    }))
}

#[derive(Debug, Clone, Serialize)]
pub struct TokenInfo {
    /// The first 12 hex digits of the token's hash: enough to revoke it by.
    pub id: String,
    pub name: String,
    pub role: String,
    pub wijken: String,
    pub created_at: String,
    pub revoked_at: Option<String>,
}

pub async fn list_tokens(db: &Db) -> sqlx::Result<Vec<TokenInfo>> {
    on_db!(db, pool => {
        let rows = sqlx::query("SELECT token_hash, name, role, wijken, created_at, revoked_at FROM api_tokens ORDER BY created_at")
            .fetch_all(pool)
            .await?;
        rows.iter().map(|r| {
            let hash: String = r.try_get("token_hash")?;
            Ok(TokenInfo {
                id: hash[..12].to_string(),
                name: r.try_get("name")?,
                role: r.try_get("role")?,
                wijken: r.try_get("wijken")?,
                created_at: r.try_get("created_at")?,
                revoked_at: r.try_get("revoked_at")?,
            })
        }).collect()
    })
}

/// Revokes the tokens whose id (hash prefix, at least 8 digits) or name matches. Returns how many.
pub async fn revoke_token(db: &Db, id_or_name: &str) -> anyhow::Result<u64> {
    let prefix = if id_or_name.len() >= 8 && id_or_name.chars().all(|c| c.is_ascii_hexdigit()) {
        format!("{id_or_name}%")
    } else {
        // A name never matches as a hash prefix.
        "-".to_string()
    };
    let revoked = on_db!(db, pool => {
        sqlx::query("UPDATE api_tokens SET revoked_at = $1 WHERE revoked_at IS NULL AND (token_hash LIKE $2 OR name = $3)")
            .bind(Utc::now().to_rfc3339())
            .bind(prefix)
            .bind(id_or_name)
            .execute(pool)
            .await?
            .rows_affected()
    });
    // After the update, so a lookup that starts now sees the revocation.
    TOKENS.forget_all();
    Ok(revoked)
}
