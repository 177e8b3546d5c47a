//! Scenario 1's baselines, the systems it measures wijkbudget against at the
//! same client counts: raw single-row INSERTs, plain cqrs-es + postgres-es
//! with a tiny equivalent aggregate, and raw durable SQLite transactions.

use super::*;

/// Baseline (a): one event-sized row per INSERT, each its own transaction.
pub(crate) struct RawClient {
    pub(crate) pool: PgPool,
    pub(crate) row: Arc<String>,
}

impl Client for RawClient {
    async fn call(&mut self) -> anyhow::Result<()> {
        sqlx::query("INSERT INTO raw_events (body) VALUES ($1::json)")
            .bind(self.row.as_str())
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Baseline (b): plain cqrs-es + postgres-es with a tiny equivalent aggregate
// ---------------------------------------------------------------------------

#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct PlainFund {
    pub(crate) established: bool,
    pub(crate) unallocated_cents: i64,
    /// wijk -> (allocated, spent) in cents.
    pub(crate) lines: BTreeMap<String, (i64, i64)>,
    pub(crate) expenses: BTreeSet<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct PlainExpense {
    pub(crate) expense_id: String,
    pub(crate) wijk_id: String,
    pub(crate) amount: String,
    pub(crate) initiative: String,
    pub(crate) theme: String,
    pub(crate) booked_on: String,
    pub(crate) reference: String,
}

#[derive(Debug, Clone)]
pub(crate) enum PlainCommand {
    Establish { amount: String },
    Allocate { wijk_id: String, amount: String },
    RecordExpense(PlainExpense),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) enum PlainEvent {
    FundEstablished { amount: String },
    BudgetAllocated { wijk_id: String, amount: String },
    ExpenseRecorded(PlainExpense),
}

impl DomainEvent for PlainEvent {
    fn event_type(&self) -> String {
        match self {
            Self::FundEstablished { .. } => "FundEstablished",
            Self::BudgetAllocated { .. } => "BudgetAllocated",
            Self::ExpenseRecorded(_) => "ExpenseRecorded",
        }
        .into()
    }
    fn event_version(&self) -> String {
        "1.0.0".into()
    }
}

#[derive(Debug)]
pub(crate) struct PlainError(String);

impl std::fmt::Display for PlainError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PlainError {}

pub(crate) fn cents_of(amount: &str) -> i64 {
    let (euro, cent) = amount.split_once('.').unwrap_or((amount, "0"));
    euro.parse::<i64>().unwrap_or(0) * 100 + format!("{cent:0<2}")[..2].parse::<i64>().unwrap_or(0)
}

impl Aggregate for PlainFund {
    const TYPE: &'static str = "fund";
    type Command = PlainCommand;
    type Event = PlainEvent;
    type Error = PlainError;
    type Services = ();

    async fn handle(&mut self, command: PlainCommand, _: &(), sink: &EventSink<Self>) -> Result<(), PlainError> {
        let event = match command {
            PlainCommand::Establish { amount } if !self.established => PlainEvent::FundEstablished { amount },
            PlainCommand::Establish { .. } => return Ok(()),
            PlainCommand::Allocate { wijk_id, amount } => {
                if !self.established || cents_of(&amount) > self.unallocated_cents {
                    return Err(PlainError("fund exhausted".into()));
                }
                PlainEvent::BudgetAllocated { wijk_id, amount }
            }
            PlainCommand::RecordExpense(expense) => {
                if self.expenses.contains(&expense.expense_id) {
                    return Err(PlainError("expense id taken".into()));
                }
                let (allocated, spent) = self.lines.get(&expense.wijk_id).copied().unwrap_or_default();
                if spent + cents_of(&expense.amount) > allocated {
                    return Err(PlainError("overspend".into()));
                }
                PlainEvent::ExpenseRecorded(expense)
            }
        };
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: PlainEvent) {
        match event {
            PlainEvent::FundEstablished { amount } => {
                self.established = true;
                self.unallocated_cents = cents_of(&amount);
            }
            PlainEvent::BudgetAllocated { wijk_id, amount } => {
                self.unallocated_cents -= cents_of(&amount);
                self.lines.entry(wijk_id).or_default().0 += cents_of(&amount);
            }
            PlainEvent::ExpenseRecorded(e) => {
                self.lines.entry(e.wijk_id.clone()).or_default().1 += cents_of(&e.amount);
                self.expenses.insert(e.expense_id);
            }
        }
    }
}

pub(crate) type PlainCqrs = postgres_es::PostgresCqrs<PlainFund>;

pub(crate) struct CqrsClient {
    pub(crate) cqrs: Arc<PlainCqrs>,
    pub(crate) funds: Arc<Vec<String>>,
    pub(crate) wijken: Arc<Vec<String>>,
    pub(crate) tag: String,
    pub(crate) n: u64,
    pub(crate) rng: XorShift,
    pub(crate) conflicts: Arc<AtomicU64>,
}

impl Client for CqrsClient {
    async fn call(&mut self) -> anyhow::Result<()> {
        self.n += 1;
        let fund = self.funds[(self.rng.next() % self.funds.len() as u64) as usize].clone();
        let wijk = self.wijken[(self.rng.next() % self.wijken.len() as u64) as usize].clone();
        let cents = 100 + self.rng.next() % 9900;
        let expense = PlainExpense {
            expense_id: format!("{}-{}", self.tag, self.n),
            wijk_id: wijk,
            amount: format!("{}.{:02}", cents / 100, cents % 100),
            initiative: "Herinrichting Wegaplein".into(),
            theme: "groen".into(),
            booked_on: "2022-06-15".into(),
            reference: format!("factuur {}", self.n),
        };
        let metadata = HashMap::from([
            ("actor".to_string(), "bench".to_string()),
            ("role".to_string(), "finance".to_string()),
            ("correlation_id".to_string(), uuid::Uuid::new_v4().to_string()),
        ]);
        // Plain cqrs-es does not retry a lost race; a caller must, as the
        // ledger does: same bound and the same jittered backoff.
        for attempt in 1..=10u32 {
            match self
                .cqrs
                .execute_with_metadata(&fund, PlainCommand::RecordExpense(expense.clone()), metadata.clone())
                .await
            {
                Ok(()) => return Ok(()),
                Err(AggregateError::AggregateConflict) => {
                    self.conflicts.fetch_add(1, Ordering::Relaxed);
                    let ceiling_ms = (4u64 << attempt.min(6)).min(250);
                    tokio::time::sleep(Duration::from_millis(self.rng.next() % ceiling_ms + 1)).await;
                }
                Err(err) => bail!("cqrs-es refused: {err}"),
            }
        }
        bail!("lost 10 races in a row")
    }
}

/// The SQLite baseline: one durable single-row transaction per call, in a
/// WAL file with `synchronous=FULL`, as the ledger's SQLite store commits.
pub(crate) struct RawSqliteClient {
    pub(crate) pool: sqlx::SqlitePool,
    pub(crate) row: Arc<String>,
}

impl Client for RawSqliteClient {
    async fn call(&mut self) -> anyhow::Result<()> {
        sqlx::query("INSERT INTO raw_events (body) VALUES ($1)").bind(self.row.as_str()).execute(&self.pool).await?;
        Ok(())
    }
}

/// Connections of a baseline's pool, at most: PostgreSQL allows 100 in all,
/// and the server, the other baseline and the bench's probes need some.
pub(crate) const BASELINE_POOL_MAX: usize = 32;

pub(crate) async fn raw_sqlite_pool(path: &Path) -> anyhow::Result<sqlx::SqlitePool> {
    use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(Duration::from_secs(30));
    let pool = SqlitePoolOptions::new().max_connections(BASELINE_POOL_MAX as u32).connect_with(options).await?;
    sqlx::raw_sql("CREATE TABLE IF NOT EXISTS raw_events (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
        .execute(&pool)
        .await?;
    Ok(pool)
}

/// The default postgres-es schema (its db/init.sql, without the test data).
pub(crate) const POSTGRES_ES_SCHEMA: &str = "\
CREATE TABLE events (
    aggregate_type text NOT NULL, aggregate_id text NOT NULL, sequence bigint CHECK (sequence >= 0) NOT NULL,
    event_type text NOT NULL, event_version text NOT NULL, payload json NOT NULL, metadata json NOT NULL,
    PRIMARY KEY (aggregate_type, aggregate_id, sequence));
CREATE TABLE snapshots (
    aggregate_type text NOT NULL, aggregate_id text NOT NULL, last_sequence bigint CHECK (last_sequence >= 0) NOT NULL,
    current_snapshot bigint CHECK (current_snapshot >= 0) NOT NULL, payload json NOT NULL,
    PRIMARY KEY (aggregate_type, aggregate_id, last_sequence));";

/// The JSON of one whole stored expense event, as the raw baseline's row.
pub(crate) fn sample_event_json() -> String {
    let details = ExpenseDetails {
        expense_id: ExpenseId::parse("h32r0x17-1234").expect("valid"),
        wijk_id: WijkId::parse("wijk-3").expect("valid"),
        amount: Amount::parse("48.15").expect("valid"),
        initiative: Text::parse("Herinrichting Wegaplein").expect("valid"),
        theme: Text::parse("groen").expect("valid"),
        booked_on: NaiveDate::from_ymd_opt(2022, 6, 15).expect("date"),
        reference: Text::parse("factuur 1234").expect("valid"),
    };
    let event = ChainedEvent {
        position: 123_456,
        event_id: uuid::Uuid::now_v7().to_string(),
        recorded_at: Utc::now().trunc_subsecs(6),
        aggregate_type: "fund".into(),
        aggregate_id: "fund-17".into(),
        sequence: 4_321,
        event_type: "ExpenseRecorded".into(),
        event_version: "1.0.0".into(),
        payload: serde_json::to_value(FundEvent::ExpenseRecorded(details)).expect("serialises"),
        metadata: json!({
            "actor": "bench", "role": "finance", "correlation_id": uuid::Uuid::new_v4().to_string(),
            "idempotency_key": "h32r0x17-1234", "request_fingerprint": hex::encode([7u8; 32]),
        }),
        hash: hex::encode([9u8; 32]),
    };
    serde_json::to_string(&event).expect("serialises")
}
