//! The lifecycle reports: spending per wijk and theme, commitments left
//! waiting, and the close statement of a year's funds.

use chrono::NaiveDate;
use serde::Serialize;
use sqlx::Row;
use utoipa::ToSchema;

use super::queries::{Euro, Period};
use crate::on_db;
use crate::store::Db;

/// The usual decision term: a commitment older than this with no payment
/// and no settlement needs a look.
pub const STALE_AFTER_DAYS: i64 = 13 * 7;

/// The money of one wijk's initiatives of one theme. Every column means
/// exactly what the column of the same name means on the wijk's row
/// ([`WijkThemes`]), and the theme rows of a wijk sum to that row.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, ToSchema)]
pub struct ThemeLine {
    pub theme: String,
    #[serde(flatten)]
    pub amounts: ThemeAmounts,
}

/// The quantities the theme report shows, per theme and per wijk alike.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, ToSchema)]
pub struct ThemeAmounts {
    /// Granted in commitments (verplichtingen), whatever became of them since.
    pub amount_granted: Euro,
    /// Committed and not yet paid, settled away or withdrawn: still held.
    pub amount_committed: Euro,
    /// Paid, against commitments or directly, net of reversals.
    pub amount_paid: Euro,
    /// Spent: paid, less what settlements claimed back (terugvordering).
    pub amount_spent: Euro,
    /// The final amounts of settled commitments (vaststelling).
    pub amount_settled: Euro,
    /// Claimed back after settlements below what was paid (terugvordering).
    pub amount_recovered: Euro,
    /// Of that, repaid so far.
    pub amount_repaid: Euro,
}

impl ThemeAmounts {
    fn plus(&self, o: &ThemeAmounts) -> ThemeAmounts {
        let add = |a: Euro, b: Euro| Euro(a.0 + b.0);
        ThemeAmounts {
            amount_granted: add(self.amount_granted, o.amount_granted),
            amount_committed: add(self.amount_committed, o.amount_committed),
            amount_paid: add(self.amount_paid, o.amount_paid),
            amount_spent: add(self.amount_spent, o.amount_spent),
            amount_settled: add(self.amount_settled, o.amount_settled),
            amount_recovered: add(self.amount_recovered, o.amount_recovered),
            amount_repaid: add(self.amount_repaid, o.amount_repaid),
        }
    }
}

/// One wijk's row of the theme report: its allocated and remaining money,
/// which belong to no theme, and the sum of its theme rows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct WijkThemes {
    pub wijk_id: String,
    pub name: String,
    /// Allocated to the wijk, including transfers in and out.
    pub amount_allocated: Euro,
    /// The same quantities as each theme row; the theme rows sum to them.
    #[serde(flatten)]
    pub amounts: ThemeAmounts,
    /// What the wijk can still promise or spend.
    pub amount_remaining: Euro,
    pub themes: Vec<ThemeLine>,
}

/// Per wijk and theme, for a year (or every year), from everything booked.
pub async fn themes(db: &Db, year: Option<i64>) -> sqlx::Result<Vec<WijkThemes>> {
    themes_in(db, Period { year, as_of: None }).await
}

/// Per wijk and theme: granted, committed, paid, spent, settled, recovered
/// and repaid, with each wijk's allocated and remaining. With `as_of`, only
/// what was booked on or before that day counts.
pub async fn themes_in(db: &Db, period: Period) -> sqlx::Result<Vec<WijkThemes>> {
    let wijken = super::queries::wijk_summaries(db, period).await?;
    let as_of = period.as_of.map(|d| d.to_string());
    let rows = on_db!(db, pool => {
        // Every posting on a wijk's committed and spent accounts carries the
        // theme of its commitment or expense, so the themes sum to the wijk.
        let rows = sqlx::query(
            "SELECT p.wijk_id, COALESCE(p.theme, '(none)') AS theme, \
             CAST(COALESCE(SUM(CASE WHEN p.account_kind = 'committed' AND p.event_type = 'CommitmentMade' THEN p.amount_cents END), 0) AS BIGINT) AS granted, \
             CAST(COALESCE(SUM(CASE WHEN p.account_kind = 'committed' THEN p.amount_cents END), 0) AS BIGINT) AS committed, \
             CAST(COALESCE(SUM(CASE WHEN p.account_kind = 'spent' AND p.event_type IN ('CommitmentPaid', 'ExpenseRecorded', 'ExpenseReversed', 'ExpenseReversedAfterClose') THEN p.amount_cents END), 0) AS BIGINT) AS paid, \
             CAST(COALESCE(SUM(CASE WHEN p.account_kind = 'spent' THEN p.amount_cents END), 0) AS BIGINT) AS spent, \
             CAST(COALESCE(SUM(CASE WHEN p.account_kind = 'receivable' AND p.event_type = 'CommitmentSettled' THEN p.amount_cents END), 0) AS BIGINT) AS recovered, \
             CAST(COALESCE(SUM(CASE WHEN p.account_kind = 'receivable' AND p.event_type = 'RepaymentReceived' THEN -p.amount_cents END), 0) AS BIGINT) AS repaid \
             FROM rm_postings p WHERE p.wijk_id IS NOT NULL AND ($1 IS NULL OR p.year = $1) \
             AND ($2 IS NULL OR p.booked_on <= $2) \
             AND p.account_kind IN ('committed', 'spent', 'receivable') \
             GROUP BY p.wijk_id, COALESCE(p.theme, '(none)') ORDER BY p.wijk_id, 2",
        )
        .bind(period.year)
        .bind(as_of.as_deref())
        .fetch_all(pool)
        .await?;
        // A settlement at the full commitment moves no money, so settled
        // amounts come from the commitments themselves.
        let settled = sqlx::query(
            "SELECT c.wijk_id, c.theme, CAST(SUM(c.settled_cents) AS BIGINT) AS settled \
             FROM rm_commitments c JOIN rm_funds f ON f.fund_id = c.fund_id \
             WHERE c.settled_on IS NOT NULL AND ($1 IS NULL OR f.year = $1) AND ($2 IS NULL OR c.settled_on <= $2) \
             GROUP BY c.wijk_id, c.theme ORDER BY c.wijk_id, c.theme",
        )
        .bind(period.year)
        .bind(as_of.as_deref())
        .fetch_all(pool)
        .await?;
        let mut lines: std::collections::BTreeMap<(String, String), ThemeAmounts> = Default::default();
        for r in &rows {
            let line = lines.entry((r.try_get("wijk_id")?, r.try_get("theme")?)).or_default();
            line.amount_granted = Euro(r.try_get("granted")?);
            line.amount_committed = Euro(r.try_get("committed")?);
            line.amount_paid = Euro(r.try_get("paid")?);
            line.amount_spent = Euro(r.try_get("spent")?);
            line.amount_recovered = Euro(r.try_get("recovered")?);
            line.amount_repaid = Euro(r.try_get("repaid")?);
        }
        for r in &settled {
            let line = lines.entry((r.try_get("wijk_id")?, r.try_get("theme")?)).or_default();
            line.amount_settled = Euro(r.try_get("settled")?);
        }
        lines
    });
    Ok(wijken
        .into_iter()
        .map(|w| {
            let themes: Vec<ThemeLine> = rows
                .iter()
                .filter(|((id, _), _)| *id == w.wijk_id)
                .map(|((_, theme), amounts)| ThemeLine { theme: theme.clone(), amounts: amounts.clone() })
                .collect();
            // Committed and spent come from the wijk's own balances, not
            // from the theme rows, so that the themes adding up to them is
            // a fact the report's tests can check, not a construction.
            let amounts = ThemeAmounts {
                amount_committed: w.totals.amount_committed,
                amount_spent: w.totals.amount_spent,
                ..themes.iter().fold(ThemeAmounts::default(), |sum, t| sum.plus(&t.amounts))
            };
            WijkThemes {
                amount_allocated: w.totals.amount_allocated,
                amounts,
                amount_remaining: w.totals.amount_remaining,
                themes,
                wijk_id: w.wijk_id,
                name: w.name,
            }
        })
        .collect())
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct CommitmentView {
    pub commitment_id: String,
    pub fund_id: String,
    pub wijk_id: String,
    pub initiative: String,
    /// The organisation or residents who applied; withheld from council members.
    pub applicant: Option<String>,
    pub theme: String,
    pub decision_reference: String,
    pub decided_on: String,
    pub grant_rule: String,
    /// open, settled, withdrawn or cancelled.
    pub status: String,
    pub amount: Euro,
    pub amount_paid: Euro,
    pub amount_settled: Option<Euro>,
    /// Claimed back and not yet repaid.
    pub amount_owed: Euro,
    pub last_paid_on: Option<String>,
}

const COMMITMENT_COLUMNS: &str = "commitment_id, fund_id, wijk_id, initiative, applicant, theme, decision_reference, \
    decided_on, grant_rule, status, amount_cents, paid_cents, settled_cents, owed_cents, last_paid_on";

fn commitment_rows<R: Row>(rows: &[R]) -> sqlx::Result<Vec<CommitmentView>>
where
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    i64: sqlx::Type<R::Database> + for<'a> sqlx::Decode<'a, R::Database>,
    String: sqlx::Type<R::Database> + for<'a> sqlx::Decode<'a, R::Database>,
    Option<i64>: sqlx::Type<R::Database> + for<'a> sqlx::Decode<'a, R::Database>,
    Option<String>: sqlx::Type<R::Database> + for<'a> sqlx::Decode<'a, R::Database>,
{
    rows.iter()
        .map(|r| {
            Ok(CommitmentView {
                commitment_id: r.try_get("commitment_id")?,
                fund_id: r.try_get("fund_id")?,
                wijk_id: r.try_get("wijk_id")?,
                initiative: r.try_get("initiative")?,
                applicant: Some(r.try_get("applicant")?),
                theme: r.try_get("theme")?,
                decision_reference: r.try_get("decision_reference")?,
                decided_on: r.try_get("decided_on")?,
                grant_rule: r.try_get("grant_rule")?,
                status: r.try_get("status")?,
                amount: Euro(r.try_get("amount_cents")?),
                amount_paid: Euro(r.try_get("paid_cents")?),
                amount_settled: r.try_get::<Option<i64>, _>("settled_cents")?.map(Euro),
                amount_owed: Euro(r.try_get("owed_cents")?),
                last_paid_on: r.try_get("last_paid_on")?,
            })
        })
        .collect()
}

/// One commitment, or None.
pub async fn commitment(db: &Db, commitment_id: &str) -> sqlx::Result<Option<CommitmentView>> {
    let sql = format!("SELECT {COMMITMENT_COLUMNS} FROM rm_commitments WHERE commitment_id = $1");
    on_db!(db, pool => {
        let rows = sqlx::query(&sql).bind(commitment_id).fetch_all(pool).await?;
        Ok(commitment_rows(&rows)?.into_iter().next())
    })
}

/// Commitments that, as they stood on `as_of`, were open and unpaid and
/// decided at least [`STALE_AFTER_DAYS`] before it, oldest first.
///
/// Only bookings dated on or before `as_of` count: a commitment booked later
/// is left out, and one paid, settled or withdrawn later is still listed,
/// as it stood then (open, nothing paid). Bookings on a commitment are never
/// dated before its previous one, so its first payment, settlement and end
/// dates say exactly what its status was on any day.
pub async fn stale_commitments(db: &Db, as_of: NaiveDate) -> sqlx::Result<Vec<CommitmentView>> {
    let cutoff = as_of - chrono::Duration::days(STALE_AFTER_DAYS);
    let sql = format!(
        "SELECT {COMMITMENT_COLUMNS} FROM rm_commitments WHERE booked_on <= $1 AND decided_on <= $2 \
         AND (first_paid_on IS NULL OR first_paid_on > $1) AND (settled_on IS NULL OR settled_on > $1) \
         AND (ended_on IS NULL OR ended_on > $1) ORDER BY decided_on, commitment_id"
    );
    let mut list = on_db!(db, pool => {
        let rows = sqlx::query(&sql).bind(as_of.to_string()).bind(cutoff.to_string()).fetch_all(pool).await?;
        commitment_rows(&rows)?
    });
    // As they stood on `as_of`: whatever came later is not shown.
    for c in &mut list {
        c.status = "open".into();
        c.amount_paid = Euro(0);
        c.amount_settled = None;
        c.amount_owed = Euro(0);
        c.last_paid_on = None;
    }
    Ok(list)
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct CloseLineView {
    pub wijk_id: String,
    pub amount_allocated: Euro,
    /// Net of transfers in and out.
    pub amount_transferred: Euro,
    pub amount_spent: Euro,
    /// Open commitments, carried along into the next year.
    pub amount_committed: Euro,
    pub amount_receivable: Euro,
    pub amount_lapsed: Euro,
    pub amount_carried_over: Euro,
}

/// A fund's year-close statement. It reconciles when `difference` is zero:
/// opening − spent − committed − receivable − lapsed − carried over = 0.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct CloseStatement {
    pub fund_id: String,
    pub year: i64,
    pub closed_on: String,
    pub decision_reference: String,
    pub carry_over_fund: Option<String>,
    pub opening: Euro,
    pub lines: Vec<CloseLineView>,
    /// Money the fund never allocated; it lapses.
    pub unallocated_lapsed: Euro,
    pub amount_spent: Euro,
    pub amount_committed: Euro,
    pub amount_receivable: Euro,
    /// Including the unallocated money.
    pub amount_lapsed: Euro,
    pub amount_carried_over: Euro,
    pub difference: Euro,
}

/// The inputs of a year's close statements: per fund of `year` and wijk,
/// the balance of each account the statement reconciles, as the ledger
/// holds it now, or (`as_of`) from the postings booked on or before that day.
pub async fn close_inputs(db: &Db, year: i64, as_of: Option<NaiveDate>) -> sqlx::Result<Vec<(String, CloseLineView)>> {
    let sql = if as_of.is_some() {
        "SELECT p.fund_id, p.wijk_id, \
         CAST(SUM(CASE WHEN p.account_kind = 'wijk_budget' AND p.event_type IN ('BudgetAllocated', 'FundCarriedOver') THEN p.amount_cents ELSE 0 END) AS BIGINT) AS allocated, \
         CAST(SUM(CASE WHEN p.account_kind = 'wijk_budget' AND p.event_type = 'BudgetTransferred' THEN p.amount_cents ELSE 0 END) AS BIGINT) AS transferred, \
         CAST(SUM(CASE WHEN p.account_kind = 'spent' THEN p.amount_cents ELSE 0 END) AS BIGINT) AS spent, \
         CAST(SUM(CASE WHEN p.account_kind = 'committed' THEN p.amount_cents ELSE 0 END) AS BIGINT) AS committed, \
         CAST(SUM(CASE WHEN p.account_kind = 'receivable' THEN p.amount_cents ELSE 0 END) AS BIGINT) AS receivable, \
         CAST(SUM(CASE WHEN p.account_kind = 'lapsed' THEN p.amount_cents ELSE 0 END) AS BIGINT) AS lapsed, \
         CAST(SUM(CASE WHEN p.account_kind = 'carried_over' THEN p.amount_cents ELSE 0 END) AS BIGINT) AS carried_over \
         FROM rm_postings p WHERE p.year = $1 AND p.wijk_id IS NOT NULL AND p.booked_on <= $2 \
         GROUP BY p.fund_id, p.wijk_id ORDER BY p.fund_id, p.wijk_id"
    } else {
        // The same sums as the statement frozen at the close (apply.rs).
        "SELECT b.fund_id, b.wijk_id, \
         CAST(SUM(CASE WHEN b.kind = 'allocated' THEN b.cents ELSE 0 END) AS BIGINT) AS allocated, \
         CAST(SUM(CASE WHEN b.kind = 'transferred' THEN b.cents ELSE 0 END) AS BIGINT) AS transferred, \
         CAST(SUM(CASE WHEN b.kind = 'spent' THEN b.cents ELSE 0 END) AS BIGINT) AS spent, \
         CAST(SUM(CASE WHEN b.kind = 'committed' THEN b.cents ELSE 0 END) AS BIGINT) AS committed, \
         CAST(SUM(CASE WHEN b.kind = 'receivable' THEN b.cents ELSE 0 END) AS BIGINT) AS receivable, \
         CAST(SUM(CASE WHEN b.kind = 'lapsed' THEN b.cents ELSE 0 END) AS BIGINT) AS lapsed, \
         CAST(SUM(CASE WHEN b.kind = 'carried_over' THEN b.cents ELSE 0 END) AS BIGINT) AS carried_over \
         FROM rm_balances b WHERE b.year = $1 GROUP BY b.fund_id, b.wijk_id ORDER BY b.fund_id, b.wijk_id"
    };
    on_db!(db, pool => {
        let mut query = sqlx::query(sql).bind(year);
        if let Some(as_of) = as_of {
            query = query.bind(as_of.to_string());
        }
        query.fetch_all(pool).await?.iter().map(|r| Ok((r.try_get::<String, _>("fund_id")?, CloseLineView {
            wijk_id: r.try_get("wijk_id")?,
            amount_allocated: Euro(r.try_get("allocated")?),
            amount_transferred: Euro(r.try_get("transferred")?),
            amount_spent: Euro(r.try_get("spent")?),
            amount_committed: Euro(r.try_get("committed")?),
            amount_receivable: Euro(r.try_get("receivable")?),
            amount_lapsed: Euro(r.try_get("lapsed")?),
            amount_carried_over: Euro(r.try_get("carried_over")?),
        }))).collect()
    })
}

/// The close statements of every closed fund of `year`.
pub async fn close_statements(db: &Db, year: i64) -> sqlx::Result<Vec<CloseStatement>> {
    let (funds, lines) = on_db!(db, pool => {
        let funds = sqlx::query(
            "SELECT fund_id, year, closed_on, close_decision, carry_over_fund, amount_cents, \
             CAST(COALESCE(unallocated_lapsed_cents, 0) AS BIGINT) AS unallocated_lapsed \
             FROM rm_funds WHERE year = $1 AND closed_on IS NOT NULL ORDER BY fund_id",
        )
        .bind(year)
        .fetch_all(pool)
        .await?
        .iter()
        .map(|r| Ok((
            r.try_get::<String, _>("fund_id")?,
            r.try_get::<i64, _>("year")?,
            r.try_get::<String, _>("closed_on")?,
            r.try_get::<String, _>("close_decision")?,
            r.try_get::<Option<String>, _>("carry_over_fund")?,
            r.try_get::<i64, _>("amount_cents")?,
            r.try_get::<i64, _>("unallocated_lapsed")?,
        )))
        .collect::<sqlx::Result<Vec<_>>>()?;
        let lines = sqlx::query(
            "SELECT l.fund_id, l.wijk_id, l.allocated_cents, l.transferred_cents, l.spent_cents, l.committed_cents, \
             l.receivable_cents, l.lapsed_cents, l.carried_over_cents FROM rm_close_lines l \
             JOIN rm_funds f ON f.fund_id = l.fund_id WHERE f.year = $1 ORDER BY l.fund_id, l.wijk_id",
        )
        .bind(year)
        .fetch_all(pool)
        .await?
        .iter()
        .map(|r| Ok((r.try_get::<String, _>("fund_id")?, CloseLineView {
            wijk_id: r.try_get("wijk_id")?,
            amount_allocated: Euro(r.try_get("allocated_cents")?),
            amount_transferred: Euro(r.try_get("transferred_cents")?),
            amount_spent: Euro(r.try_get("spent_cents")?),
            amount_committed: Euro(r.try_get("committed_cents")?),
            amount_receivable: Euro(r.try_get("receivable_cents")?),
            amount_lapsed: Euro(r.try_get("lapsed_cents")?),
            amount_carried_over: Euro(r.try_get("carried_over_cents")?),
        })))
        .collect::<sqlx::Result<Vec<_>>>()?;
        (funds, lines)
    });
    Ok(funds
        .into_iter()
        .map(|(fund_id, year, closed_on, decision_reference, carry_over_fund, opening, unallocated_lapsed)| {
            let lines: Vec<CloseLineView> =
                lines.iter().filter(|(f, _)| *f == fund_id).map(|(_, l)| l.clone()).collect();
            let sum = |f: fn(&CloseLineView) -> Euro| lines.iter().map(|l| f(l).0).sum::<i64>();
            let spent = sum(|l| l.amount_spent);
            let committed = sum(|l| l.amount_committed);
            let receivable = sum(|l| l.amount_receivable);
            let lapsed = sum(|l| l.amount_lapsed) + unallocated_lapsed;
            let carried = sum(|l| l.amount_carried_over);
            CloseStatement {
                fund_id,
                year,
                closed_on,
                decision_reference,
                carry_over_fund,
                opening: Euro(opening),
                lines,
                unallocated_lapsed: Euro(unallocated_lapsed),
                amount_spent: Euro(spent),
                amount_committed: Euro(committed),
                amount_receivable: Euro(receivable),
                amount_lapsed: Euro(lapsed),
                amount_carried_over: Euro(carried),
                difference: Euro(opening - spent - committed - receivable - lapsed - carried),
            }
        })
        .collect())
}
