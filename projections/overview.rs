//! The questions the web app's overview pages ask beyond the API's: a
//! wijk's open commitments and latest bookings as they stood on a day, and
//! what a fund's money went to per wijk and initiative, following it into
//! the funds it was carried over to. Like every read here, an as-of answer
//! counts only postings booked on or before that day.

use chrono::NaiveDate;
use serde::Serialize;
use sqlx::Row;

use super::queries::{Euro, POSTINGS_PER_EVENT_MAX};
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
        AND ($3 IS NOT NULL OR c.status = 'open') AND ($3 IS NULL OR c.booked_on <= $3) \
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

/// The wijk's `limit` last recorded bookings among those booked up to
/// `as_of`, newest first. It reads only the last postings of the wijk
/// (through `rm_postings_wijk`), however long its history.
pub async fn latest_bookings(
    db: &Db,
    wijk_id: &str,
    year: Option<i64>,
    as_of: Option<NaiveDate>,
    limit: i64,
) -> sqlx::Result<Vec<Booking>> {
    const SQL: &str = "SELECT p.position, p.event_type, p.booked_on, p.fund_id, p.account_kind, p.amount_cents, \
        COALESCE(p.initiative, p.reason, p.reference, '') AS description \
        FROM rm_postings p WHERE p.wijk_id = $1 AND ($2 IS NULL OR p.year = $2) AND ($3 IS NULL OR p.booked_on <= $3) \
        ORDER BY p.position DESC, p.line LIMIT $4";
    let as_of = as_of.map(|d| d.to_string());
    // Enough rows for `limit` whole events and one more, so the last event kept is whole.
    let rows_wanted = (limit + 1) * POSTINGS_PER_EVENT_MAX;
    let rows = on_db!(db, pool => {
        let rows = sqlx::query(SQL).bind(wijk_id).bind(year).bind(as_of).bind(rows_wanted).fetch_all(pool).await?;
        rows.iter().map(|r| Ok((
            r.try_get::<i64, _>("position")?,
            r.try_get::<String, _>("event_type")?,
            r.try_get::<String, _>("booked_on")?,
            r.try_get::<String, _>("fund_id")?,
            r.try_get::<String, _>("account_kind")?,
            r.try_get::<i64, _>("amount_cents")?,
            r.try_get::<String, _>("description")?,
        ))).collect::<sqlx::Result<Vec<_>>>()?
    });
    // A pair of postings moves money from one account to another; the
    // positive lines on this wijk's accounts are what the event moved here,
    // and a transfer away from it has only a negative line.
    let mut bookings: Vec<(Booking, i64, i64)> = Vec::new();
    for (position, event_type, booked_on, fund_id, kind, cents, description) in rows {
        if bookings.last().map(|(b, _, _)| b.position) != Some(position) {
            bookings.push((
                Booking {
                    position,
                    event_type,
                    booked_on,
                    fund_id,
                    amount: Euro(0),
                    available_change: Euro(0),
                    description: String::new(),
                },
                0,
                0,
            ));
        }
        let (booking, moved_in, moved_out) = bookings.last_mut().expect("pushed above");
        if cents > 0 {
            *moved_in += cents;
        } else {
            *moved_out -= cents;
        }
        if kind == "wijk_budget" {
            booking.available_change.0 += cents;
        }
        if booking.description.is_empty() {
            booking.description = description;
        }
    }
    bookings.truncate(limit as usize);
    Ok(bookings
        .into_iter()
        .map(|(mut b, moved_in, moved_out)| {
            b.amount = Euro(if moved_in > 0 { moved_in } else { moved_out });
            b
        })
        .collect())
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
