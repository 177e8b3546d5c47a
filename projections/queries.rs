//! The questions people ask, answered from the read models.
//! Money is summed in whole cents, exactly, on both stores.

use chrono::NaiveDate;
use serde::{Serialize, Serializer};
use sqlx::Row;
use utoipa::ToSchema;

use crate::domain::money::{euro_from_cents, format_euro};
use crate::on_db;
use crate::store::Db;

/// Euro, shown as a decimal string with two decimals ("50000.00").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ToSchema)]
#[schema(value_type = String, example = "50000.00")]
pub struct Euro(pub i64);

impl Serialize for Euro {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl std::fmt::Display for Euro {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(&format_euro(euro_from_cents(self.0)))
    }
}

/// One wijk's money, in total or for one fund.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, ToSchema)]
pub struct Totals {
    /// Allocated to the wijk, including transfers in and out.
    pub amount_allocated: Euro,
    /// Promised to approved initiatives and not yet paid (verplichtingen).
    pub amount_committed: Euro,
    /// Paid, net of reversals and recovery claims.
    pub amount_spent: Euro,
    /// What the wijk can still promise or spend: allocated − committed − spent
    /// (less anything lapsed, carried over or owed back).
    pub amount_remaining: Euro,
}

impl Totals {
    fn plus(&self, other: &Totals) -> Totals {
        Totals {
            amount_allocated: Euro(self.amount_allocated.0 + other.amount_allocated.0),
            amount_committed: Euro(self.amount_committed.0 + other.amount_committed.0),
            amount_spent: Euro(self.amount_spent.0 + other.amount_spent.0),
            amount_remaining: Euro(self.amount_remaining.0 + other.amount_remaining.0),
        }
    }

    fn from_row<R: Row>(r: &R) -> sqlx::Result<Self>
    where
        for<'a> &'a str: sqlx::ColumnIndex<R>,
        i64: sqlx::Type<R::Database> + for<'a> sqlx::Decode<'a, R::Database>,
    {
        Ok(Self {
            amount_allocated: Euro(r.try_get("allocated")?),
            amount_committed: Euro(r.try_get("committed")?),
            amount_spent: Euro(r.try_get("spent")?),
            amount_remaining: Euro(r.try_get("available")?),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct WijkSummary {
    pub wijk_id: String,
    pub name: String,
    #[serde(flatten)]
    pub totals: Totals,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FundLine {
    pub fund_id: String,
    pub fund_name: String,
    pub kind: String,
    pub year: i64,
    pub decision_reference: String,
    #[serde(flatten)]
    pub totals: Totals,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct WijkBudget {
    pub wijk_id: String,
    pub name: String,
    pub year: Option<i64>,
    pub as_of: Option<NaiveDate>,
    #[serde(flatten)]
    pub totals: Totals,
    pub funds: Vec<FundLine>,
}

/// Which slice of the ledger a question is about.
#[derive(Debug, Clone, Copy, Default)]
pub struct Period {
    pub year: Option<i64>,
    /// Only count money booked on or before this date.
    pub as_of: Option<NaiveDate>,
}

// Current totals come from the balances; as-of totals are summed from the
// postings booked up to that date. Both have the same shape.
const PIVOT_BALANCES: &str = "\
    CAST(COALESCE(SUM(CASE WHEN b.kind IN ('allocated', 'transferred') THEN b.cents END), 0) AS BIGINT) AS allocated, \
    CAST(COALESCE(SUM(CASE WHEN b.kind = 'committed' THEN b.cents END), 0) AS BIGINT) AS committed, \
    CAST(COALESCE(SUM(CASE WHEN b.kind = 'spent' THEN b.cents END), 0) AS BIGINT) AS spent, \
    CAST(COALESCE(SUM(CASE WHEN b.kind = 'wijk_budget' THEN b.cents END), 0) AS BIGINT) AS available";

const PIVOT_POSTINGS: &str = "\
    CAST(COALESCE(SUM(CASE WHEN p.account_kind = 'wijk_budget' AND p.event_type IN ('BudgetAllocated', 'FundCarriedOver', 'BudgetTransferred') THEN p.amount_cents END), 0) AS BIGINT) AS allocated, \
    CAST(COALESCE(SUM(CASE WHEN p.account_kind = 'committed' THEN p.amount_cents END), 0) AS BIGINT) AS committed, \
    CAST(COALESCE(SUM(CASE WHEN p.account_kind = 'spent' THEN p.amount_cents END), 0) AS BIGINT) AS spent, \
    CAST(COALESCE(SUM(CASE WHEN p.account_kind = 'wijk_budget' THEN p.amount_cents END), 0) AS BIGINT) AS available";

fn summary_sql(as_of: bool) -> String {
    if as_of {
        format!(
            "SELECT w.wijk_id, w.name, {PIVOT_POSTINGS} FROM rm_wijken w \
             LEFT JOIN rm_postings p ON p.wijk_id = w.wijk_id AND ($1 IS NULL OR p.year = $1) AND p.booked_on <= $3 \
             WHERE ($2 IS NULL OR w.wijk_id = $2) GROUP BY w.wijk_id, w.name ORDER BY w.wijk_id"
        )
    } else {
        format!(
            "SELECT w.wijk_id, w.name, {PIVOT_BALANCES} FROM rm_wijken w \
             LEFT JOIN rm_balances b ON b.wijk_id = w.wijk_id AND ($1 IS NULL OR b.year = $1) \
             WHERE ($2 IS NULL OR w.wijk_id = $2) GROUP BY w.wijk_id, w.name ORDER BY w.wijk_id"
        )
    }
}

/// A wijk's name and its totals per fund, in one statement so the lines and
/// their sum come from one snapshot of the read models. A registered wijk
/// without money yet gives one row without a fund.
fn lines_sql(as_of: bool) -> String {
    let (pivot, from) = if as_of {
        (PIVOT_POSTINGS, "rm_postings p JOIN rm_funds f ON f.fund_id = p.fund_id AND p.wijk_id = $2 AND ($1 IS NULL OR p.year = $1) AND p.booked_on <= $3")
    } else {
        (
            PIVOT_BALANCES,
            "rm_balances b JOIN rm_funds f ON f.fund_id = b.fund_id AND b.wijk_id = $2 AND ($1 IS NULL OR b.year = $1)",
        )
    };
    format!(
        "SELECT w.name AS wijk_name, f.fund_id AS fund_id, f.name AS name, f.kind AS kind, f.year AS year, \
         f.decision_reference AS decision_reference, {pivot} \
         FROM rm_wijken w LEFT JOIN ({from}) ON w.wijk_id = $2 WHERE w.wijk_id = $2 \
         GROUP BY w.name, f.fund_id, f.name, f.kind, f.year, f.decision_reference ORDER BY f.year, f.fund_id"
    )
}

/// Whether a wijk is registered (as far as the projection has read).
pub async fn wijk_exists(db: &Db, wijk_id: &str) -> sqlx::Result<bool> {
    on_db!(db, pool => {
        let found: Option<String> = sqlx::query_scalar("SELECT wijk_id FROM rm_wijken WHERE wijk_id = $1")
            .bind(wijk_id)
            .fetch_optional(pool)
            .await?;
        Ok(found.is_some())
    })
}

/// Every wijk with allocated, spent and remaining (`GET /wijken`, `report`).
pub async fn wijk_summaries(db: &Db, period: Period) -> sqlx::Result<Vec<WijkSummary>> {
    summaries(db, period, None).await
}

async fn summaries(db: &Db, period: Period, wijk_id: Option<&str>) -> sqlx::Result<Vec<WijkSummary>> {
    let sql = summary_sql(period.as_of.is_some());
    on_db!(db, pool => {
        let mut query = sqlx::query(&sql).bind(period.year).bind(wijk_id);
        if let Some(as_of) = period.as_of {
            query = query.bind(as_of.to_string());
        }
        let rows = query.fetch_all(pool).await?;
        rows.iter().map(|r| Ok(WijkSummary {
            wijk_id: r.try_get("wijk_id")?,
            name: r.try_get("name")?,
            totals: Totals::from_row(r)?,
        })).collect()
    })
}

/// One wijk, split per fund (`GET /wijken/{id}/budget`). None if the wijk is unknown.
pub async fn wijk_budget(db: &Db, wijk_id: &str, period: Period) -> sqlx::Result<Option<WijkBudget>> {
    let sql = lines_sql(period.as_of.is_some());
    let rows = on_db!(db, pool => {
        let mut query = sqlx::query(&sql).bind(period.year).bind(wijk_id);
        if let Some(as_of) = period.as_of {
            query = query.bind(as_of.to_string());
        }
        let rows = query.fetch_all(pool).await?;
        rows.iter().map(|r| {
            let name: String = r.try_get("wijk_name")?;
            let fund_id: Option<String> = r.try_get("fund_id")?;
            let line = match fund_id {
                None => None,
                Some(fund_id) => Some(FundLine {
                    fund_id,
                    fund_name: r.try_get("name")?,
                    kind: r.try_get("kind")?,
                    year: r.try_get("year")?,
                    decision_reference: r.try_get("decision_reference")?,
                    totals: Totals::from_row(r)?,
                }),
            };
            Ok((name, line))
        }).collect::<sqlx::Result<Vec<_>>>()?
    });
    let Some(name) = rows.first().map(|(name, _)| name.clone()) else { return Ok(None) };
    let funds: Vec<FundLine> = rows.into_iter().filter_map(|(_, line)| line).collect();
    let totals = funds.iter().fold(Totals::default(), |sum, line| sum.plus(&line.totals));
    Ok(Some(WijkBudget { wijk_id: wijk_id.to_string(), name, year: period.year, as_of: period.as_of, totals, funds }))
}

/// One line of a wijk's audit trail: a posting on one of the wijk's accounts
/// (available, committed, spent, owed back, lapsed, carried over), with where
/// the money came from or went, who moved it and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct AuditRow {
    pub position: i64,
    pub event_id: String,
    pub event_type: String,
    pub booked_on: String,
    pub recorded_at: String,
    /// Booked on a day before it was recorded: visible, and allowed while the year is open.
    pub backdated: bool,
    pub fund_id: String,
    /// The council or college decision behind the fund: the walk back from any expense.
    pub decision_reference: String,
    pub account: String,
    pub counter_account: String,
    /// Debit-positive change of `account`.
    pub amount: Euro,
    /// The wijk's available money (remaining budget) after this posting.
    pub balance: Euro,
    /// The person who recorded it; withheld from council members.
    pub actor: Option<String>,
    pub role: String,
    pub reason: Option<String>,
    pub reference: Option<String>,
    pub initiative: Option<String>,
    pub theme: Option<String>,
    pub expense_id: Option<String>,
    /// The request that recorded the event (its `x-request-id`), to find it in the service's logs.
    pub correlation_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct AuditPage {
    pub wijk_id: String,
    /// The wijk's available money before the first row of this page.
    pub opening_balance: Euro,
    pub rows: Vec<AuditRow>,
    /// Pass as `after` for the next page; absent on the last page.
    pub next_after: Option<i64>,
}

#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub year: Option<i64>,
    pub fund_id: Option<String>,
    pub initiative: Option<String>,
    /// Only postings booked on or after this day.
    pub booked_from: Option<NaiveDate>,
    /// Only postings booked on or before this day.
    pub booked_to: Option<NaiveDate>,
}

impl AuditFilter {
    /// The whole trail: its balances are the wijk's available money itself.
    fn is_none(&self) -> bool {
        self.year.is_none()
            && self.fund_id.is_none()
            && self.initiative.is_none()
            && self.booked_from.is_none()
            && self.booked_to.is_none()
    }
}

const AUDIT_SCOPE: &str = "p.wijk_id = $1 \
    AND ($2 IS NULL OR p.year = $2) AND ($3 IS NULL OR p.fund_id = $3) AND ($4 IS NULL OR p.initiative = $4) \
    AND ($5 IS NULL OR p.booked_on >= $5) AND ($6 IS NULL OR p.booked_on <= $6)";

/// The wijk's available money after its last posting at or before position
/// $2: the last line of that event, found through rm_postings_wijk in a few
/// steps however long the history.
const RUNNING_OPENING_SQL: &str = "SELECT p.wijk_available_cents FROM rm_postings p \
    WHERE p.wijk_id = $1 AND p.position = \
    (SELECT MAX(l.position) FROM rm_postings l WHERE l.wijk_id = $1 AND l.position <= $2) \
    ORDER BY p.line DESC LIMIT 1";

/// The most postings one event makes on one wijk's accounts (a close that
/// both lapses and carries over makes four); a page reads this many extra
/// rows so it can end on an event boundary.
pub(crate) const POSTINGS_PER_EVENT_MAX: i64 = 8;

/// A page of a wijk's audit trail, after global position `after`, oldest
/// first. A page holds at most `limit` rows and never splits an event,
/// unless one event alone has more rows than `limit`.
pub async fn audit_trail(
    db: &Db,
    wijk_id: &str,
    filter: &AuditFilter,
    after: i64,
    limit: i64,
) -> sqlx::Result<AuditPage> {
    // The whole trail's balances are the projection's running
    // `wijk_available_cents`; a filtered trail's count only the postings the
    // filter keeps, so it sums them from the start of the wijk's history.
    let unfiltered = filter.is_none();
    let summed_opening_sql = format!(
        "SELECT CAST(COALESCE(SUM(p.amount_cents), 0) AS BIGINT) FROM rm_postings p \
         WHERE {AUDIT_SCOPE} AND p.account_kind = 'wijk_budget' AND p.position <= $7"
    );
    let page_sql = format!(
        "SELECT p.position, p.event_id, p.event_type, p.booked_on, p.recorded_at, p.fund_id, f.decision_reference, \
         p.account, p.account_kind, \
         (SELECT c.account FROM rm_postings c WHERE c.position = p.position AND c.line = p.line + 1 - 2 * (p.line % 2)) AS counter_account, \
         p.amount_cents, p.wijk_available_cents, p.actor, p.role, p.reason, p.reference, p.initiative, p.theme, \
         p.expense_id \
         FROM rm_postings p JOIN rm_funds f ON f.fund_id = p.fund_id \
         WHERE {AUDIT_SCOPE} AND p.position > $7 ORDER BY p.position, p.line LIMIT $8"
    );
    let from = filter.booked_from.map(|d| d.to_string());
    let to = filter.booked_to.map(|d| d.to_string());
    let (opening, rows) = on_db!(db, pool => {
        let opening: i64 = if unfiltered {
            // A NULL here would be a projection that never filled the column: fail loudly.
            sqlx::query_scalar(RUNNING_OPENING_SQL).bind(wijk_id).bind(after).fetch_optional(pool).await?.unwrap_or(0)
        } else {
            sqlx::query_scalar(&summed_opening_sql)
                .bind(wijk_id).bind(filter.year).bind(filter.fund_id.as_deref()).bind(filter.initiative.as_deref())
                .bind(from.as_deref()).bind(to.as_deref()).bind(after)
                .fetch_one(pool).await?
        };
        let rows = sqlx::query(&page_sql)
            .bind(wijk_id).bind(filter.year).bind(filter.fund_id.as_deref()).bind(filter.initiative.as_deref())
            .bind(from.as_deref()).bind(to.as_deref()).bind(after)
            .bind(limit + POSTINGS_PER_EVENT_MAX)
            .fetch_all(pool).await?;
        let mut balance = opening;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let amount: i64 = r.try_get("amount_cents")?;
            // Postings come in pairs (see `postings::transfer`), so the
            // counter account is the other line of the pair.
            if unfiltered {
                balance = r.try_get("wijk_available_cents")?;
            } else if r.try_get::<String, _>("account_kind")? == "wijk_budget" {
                balance += amount;
            }
            let booked_on: String = r.try_get("booked_on")?;
            let recorded_at: String = r.try_get("recorded_at")?;
            out.push(AuditRow {
                position: r.try_get("position")?,
                event_id: r.try_get("event_id")?,
                event_type: r.try_get("event_type")?,
                // ISO dates compare as text; the recording time starts with its date.
                backdated: booked_on.as_str() < &recorded_at[..recorded_at.len().min(10)],
                booked_on,
                recorded_at,
                fund_id: r.try_get("fund_id")?,
                decision_reference: r.try_get("decision_reference")?,
                account: r.try_get("account")?,
                counter_account: r.try_get::<Option<String>, _>("counter_account")?.unwrap_or_default(),
                amount: Euro(amount),
                balance: Euro(balance),
                actor: Some(r.try_get("actor")?),
                role: r.try_get("role")?,
                reason: r.try_get("reason")?,
                reference: r.try_get("reference")?,
                initiative: r.try_get("initiative")?,
                theme: r.try_get("theme")?,
                expense_id: r.try_get("expense_id")?,
                correlation_id: None,
            });
        }
        // The correlation ids, from the page's own events by their keys (a
        // join in the page's query let PostgreSQL scan the whole log).
        let positions: std::collections::BTreeSet<i64> = out.iter().map(|r| r.position).collect();
        if !positions.is_empty() {
            let mut sql = sqlx::QueryBuilder::new(
                "SELECT position, CAST(metadata ->> 'correlation_id' AS TEXT) AS correlation_id FROM events WHERE position IN (",
            );
            let mut list = sql.separated(", ");
            for position in &positions {
                list.push_bind(*position);
            }
            sql.push(")");
            let ids: std::collections::HashMap<i64, Option<String>> = sql
                .build()
                .fetch_all(pool)
                .await?
                .iter()
                .map(|r| Ok((r.try_get("position")?, r.try_get("correlation_id")?)))
                .collect::<sqlx::Result<_>>()?;
            for row in &mut out {
                row.correlation_id = ids.get(&row.position).cloned().flatten();
            }
        }
        (opening, out)
    });
    let mut rows = rows;
    let next_after = if rows.len() as i64 > limit {
        let first_left_out = rows[limit as usize].position;
        let mut keep = rows.iter().take(limit as usize).filter(|r| r.position != first_left_out).count();
        if keep == 0 {
            // One event with more rows than a page: show it whole.
            keep = rows.iter().take_while(|r| r.position == first_left_out).count();
        }
        rows.truncate(keep);
        rows.last().map(|r| r.position)
    } else {
        None
    };
    Ok(AuditPage { wijk_id: wijk_id.to_string(), opening_balance: Euro(opening), rows, next_after })
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FundSummary {
    pub fund_id: String,
    pub year: i64,
    pub kind: String,
    pub name: String,
    pub decision_reference: String,
    pub adopted_on: String,
    pub purpose: String,
    pub amount: Euro,
    pub amount_allocated: Euro,
    pub amount_committed: Euro,
    pub amount_spent: Euro,
    /// Not yet allocated to any wijk.
    pub amount_unallocated: Euro,
    /// Neither spent, committed, owed back, lapsed nor carried over:
    /// unallocated plus what wijken have available.
    pub amount_remaining: Euro,
    /// The closed fund this one's money was carried over from.
    pub carried_over_from: Option<String>,
    /// The last day of the year, once the year is closed.
    pub closed_on: Option<String>,
    /// Where this fund's carried-over money went, once closed.
    pub carry_over_fund: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct WijkAllocation {
    pub wijk_id: String,
    #[serde(flatten)]
    pub totals: Totals,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ExpenseView {
    pub expense_id: String,
    pub wijk_id: String,
    pub amount: Euro,
    pub initiative: String,
    pub theme: String,
    pub booked_on: String,
    pub reference: String,
    pub event_id: String,
    pub position: i64,
    pub reversed: bool,
    pub reversal_reason: Option<String>,
}

/// A fund and what became of its money: "what was A21-182 spent on".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FundDetail {
    #[serde(flatten)]
    pub fund: FundSummary,
    pub allocations: Vec<WijkAllocation>,
    /// One page of the fund's expenses, oldest first.
    pub expenses: Vec<ExpenseView>,
    /// Pass as `after` for the next page of expenses; absent on the last page.
    pub next_after: Option<i64>,
}

/// The funds with their balances summed per fund in one pass over the
/// balances they have, not a subquery per fund and kind (which scanned the
/// balances once for each, 50 ms for 70 funds).
const FUNDS: &str =
    "SELECT f.fund_id, f.year, f.kind, f.name, f.decision_reference, f.adopted_on, f.purpose, f.amount_cents, \
    f.carried_over_from, f.closed_on, f.carry_over_fund, \
    CAST(COALESCE(b.allocated, 0) AS BIGINT) AS allocated, CAST(COALESCE(b.committed, 0) AS BIGINT) AS committed, \
    CAST(COALESCE(b.spent, 0) AS BIGINT) AS spent, CAST(COALESCE(b.gone, 0) AS BIGINT) AS gone, \
    CAST(COALESCE(f.unallocated_lapsed_cents, 0) AS BIGINT) AS unallocated_lapsed \
    FROM rm_funds f LEFT JOIN ( \
        SELECT fund_id, \
        SUM(CASE WHEN kind = 'allocated' THEN cents END) AS allocated, \
        SUM(CASE WHEN kind = 'committed' THEN cents END) AS committed, \
        SUM(CASE WHEN kind = 'spent' THEN cents END) AS spent, \
        SUM(CASE WHEN kind IN ('lapsed', 'carried_over', 'receivable') THEN cents END) AS gone \
        FROM rm_balances WHERE ($1 IS NULL OR year = $1) AND ($2 IS NULL OR fund_id = $2) GROUP BY fund_id \
    ) b ON b.fund_id = f.fund_id \
    WHERE ($1 IS NULL OR f.year = $1) AND ($2 IS NULL OR f.fund_id = $2) ORDER BY f.year, f.fund_id";

/// The years that have a fund, newest first.
pub async fn fund_years(db: &Db) -> sqlx::Result<Vec<i64>> {
    on_db!(db, pool => {
        sqlx::query_scalar("SELECT DISTINCT year FROM rm_funds ORDER BY year DESC").fetch_all(pool).await
    })
}

/// The funds and their totals as of `$3`: summed from the postings booked
/// on or before that day, leaving out a fund booked later and a close
/// booked later. Without a day, [`FUNDS`] reads the balances.
fn funds_as_of_sql() -> String {
    let sum = |condition: &str| {
        format!(
            "CAST(COALESCE((SELECT SUM(p.amount_cents) FROM rm_postings p WHERE p.fund_id = f.fund_id \
             AND p.booked_on <= $3 AND {condition}), 0) AS BIGINT)"
        )
    };
    let allocated =
        sum("p.wijk_id IS NOT NULL AND p.account_kind = 'wijk_budget' AND p.event_type IN ('BudgetAllocated', 'FundCarriedOver')");
    let committed = sum("p.wijk_id IS NOT NULL AND p.account_kind = 'committed'");
    let spent = sum("p.wijk_id IS NOT NULL AND p.account_kind = 'spent'");
    let gone = sum("p.wijk_id IS NOT NULL AND p.account_kind IN ('lapsed', 'carried_over', 'receivable')");
    let unallocated_lapsed = sum("p.wijk_id IS NULL AND p.account_kind = 'lapsed'");
    format!(
        "SELECT f.fund_id, f.year, f.kind, f.name, f.decision_reference, f.adopted_on, f.purpose, f.amount_cents, \
         f.carried_over_from, CASE WHEN f.closed_on <= $3 THEN f.closed_on END AS closed_on, \
         CASE WHEN f.closed_on <= $3 THEN f.carry_over_fund END AS carry_over_fund, \
         {allocated} AS allocated, {committed} AS committed, {spent} AS spent, {gone} AS gone, \
         {unallocated_lapsed} AS unallocated_lapsed \
         FROM rm_funds f WHERE ($1 IS NULL OR f.year = $1) AND ($2 IS NULL OR f.fund_id = $2) AND f.booked_on <= $3 \
         ORDER BY f.year, f.fund_id"
    )
}

/// Every fund (`GET /funds`), optionally for one year.
pub async fn funds(db: &Db, year: Option<i64>) -> sqlx::Result<Vec<FundSummary>> {
    fund_rows(db, year, None, None).await
}

async fn fund_rows(
    db: &Db,
    year: Option<i64>,
    fund_id: Option<&str>,
    as_of: Option<NaiveDate>,
) -> sqlx::Result<Vec<FundSummary>> {
    let sql = if as_of.is_some() { funds_as_of_sql() } else { FUNDS.to_string() };
    on_db!(db, pool => {
        let mut query = sqlx::query(&sql).bind(year).bind(fund_id);
        if let Some(as_of) = as_of {
            query = query.bind(as_of.to_string());
        }
        let rows = query.fetch_all(pool).await?;
        rows.iter().map(|r| {
            let amount: i64 = r.try_get("amount_cents")?;
            let allocated: i64 = r.try_get("allocated")?;
            let committed: i64 = r.try_get("committed")?;
            let spent: i64 = r.try_get("spent")?;
            let gone: i64 = r.try_get("gone")?;
            let unallocated_lapsed: i64 = r.try_get("unallocated_lapsed")?;
            Ok(FundSummary {
                fund_id: r.try_get("fund_id")?,
                year: r.try_get("year")?,
                kind: r.try_get("kind")?,
                name: r.try_get("name")?,
                decision_reference: r.try_get("decision_reference")?,
                adopted_on: r.try_get("adopted_on")?,
                purpose: r.try_get("purpose")?,
                amount: Euro(amount),
                amount_allocated: Euro(allocated),
                amount_committed: Euro(committed),
                amount_spent: Euro(spent),
                amount_unallocated: Euro(amount - allocated - unallocated_lapsed),
                amount_remaining: Euro(amount - unallocated_lapsed - committed - spent - gone),
                carried_over_from: r.try_get("carried_over_from")?,
                closed_on: r.try_get("closed_on")?,
                carry_over_fund: r.try_get("carry_over_fund")?,
            })
        }).collect()
    })
}

/// One fund with its allocations per wijk and one page of its expenses
/// (`GET /funds/{id}`): at most `limit` (at least one) after global position
/// `after`. The fund's totals always cover every expense.
pub async fn fund_detail(db: &Db, fund_id: &str, after: i64, limit: i64) -> sqlx::Result<Option<FundDetail>> {
    fund_detail_as_of(db, fund_id, None, after, limit).await
}

/// [`fund_detail`] as it stood on `as_of`: only what was booked on or before
/// that day (a fund booked later is None, an expense reversed later is not
/// reversed yet). Without `as_of`, everything.
pub async fn fund_detail_as_of(
    db: &Db,
    fund_id: &str,
    as_of: Option<NaiveDate>,
    after: i64,
    limit: i64,
) -> sqlx::Result<Option<FundDetail>> {
    let limit = limit.max(1);
    let Some(fund) = fund_rows(db, None, Some(fund_id), as_of).await?.into_iter().next() else {
        return Ok(None);
    };
    let as_of = as_of.map(|d| d.to_string());
    let lines_sql = if as_of.is_some() {
        format!(
            "SELECT p.wijk_id, {PIVOT_POSTINGS} FROM rm_postings p WHERE p.fund_id = $1 AND p.wijk_id IS NOT NULL \
             AND p.booked_on <= $2 GROUP BY p.wijk_id ORDER BY p.wijk_id"
        )
    } else {
        format!("SELECT b.wijk_id, {PIVOT_BALANCES} FROM rm_balances b WHERE b.fund_id = $1 GROUP BY b.wijk_id ORDER BY b.wijk_id")
    };
    let (allocations, expenses) = on_db!(db, pool => {
        let mut query = sqlx::query(&lines_sql).bind(fund_id);
        if let Some(as_of) = &as_of {
            query = query.bind(as_of.clone());
        }
        let lines = query.fetch_all(pool).await?;
        let allocations = lines.iter().map(|r| Ok(WijkAllocation {
            wijk_id: r.try_get("wijk_id")?,
            totals: Totals::from_row(r)?,
        })).collect::<sqlx::Result<Vec<_>>>()?;
        let rows = sqlx::query(
            "SELECT expense_id, wijk_id, amount_cents, initiative, theme, booked_on, reference, event_id, position, \
             CASE WHEN $4 IS NULL OR reversed_on <= $4 THEN reversed_position END AS reversed_position, \
             CASE WHEN $4 IS NULL OR reversed_on <= $4 THEN reversal_reason END AS reversal_reason \
             FROM rm_expenses WHERE fund_id = $1 AND position > $2 AND ($4 IS NULL OR booked_on <= $4) \
             ORDER BY position LIMIT $3",
        )
        .bind(fund_id)
        .bind(after)
        .bind(limit + 1)
        .bind(as_of.as_deref())
        .fetch_all(pool)
        .await?;
        let expenses = rows.iter().map(|r| Ok(ExpenseView {
            expense_id: r.try_get("expense_id")?,
            wijk_id: r.try_get("wijk_id")?,
            amount: Euro(r.try_get("amount_cents")?),
            initiative: r.try_get("initiative")?,
            theme: r.try_get("theme")?,
            booked_on: r.try_get("booked_on")?,
            reference: r.try_get("reference")?,
            event_id: r.try_get("event_id")?,
            position: r.try_get("position")?,
            reversed: r.try_get::<Option<i64>, _>("reversed_position")?.is_some(),
            reversal_reason: r.try_get("reversal_reason")?,
        })).collect::<sqlx::Result<Vec<_>>>()?;
        (allocations, expenses)
    });
    let mut expenses = expenses;
    let next_after = if expenses.len() as i64 > limit {
        expenses.truncate(limit as usize);
        expenses.last().map(|e| e.position)
    } else {
        None
    };
    Ok(Some(FundDetail { fund, allocations, expenses, next_after }))
}
