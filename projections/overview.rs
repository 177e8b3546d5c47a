//! The questions the web app's overview pages ask beyond the API's: a
//! wijk's open commitments and latest bookings as they stood on a day, and
//! what a fund's money went to per wijk and initiative, following it into
//! the funds it was carried over to. Like every read here, an as-of answer
//! counts only postings booked on or before that day.

use chrono::NaiveDate;
use serde::Serialize;
use sqlx::Row;

use super::queries::Euro;
use crate::on_db;
use crate::store::Db;

/// How many carry-overs a fund's money is followed through; a chain longer
/// than this would mean a carry-over every year for decades.
pub const CARRY_OVER_HOPS_MAX: usize = 25;

/// A commitment with money still committed on the day asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OpenCommitment {
    pub commitment_id: String,
    pub fund_id: String,
    pub initiative: String,
    pub theme: String,
    pub decided_on: String,
    pub amount: Euro,
    /// Paid on it up to the day asked.
    pub amount_paid: Euro,
    /// Still committed on the day asked.
    pub amount_open: Euro,
}

/// A wijk's commitments that still held money on `as_of` (today when
/// None), oldest decision first, from the postings booked up to that day.
pub async fn open_commitments(
    db: &Db,
    wijk_id: &str,
    year: Option<i64>,
    as_of: Option<NaiveDate>,
) -> sqlx::Result<Vec<OpenCommitment>> {
    const SQL: &str = "SELECT c.commitment_id, c.fund_id, c.initiative, c.theme, c.decided_on, c.amount_cents, \
        CAST(SUM(CASE WHEN p.account_kind = 'committed' THEN p.amount_cents ELSE 0 END) AS BIGINT) AS open_cents, \
        CAST(SUM(CASE WHEN p.account_kind = 'spent' AND p.event_type = 'CommitmentPaid' THEN p.amount_cents ELSE 0 END) AS BIGINT) AS paid_cents \
        FROM rm_commitments c JOIN rm_postings p ON p.commitment_id = c.commitment_id AND p.wijk_id = c.wijk_id \
        WHERE c.wijk_id = $1 AND ($2 IS NULL OR p.year = $2) AND ($3 IS NULL OR p.booked_on <= $3) \
        GROUP BY c.commitment_id, c.fund_id, c.initiative, c.theme, c.decided_on, c.amount_cents \
        HAVING SUM(CASE WHEN p.account_kind = 'committed' THEN p.amount_cents ELSE 0 END) > 0 \
        ORDER BY c.decided_on, c.commitment_id";
    let as_of = as_of.map(|d| d.to_string());
    on_db!(db, pool => {
        let rows = sqlx::query(SQL).bind(wijk_id).bind(year).bind(as_of).fetch_all(pool).await?;
        rows.iter().map(|r| Ok(OpenCommitment {
            commitment_id: r.try_get("commitment_id")?,
            fund_id: r.try_get("fund_id")?,
            initiative: r.try_get("initiative")?,
            theme: r.try_get("theme")?,
            decided_on: r.try_get("decided_on")?,
            amount: Euro(r.try_get("amount_cents")?),
            amount_paid: Euro(r.try_get("paid_cents")?),
            amount_open: Euro(r.try_get("open_cents")?),
        })).collect()
    })
}

/// One event as it touched a wijk: what happened, and how it changed the
/// wijk's available money.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Booking {
    pub position: i64,
    pub event_type: String,
    pub booked_on: String,
    pub fund_id: String,
    /// The money the event moved on the wijk's accounts.
    pub amount: Euro,
    /// The change to the wijk's available money (negative when spent or committed).
    pub available_change: Euro,
    pub description: String,
}

/// The wijk's `limit` latest bookings up to `as_of`, latest booking date first.
pub async fn latest_bookings(
    db: &Db,
    wijk_id: &str,
    year: Option<i64>,
    as_of: Option<NaiveDate>,
    limit: i64,
) -> sqlx::Result<Vec<Booking>> {
    // A pair of postings moves money from one account to another; the
    // positive lines on this wijk's accounts are what the event moved here,
    // and a transfer away from it has only a negative line.
    const SQL: &str = "SELECT p.position, MIN(p.event_type) AS event_type, MIN(p.booked_on) AS booked_on, \
        MIN(p.fund_id) AS fund_id, \
        CAST(SUM(CASE WHEN p.amount_cents > 0 THEN p.amount_cents ELSE 0 END) AS BIGINT) AS moved_in, \
        CAST(SUM(CASE WHEN p.amount_cents < 0 THEN -p.amount_cents ELSE 0 END) AS BIGINT) AS moved_out, \
        CAST(SUM(CASE WHEN p.account_kind = 'wijk_budget' THEN p.amount_cents ELSE 0 END) AS BIGINT) AS available_change, \
        MIN(COALESCE(p.initiative, p.reason, p.reference, '')) AS description \
        FROM rm_postings p WHERE p.wijk_id = $1 AND ($2 IS NULL OR p.year = $2) AND ($3 IS NULL OR p.booked_on <= $3) \
        GROUP BY p.position ORDER BY MIN(p.booked_on) DESC, p.position DESC LIMIT $4";
    let as_of = as_of.map(|d| d.to_string());
    on_db!(db, pool => {
        let rows = sqlx::query(SQL).bind(wijk_id).bind(year).bind(as_of).bind(limit).fetch_all(pool).await?;
        rows.iter().map(|r| {
            let moved_in: i64 = r.try_get("moved_in")?;
            let moved_out: i64 = r.try_get("moved_out")?;
            Ok(Booking {
                position: r.try_get("position")?,
                event_type: r.try_get("event_type")?,
                booked_on: r.try_get("booked_on")?,
                fund_id: r.try_get("fund_id")?,
                amount: Euro(if moved_in > 0 { moved_in } else { moved_out }),
                available_change: Euro(r.try_get("available_change")?),
                description: r.try_get("description")?,
            })
        }).collect()
    })
}

/// What one initiative in one wijk got from one fund of the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InitiativeSpending {
    pub fund_id: String,
    pub wijk_id: String,
    pub initiative: String,
    /// Paid, net of reversals and recovery claims.
    pub amount_spent: Euro,
    /// Promised and not yet paid.
    pub amount_committed: Euro,
}

/// A fund and the funds its money was carried over into, in order, with
/// what each initiative got from them: "what was this money spent on?".
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MoneyTrail {
    /// The fund asked about first, then each carry-over fund in turn.
    pub funds: Vec<String>,
    pub initiatives: Vec<InitiativeSpending>,
}

pub async fn money_trail(db: &Db, fund_id: &str) -> sqlx::Result<MoneyTrail> {
    const NEXT: &str = "SELECT carry_over_fund FROM rm_funds WHERE fund_id = $1";
    const SPENDING: &str = "SELECT p.wijk_id, p.initiative, \
        CAST(SUM(CASE WHEN p.account_kind = 'spent' THEN p.amount_cents ELSE 0 END) AS BIGINT) AS spent, \
        CAST(SUM(CASE WHEN p.account_kind = 'committed' THEN p.amount_cents ELSE 0 END) AS BIGINT) AS committed \
        FROM rm_postings p WHERE p.fund_id = $1 AND p.account_kind IN ('spent', 'committed') AND p.initiative IS NOT NULL \
        GROUP BY p.wijk_id, p.initiative ORDER BY p.wijk_id, p.initiative";
    let mut funds = vec![fund_id.to_string()];
    let mut initiatives = Vec::new();
    on_db!(db, pool => {
        while funds.len() <= CARRY_OVER_HOPS_MAX {
            let current = funds.last().expect("the chain starts with the fund asked").clone();
            let rows = sqlx::query(SPENDING).bind(&current).fetch_all(pool).await?;
            for r in &rows {
                let spent: i64 = r.try_get("spent")?;
                let committed: i64 = r.try_get("committed")?;
                if spent != 0 || committed != 0 {
                    initiatives.push(InitiativeSpending {
                        fund_id: current.clone(),
                        wijk_id: r.try_get("wijk_id")?,
                        initiative: r.try_get("initiative")?,
                        amount_spent: Euro(spent),
                        amount_committed: Euro(committed),
                    });
                }
            }
            let next: Option<Option<String>> = sqlx::query_scalar(NEXT).bind(&current).fetch_optional(pool).await?;
            match next.flatten() {
                Some(next) if !funds.contains(&next) => funds.push(next),
                _ => break,
            }
        }
    });
    Ok(MoneyTrail { funds, initiatives })
}
