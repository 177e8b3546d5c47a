//! The illustrative Hilversum 2021-2022 dataset behind `wijkbudget demo`.
//!
//! The municipality's report gives the totals (EUR 450,000 a year over nine
//! wijken, and amendment A21-182's EUR 50,000 for 2022 spent on the Wegaplein
//! in Oost 1223) and the kinds of initiatives, but not the split per wijk.
//! The amounts per wijk and per initiative here are therefore invented,
//! deterministic and plausible; the README says so.

use chrono::NaiveDate;

use crate::domain::fund::{
    ApplicantKind, CommitmentDetails, Decision, ExpenseDetails, FundCommand, FundKind, FundTerms,
};
use crate::domain::ids::{CommitmentId, ExpenseId, FundId, Text, WijkId, Year};
use crate::domain::money::Amount;
use crate::domain::wijk::WijkCommand;
use crate::ledger::{Actor, CommandMeta, Ledger};

/// The nine wijken of Hilversum, as the report names them.
pub const WIJKEN: [(&str, &str); 9] = [
    ("noordoost", "Noordoost"),
    ("zuid", "Zuid"),
    ("hilversumse-meent", "Hilversumse Meent"),
    ("zuidoost", "Zuidoost"),
    ("oost-1221", "Oost 1221"),
    ("oost-1223", "Oost 1223"),
    ("centrum", "Centrum"),
    ("zuidwest", "Zuidwest"),
    ("noordwest", "Noordwest"),
];

/// Initiatives of the kinds the report describes: (name, theme).
const INITIATIVES: [(&str, &str); 16] = [
    ("Buurtmoestuin", "groen"),
    ("Hanging baskets en boomspiegels", "groen"),
    ("Maaltijden tegen eenzaamheid", "sociale cohesie"),
    ("Buitenspeeldag", "spelen"),
    ("Burendag", "sociale cohesie"),
    ("Koningsdag in de straat", "sociale cohesie"),
    ("Koffiemomenten voor ouderen", "sociale cohesie"),
    ("Watertappunt speeltuin", "spelen"),
    ("Lichtjesroute", "sociale cohesie"),
    ("Snelheidsremmende maatregelen", "veiligheid"),
    ("Geveltuinen", "groen"),
    ("Kinderactiviteiten", "spelen"),
    ("Wijkkrant", "sociale cohesie"),
    ("Voorlichting brandveiligheid", "veiligheid"),
    ("Zomerfeest", "sociale cohesie"),
    ("Plantenbakken", "groen"),
];

/// One step of the dataset, applied in order.
pub enum Step {
    Wijk(WijkCommand),
    Fund(FundId, FundCommand),
    CloseYear { year: Year, decision: Decision, carry_over: Vec<WijkId> },
}

fn t(s: &str) -> Text {
    Text::parse(s).expect("demo text is valid")
}
fn eur(cents: i64) -> Amount {
    Amount::try_from(rust_decimal::Decimal::new(cents, 2)).expect("demo amounts are valid")
}
fn day(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).expect("demo dates exist")
}
fn fund_id(s: &str) -> FundId {
    FundId::parse(s).expect("demo fund ids are valid")
}

/// Each wijk's share of the yearly EUR 450,000, in euro; they sum to 450,000.
const SHARES: [i64; 9] = [52_000, 50_000, 46_000, 51_000, 49_000, 53_000, 50_000, 48_000, 51_000];

/// The whole dataset, deterministic.
pub fn steps() -> Vec<Step> {
    debug_assert_eq!(SHARES.iter().sum::<i64>(), 450_000);
    let mut steps: Vec<Step> = WIJKEN
        .iter()
        .map(|(id, name)| {
            Step::Wijk(WijkCommand::Register { wijk_id: WijkId::parse(id).expect("valid"), name: t(name) })
        })
        .collect();
    for (year, adopted) in [(2021, day(2020, 11, 12)), (2022, day(2021, 11, 11))] {
        let fund = fund_id(&format!("begroting-{year}"));
        steps.push(Step::Fund(
            fund.clone(),
            FundCommand::Establish(FundTerms {
                fund_id: fund.clone(),
                year: Year::new(year).expect("valid"),
                kind: FundKind::Begroting,
                name: t(&format!("Wijkbudgetten {year}")),
                amount: eur(450_000_00),
                decision: Decision { reference: t(&format!("Begroting {year}")), adopted_on: adopted },
                purpose: t("Initiatieven van inwoners voor leefbaarheid en sociale cohesie in de wijk"),
            }),
        ));
        for (i, (wijk, _)) in WIJKEN.iter().enumerate() {
            steps.push(Step::Fund(
                fund.clone(),
                FundCommand::Allocate {
                    wijk_id: WijkId::parse(wijk).expect("valid"),
                    amount: eur(SHARES[i] * 100),
                    reason: t(&format!("Verdeling wijkbudgetten {year}")),
                    booked_on: day(year, 1, 4),
                },
            ));
        }
        // Three or four initiatives per wijk and year, spending most but not
        // all of each share, as the report says ("bijna alle").
        let mut n = 0usize;
        for (i, (wijk, _)) in WIJKEN.iter().enumerate() {
            let count = 3 + (i + year as usize) % 2;
            let mut budget = SHARES[i] * 100 * 94 / 100;
            for k in 0..count {
                let (initiative, theme) = INITIATIVES[(n * 7 + year as usize) % INITIATIVES.len()];
                n += 1;
                let amount = if k + 1 == count { budget } else { budget * (25 + ((n * 13) % 20) as i64) / 100 };
                budget -= amount;
                let expense_id = format!("{year}-{wijk}-{k:02}");
                steps.push(Step::Fund(
                    fund.clone(),
                    FundCommand::RecordExpense(ExpenseDetails {
                        expense_id: ExpenseId::parse(&expense_id).expect("valid"),
                        wijk_id: WijkId::parse(wijk).expect("valid"),
                        amount: eur(amount),
                        initiative: t(initiative),
                        theme: t(theme),
                        booked_on: day(year, 3 + (k as u32 * 2), 1 + (n as u32 % 27)),
                        reference: t(&format!("factuur {year}-{:04}", n * 17)),
                    }),
                ));
            }
        }
        // A few mistakes, corrected by reversal: a double booking per year.
        for wijk in ["centrum", "zuid"] {
            let id = format!("{year}-{wijk}-dubbel");
            steps.push(Step::Fund(
                fund.clone(),
                FundCommand::RecordExpense(ExpenseDetails {
                    expense_id: ExpenseId::parse(&id).expect("valid"),
                    wijk_id: WijkId::parse(wijk).expect("valid"),
                    amount: eur(1_250_00),
                    initiative: t("Burendag"),
                    theme: t("sociale cohesie"),
                    booked_on: day(year, 9, 28),
                    reference: t(&format!("factuur {year}-dubbel")),
                }),
            ));
            steps.push(Step::Fund(
                fund.clone(),
                FundCommand::ReverseExpense {
                    booked_on: None,
                    expense_id: ExpenseId::parse(&id).expect("valid"),
                    reason: t("Factuur dubbel geboekt"),
                    requested_on: day(year, 10, 15),
                    post_closing: false,
                },
            ));
        }
        steps.extend(lifecycle(year, &fund));
    }
    let a21 = fund_id("A21-182");
    steps.push(Step::Fund(
        a21.clone(),
        FundCommand::Establish(FundTerms {
            fund_id: a21.clone(),
            year: Year::new(2022).expect("valid"),
            kind: FundKind::Amendement,
            name: t("Amendement A21-182: meer geld voor de buurt"),
            amount: eur(50_000_00),
            decision: Decision { reference: t("A21-182"), adopted_on: day(2021, 11, 11) },
            purpose: t("Initiatieven die de sociale cohesie en verbinding in de wijken versterken"),
        }),
    ));
    steps.push(Step::Fund(
        a21.clone(),
        FundCommand::Allocate {
            wijk_id: WijkId::parse("oost-1223").expect("valid"),
            amount: eur(50_000_00),
            reason: t("Herinrichting Wegaplein, initiatief van omwonenden"),
            booked_on: day(2022, 3, 1),
        },
    ));
    for (k, (cents, what, date)) in [
        (32_500_00, "speeltoestellen en jeu de boules baan", day(2022, 9, 15)),
        (17_500_00, "(speel)groen, zitplekken en street art", day(2022, 12, 1)),
    ]
    .into_iter()
    .enumerate()
    {
        steps.push(Step::Fund(
            a21.clone(),
            FundCommand::RecordExpense(ExpenseDetails {
                expense_id: ExpenseId::parse(&format!("2022-wegaplein-{k}")).expect("valid"),
                wijk_id: WijkId::parse("oost-1223").expect("valid"),
                amount: eur(cents),
                initiative: t("Herinrichting Wegaplein"),
                theme: t("spelen"),
                booked_on: date,
                reference: t(&format!("factuur Wegaplein {}: {what}", k + 1)),
            }),
        ));
    }
    steps
}

fn wijk(id: &str) -> WijkId {
    WijkId::parse(id).expect("demo wijk ids are valid")
}

fn commitment(
    id: &str,
    wijk_id: &str,
    cents: i64,
    initiative: &str,
    applicant: &str,
    applicant_kind: ApplicantKind,
    theme: &str,
    decided: NaiveDate,
) -> FundCommand {
    FundCommand::Commit(CommitmentDetails {
        commitment_id: CommitmentId::parse(id).expect("valid"),
        wijk_id: wijk(wijk_id),
        amount: eur(cents),
        initiative: t(initiative),
        applicant: t(applicant),
        applicant_kind,
        theme: t(theme),
        decision: Decision { reference: t(&format!("Subsidiebeschikking {id}")), adopted_on: decided },
        grant_rule: t("Subsidieregeling wijkbudgetten Hilversum"),
        booked_on: decided,
    })
}

fn pay(id: &str, n: u32, cents: i64, on: NaiveDate) -> FundCommand {
    FundCommand::Pay {
        commitment_id: CommitmentId::parse(id).expect("valid"),
        expense_id: ExpenseId::parse(&format!("{id}-betaling-{n}")).expect("valid"),
        amount: eur(cents),
        booked_on: on,
        reference: t(&format!("betaalopdracht {id}/{n}")),
    }
}

/// Commitments and their lifecycle, a transfer, and (for 2021) the year-end
/// close with one carry-over (Oost 1221) while every other wijk's money lapses.
fn lifecycle(year: i32, fund: &FundId) -> Vec<Step> {
    let f = |command| Step::Fund(fund.clone(), command);
    let cid = |id: &str| CommitmentId::parse(id).expect("valid");
    if year == 2021 {
        vec![
            // Granted 2,500, paid in full, settled at 2,100: 400 claimed back and repaid.
            f(commitment(
                "SUB-2021-014",
                "noordoost",
                2_500_00,
                "Buurtmoestuin Wirixstraat",
                "Tuingroep Wirixstraat",
                ApplicantKind::Organisation,
                "groen",
                day(2021, 4, 12),
            )),
            f(pay("SUB-2021-014", 1, 2_500_00, day(2021, 5, 3))),
            f(FundCommand::Settle {
                commitment_id: cid("SUB-2021-014"),
                settled_amount: rust_decimal::Decimal::new(2_100_00, 2),
                decision_reference: t("Vaststelling SUB-2021-014"),
                booked_on: day(2021, 11, 20),
            }),
            f(FundCommand::Repay {
                commitment_id: cid("SUB-2021-014"),
                amount: eur(400_00),
                booked_on: day(2021, 12, 10),
                reference: t("terugbetaling SUB-2021-014"),
            }),
            // Still open at the close, carried along and paid in 2022.
            f(commitment(
                "SUB-2021-031",
                "hilversumse-meent",
                1_800_00,
                "Ontmoetingsdag Meentwerf",
                "Stichting Hilversumse Meent",
                ApplicantKind::Organisation,
                "sociale cohesie",
                day(2021, 11, 1),
            )),
            f(pay("SUB-2021-031", 1, 800_00, day(2021, 12, 1))),
            f(FundCommand::Transfer {
                from_wijk: wijk("zuid"),
                to_wijk: wijk("oost-1221"),
                amount: eur(1_000_00),
                decision_reference: t("Collegebesluit 2021-0777"),
                reason: t("Extra budget voor groeninitiatieven Oost 1221"),
                booked_on: day(2021, 9, 1),
            }),
            Step::CloseYear {
                year: Year::new(2021).expect("valid"),
                decision: Decision { reference: t("Raadsbesluit jaarrekening 2021"), adopted_on: day(2022, 6, 30) },
                carry_over: vec![wijk("oost-1221")],
            },
            f(pay("SUB-2021-031", 2, 1_000_00, day(2022, 2, 15))),
        ]
    } else {
        vec![
            f(commitment(
                "SUB-2022-007",
                "oost-1221",
                2_500_00,
                "Zomerfeest Larenseweg",
                "Bewonerscommissie Larenseweg",
                ApplicantKind::Organisation,
                "sociale cohesie",
                day(2022, 4, 4),
            )),
            f(pay("SUB-2022-007", 1, 1_000_00, day(2022, 6, 20))),
            // Decided in March and still waiting: the stale-commitments report shows it.
            f(commitment(
                "SUB-2022-019",
                "centrum",
                1_500_00,
                "Watertappunt Jan Korteplein",
                "Buurtgroep Jan Korteplein",
                ApplicantKind::Organisation,
                "spelen",
                day(2022, 3, 1),
            )),
            f(commitment(
                "SUB-2022-023",
                "zuidwest",
                1_500_00,
                "Opening pumptrack",
                // A private person: the subsidy register shows "particulier", never the name.
                "Mila Jansen",
                ApplicantKind::Private,
                "spelen",
                day(2022, 5, 2),
            )),
            f(FundCommand::Withdraw {
                commitment_id: cid("SUB-2022-023"),
                reason: t("Initiatief gaat niet door"),
                cancelled: false,
                booked_on: day(2022, 8, 15),
            }),
        ]
    }
}

/// Applies the dataset through the ledger, as finance would, reporting progress.
pub async fn load(ledger: &Ledger, mut progress: impl FnMut(usize, usize)) -> anyhow::Result<()> {
    let meta = CommandMeta::new(Actor { name: "demo-loader".into(), role: "finance".into() });
    let steps = steps();
    let total = steps.len();
    for (i, step) in steps.into_iter().enumerate() {
        match step {
            Step::Wijk(command) => ledger.register_wijk(command, &meta).await?,
            Step::Fund(fund_id, command) => ledger.fund(&fund_id, command, &meta).await?,
            Step::CloseYear { year, decision, carry_over } => {
                ledger.close_year(year, decision, &carry_over, &meta).await?;
                crate::ledger::Outcome::Unchanged
            }
        };
        progress(i + 1, total);
    }
    Ok(())
}
