//! The subsidieregister: the grants of a year, as a municipality publishes
//! them. Under the AVG a private person's name is never in it: such an
//! applicant, and every grant recorded before applicants were marked, is
//! shown as "particulier".

use serde::Serialize;
use sqlx::Row;
use utoipa::ToSchema;

use super::queries::Euro;
use crate::on_db;
use crate::store::Db;

/// What the register shows instead of a private person's name.
pub const PRIVATE_PERSON: &str = "particulier";

/// One grant in the register.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct SubsidyLine {
    /// The organisation that received it, or `particulier`.
    pub recipient: String,
    /// `organisation` or `private`.
    pub applicant_kind: String,
    pub initiative: String,
    pub wijk_id: String,
    pub fund_id: String,
    pub amount_granted: Euro,
    /// The final grant once settled (vaststelling).
    pub amount_settled: Option<Euro>,
    pub decision_reference: String,
    pub decided_on: String,
    /// The regulation it was granted under.
    pub grant_rule: String,
    /// open, settled, withdrawn or cancelled.
    pub status: String,
}

/// Every grant from a fund of `year`, oldest decision first. The applicant's
/// kind is read from the grant's own event, where it was marked.
pub async fn register(db: &Db, year: i64) -> sqlx::Result<Vec<SubsidyLine>> {
    const SQL: &str = "SELECT c.applicant, e.payload -> 'CommitmentMade' ->> 'applicant_kind' AS applicant_kind, \
        c.initiative, c.wijk_id, c.fund_id, c.amount_cents, c.settled_cents, c.decision_reference, c.decided_on, \
        c.grant_rule, c.status \
        FROM rm_commitments c JOIN rm_funds f ON f.fund_id = c.fund_id JOIN events e ON e.position = c.position \
        WHERE f.year = $1 ORDER BY c.decided_on, c.commitment_id";
    on_db!(db, pool => {
        let rows = sqlx::query(SQL).bind(year).fetch_all(pool).await?;
        rows.iter().map(|r| {
            let organisation = r.try_get::<Option<String>, _>("applicant_kind")?.as_deref() == Some("organisation");
            Ok(SubsidyLine {
                recipient: if organisation { r.try_get("applicant")? } else { PRIVATE_PERSON.to_string() },
                applicant_kind: if organisation { "organisation" } else { "private" }.to_string(),
                initiative: r.try_get("initiative")?,
                wijk_id: r.try_get("wijk_id")?,
                fund_id: r.try_get("fund_id")?,
                amount_granted: Euro(r.try_get("amount_cents")?),
                amount_settled: r.try_get::<Option<i64>, _>("settled_cents")?.map(Euro),
                decision_reference: r.try_get("decision_reference")?,
                decided_on: r.try_get("decided_on")?,
                grant_rule: r.try_get("grant_rule")?,
                status: r.try_get("status")?,
            })
        }).collect()
    })
}

/// The register's CSV columns.
pub const CSV_HEADER: &str = "recipient,applicant_kind,initiative,wijk_id,fund_id,amount_granted,amount_settled,\
decision_reference,decided_on,grant_rule,status";

/// One CSV row per grant, in [`CSV_HEADER`]'s order.
pub fn csv_rows(lines: &[SubsidyLine]) -> Vec<Vec<String>> {
    lines
        .iter()
        .map(|l| {
            vec![
                l.recipient.clone(),
                l.applicant_kind.clone(),
                l.initiative.clone(),
                l.wijk_id.clone(),
                l.fund_id.clone(),
                l.amount_granted.to_string(),
                l.amount_settled.map(|e| e.to_string()).unwrap_or_default(),
                l.decision_reference.clone(),
                l.decided_on.clone(),
                l.grant_rule.clone(),
                l.status.clone(),
            ]
        })
        .collect()
}
