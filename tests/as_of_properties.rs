//! As-of answers over generated lifecycles, on SQLite and PostgreSQL:
//!
//! (a) for a day D, every as-of answer (wijk budgets and summaries, audit
//!     trails, stale commitments, themes, fund spending and the close
//!     statement's inputs) equals the answer of a fresh ledger that only
//!     ever received the accepted commands booked on or before D;
//! (b) every column of a report that has a total sums to that total, now
//!     and as of each D, on the generated data and on the demo's;
//! (c) no as-of answer shows negative money.
//!
//! A history is a random sequence of allocations, expenses, reversals,
//! commitments, payments, settlements, repayments, withdrawals and
//! transfers, booked on random days of 2022 (so many are back-dated; what
//! follows a commitment also early in 2023), sometimes followed by the
//! year's close with a carry-over.

mod common;

use chrono::{Days, NaiveDate};
use common::{date, fund_id, meta, text, wijk, Backend, Harness, BACKENDS};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use rust_decimal::Decimal;
use wijkbudget::domain::fund::{
    ApplicantKind, CommitmentDetails, Decision, ExpenseDetails, FundCommand, FundKind, FundTerms,
};
use wijkbudget::domain::ids::{CommitmentId, ExpenseId, Year};
use wijkbudget::domain::money::Amount;
use wijkbudget::domain::wijk::WijkCommand;
use wijkbudget::ledger::{Ledger, LedgerError, Outcome};
use wijkbudget::projections::queries::{self, AuditFilter, Period};
use wijkbudget::projections::reports;
use wijkbudget::store::Db;

const FUND: &str = "begroting-2022";
const CARRIED: &str = "begroting-2022-overheveling";
const WIJKEN: [&str; 2] = ["oost-1223", "west-7"];
const THEMES: [&str; 2] = ["groen", "spelen"];
/// The close decision's day: the carry-over fund is booked on it.
const CLOSE_DECIDED: &str = "2023-03-30";
/// A day after everything a history books: its as-of answers are today's.
const AFTER_ALL: &str = "2023-12-31";

#[derive(Debug, Clone)]
enum Op {
    Allocate {
        w: usize,
        cents: i64,
        day: u64,
    },
    Expense {
        w: usize,
        id: usize,
        cents: i64,
        day: u64,
        theme: usize,
    },
    /// `day: None` is booked on the default: today, kept within 2022.
    Reverse {
        id: usize,
        day: Option<u64>,
    },
    Commit {
        w: usize,
        id: usize,
        cents: i64,
        day: u64,
        theme: usize,
    },
    Pay {
        c: usize,
        id: usize,
        cents: i64,
        day: u64,
    },
    Settle {
        c: usize,
        cents: i64,
        day: u64,
    },
    Repay {
        c: usize,
        cents: i64,
        day: u64,
    },
    Withdraw {
        c: usize,
        cancelled: bool,
        day: u64,
    },
    Transfer {
        from: usize,
        cents: i64,
        day: u64,
    },
}

/// Day `day` counted from 1 January 2022 (364 is 31 December, later days are in 2023).
fn day_2022(day: u64) -> NaiveDate {
    date("2022-01-01") + Days::new(day)
}

fn op() -> impl Strategy<Value = Op> {
    let w = 0..WIJKEN.len();
    let day = 0..364u64;
    // Commitments early and what follows them later, so that most of a
    // commitment's life is accepted and as-of days fall in the middle of it.
    let early = 0..200u64;
    // Into 2023 too: a commitment's life goes on after its fund's year.
    let late = 100..420u64;
    let cents = prop_oneof![1..=200_000i64, Just(50_000i64)];
    let part = prop_oneof![1..=60_000i64, Just(25_000i64)];
    prop_oneof![
        2 => (w.clone(), 1..=400_000i64, day.clone()).prop_map(|(w, cents, day)| Op::Allocate { w, cents, day }),
        4 => (w.clone(), 0..5usize, cents.clone(), day.clone(), 0..THEMES.len())
            .prop_map(|(w, id, cents, day, theme)| Op::Expense { w, id, cents, day, theme }),
        2 => (0..5usize, prop::option::weighted(0.8, day.clone())).prop_map(|(id, day)| Op::Reverse { id, day }),
        4 => (w.clone(), 0..3usize, cents.clone(), early, 0..THEMES.len())
            .prop_map(|(w, id, cents, day, theme)| Op::Commit { w, id, cents, day, theme }),
        5 => (0..3usize, 0..8usize, part.clone(), late.clone()).prop_map(|(c, id, cents, day)| Op::Pay { c, id, cents, day }),
        2 => (0..3usize, 0..=100_000i64, late.clone()).prop_map(|(c, cents, day)| Op::Settle { c, cents, day }),
        2 => (0..3usize, part, late.clone()).prop_map(|(c, cents, day)| Op::Repay { c, cents, day }),
        1 => (0..3usize, any::<bool>(), late).prop_map(|(c, cancelled, day)| Op::Withdraw { c, cancelled, day }),
        2 => (w, cents, day).prop_map(|(from, cents, day)| Op::Transfer { from, cents, day }),
    ]
}

/// Operations, whether the year is closed at the end, and two days to ask about.
type History = (Vec<Op>, bool, [u64; 2]);

fn history() -> impl Strategy<Value = History> {
    // The asked days start on 3 January (day 2), the day `setup` books its
    // allocations on: every ledger here, the fresh ones too, starts with that
    // setup, so a day before it would compare the original as of then with a
    // fresh ledger that already holds the setup's later bookings (a random
    // run on a fresh clone found day 1 doing exactly that).
    (prop::collection::vec(op(), 5..40), prop::bool::weighted(0.5), [2..364u64, 100..364u64])
}

fn euro(cents: i64) -> Amount {
    Amount::try_from(Decimal::new(cents, 2)).unwrap()
}

fn cid(c: usize) -> CommitmentId {
    CommitmentId::parse(&format!("SUB-{c}")).unwrap()
}

/// The command of `op` and the day it is booked on.
fn command(op: &Op) -> (FundCommand, NaiveDate) {
    match *op {
        Op::Allocate { w, cents, day } => (
            FundCommand::Allocate {
                wijk_id: wijk(WIJKEN[w]),
                amount: euro(cents),
                reason: text("verdeling"),
                booked_on: day_2022(day),
            },
            day_2022(day),
        ),
        Op::Expense { w, id, cents, day, theme } => (
            FundCommand::RecordExpense(ExpenseDetails {
                expense_id: ExpenseId::parse(&format!("e-{id}")).unwrap(),
                wijk_id: wijk(WIJKEN[w]),
                amount: euro(cents),
                initiative: text(&format!("Initiatief {id}")),
                theme: text(THEMES[theme]),
                booked_on: day_2022(day),
                reference: text("factuur"),
            }),
            day_2022(day),
        ),
        Op::Reverse { id, day } => (
            FundCommand::ReverseExpense {
                expense_id: ExpenseId::parse(&format!("e-{id}")).unwrap(),
                reason: text("dubbel geboekt"),
                booked_on: day.map(day_2022),
                // Later than 2022: the default books on 31 December.
                requested_on: date("2026-06-01"),
                post_closing: false,
            },
            day.map_or(date("2022-12-31"), day_2022),
        ),
        Op::Commit { w, id, cents, day, theme } => (
            FundCommand::Commit(CommitmentDetails {
                commitment_id: cid(id),
                wijk_id: wijk(WIJKEN[w]),
                amount: euro(cents),
                initiative: text(&format!("Subsidie {id}")),
                applicant: text("Bewonersgroep"),
                applicant_kind: ApplicantKind::Organisation,
                theme: text(THEMES[theme]),
                decision: Decision { reference: text(&format!("Beschikking {id}")), adopted_on: day_2022(day) },
                grant_rule: text("Subsidieregeling wijkbudgetten"),
                booked_on: day_2022(day),
            }),
            day_2022(day),
        ),
        Op::Pay { c, id, cents, day } => (
            FundCommand::Pay {
                commitment_id: cid(c),
                expense_id: ExpenseId::parse(&format!("p-{id}")).unwrap(),
                amount: euro(cents),
                booked_on: day_2022(day),
                reference: text("betaling"),
            },
            day_2022(day),
        ),
        Op::Settle { c, cents, day } => (
            FundCommand::Settle {
                commitment_id: cid(c),
                settled_amount: Decimal::new(cents, 2),
                decision_reference: text("Vaststelling"),
                booked_on: day_2022(day),
            },
            day_2022(day),
        ),
        Op::Repay { c, cents, day } => (
            FundCommand::Repay {
                commitment_id: cid(c),
                amount: euro(cents),
                booked_on: day_2022(day),
                reference: text("terugbetaling"),
            },
            day_2022(day),
        ),
        Op::Withdraw { c, cancelled, day } => (
            FundCommand::Withdraw {
                commitment_id: cid(c),
                reason: text("gaat niet door"),
                cancelled,
                booked_on: day_2022(day),
            },
            day_2022(day),
        ),
        Op::Transfer { from, cents, day } => (
            FundCommand::Transfer {
                from_wijk: wijk(WIJKEN[from]),
                to_wijk: wijk(WIJKEN[1 - from]),
                amount: euro(cents),
                decision_reference: text("Collegebesluit"),
                reason: text("herverdeling"),
                booked_on: day_2022(day),
            },
            day_2022(day),
        ),
    }
}

/// What a ledger is given: a step of a history that the original ledger stored.
#[derive(Debug, Clone)]
enum Step {
    Fund(FundCommand),
    Close,
}

/// The two wijken and the 2022 fund of 10,000.00, booked on 1 January, with
/// 3,000.00 allocated to each on 3 January.
async fn setup(ledger: &Ledger) {
    for w in WIJKEN {
        ledger.register_wijk(WijkCommand::Register { wijk_id: wijk(w), name: text(w) }, &meta()).await.unwrap();
    }
    let terms = FundTerms {
        fund_id: fund_id(FUND),
        year: Year::new(2022).unwrap(),
        kind: FundKind::Begroting,
        name: text("Wijkbudgetten 2022"),
        amount: euro(1_000_000),
        decision: Decision { reference: text("Begroting 2022"), adopted_on: date("2021-11-11") },
        purpose: text("Initiatieven van inwoners"),
    };
    ledger.fund(&fund_id(FUND), FundCommand::Establish(terms), &meta()).await.unwrap();
    // Money early in the year, so most generated bookings find some.
    for w in WIJKEN {
        let allocate = FundCommand::Allocate {
            wijk_id: wijk(w),
            amount: euro(300_000),
            reason: text("verdeling"),
            booked_on: date("2022-01-03"),
        };
        ledger.fund(&fund_id(FUND), allocate, &meta()).await.unwrap();
    }
}

/// Runs a step; true if it stored something.
async fn run(ledger: &Ledger, step: &Step) -> bool {
    let outcome = match step {
        Step::Fund(command) => ledger.fund(&fund_id(FUND), command.clone(), &meta()).await,
        Step::Close => {
            let decision =
                Decision { reference: text("Raadsbesluit jaarrekening 2022"), adopted_on: date(CLOSE_DECIDED) };
            let carry_over = [wijk(WIJKEN[0])];
            return match ledger.close_year(Year::new(2022).unwrap(), decision, &carry_over, &meta()).await {
                Ok(closed) => closed.iter().any(|c| c.closed_at_position.is_some()),
                Err(err) => panic!("the close failed: {err:?}"),
            };
        }
    };
    match outcome {
        Ok(Outcome::Recorded { .. }) => true,
        Ok(Outcome::Unchanged) | Err(LedgerError::Fund(_)) => false,
        Err(other) => panic!("{step:?}: the store failed: {other:?}"),
    }
}

/// Every as-of answer of `db` for `as_of`, in a form that does not depend on
/// positions, event ids or recording times (which differ between ledgers).
/// `as_of: None` asks the ledger as it is now, through the current-state
/// paths where a question has one.
async fn answers(db: &Db, as_of: Option<NaiveDate>, stale_on: NaiveDate) -> Vec<String> {
    let period = Period { year: None, as_of };
    let mut out = Vec::new();
    out.push(format!("wijken: {:?}", queries::wijk_summaries(db, period).await.unwrap()));
    for w in WIJKEN {
        let mut budget = queries::wijk_budget(db, w, period).await.unwrap().unwrap();
        budget.as_of = None;
        out.push(format!("budget {w}: {budget:?}"));
        let filter = AuditFilter { booked_to: as_of, ..Default::default() };
        let mut trail = queries::audit_trail(db, w, &filter, 0, 1000).await.unwrap();
        assert_eq!(trail.next_after, None, "one page holds every row");
        for row in &mut trail.rows {
            row.position = 0;
            row.event_id.clear();
            row.recorded_at.clear();
            row.correlation_id = None;
            // A reversal names the original's sequence in its fund's stream,
            // which differs between ledgers like a position does.
            if let Some(reference) = &mut row.reference {
                if let Some(at) = reference.find(" event ") {
                    reference.truncate(at);
                }
            }
        }
        out.push(format!("audit trail {w}: {trail:?}"));
    }
    out.push(format!("stale: {:?}", reports::stale_commitments(db, stale_on).await.unwrap()));
    out.push(format!("themes: {:?}", reports::themes_in(db, period).await.unwrap()));
    for fund in [FUND, CARRIED] {
        let mut detail = queries::fund_detail_as_of(db, fund, as_of, 0, 1000).await.unwrap();
        if let Some(detail) = &mut detail {
            assert_eq!(detail.next_after, None, "one page holds every expense");
            for e in &mut detail.expenses {
                e.position = 0;
                e.event_id.clear();
            }
        }
        out.push(format!("fund {fund}: {detail:?}"));
    }
    for year in [2022, 2023] {
        out.push(format!("close inputs {year}: {:?}", reports::close_inputs(db, year, as_of).await.unwrap()));
    }
    out
}

/// (b): every report column that has a total sums to it.
async fn assert_reports_add_up(db: &Db, as_of: Option<NaiveDate>, label: &str) {
    let period = Period { year: None, as_of };
    for year in [None, Some(2021), Some(2022), Some(2023)] {
        for w in reports::themes_in(db, Period { year, as_of }).await.unwrap() {
            let sum =
                |f: fn(&reports::ThemeAmounts) -> queries::Euro| w.themes.iter().map(|t| f(&t.amounts).0).sum::<i64>();
            let columns: [(&str, fn(&reports::ThemeAmounts) -> queries::Euro); 7] = [
                ("granted", |a| a.amount_granted),
                ("committed", |a| a.amount_committed),
                ("paid", |a| a.amount_paid),
                ("spent", |a| a.amount_spent),
                ("settled", |a| a.amount_settled),
                ("recovered", |a| a.amount_recovered),
                ("repaid", |a| a.amount_repaid),
            ];
            for (name, column) in columns {
                assert_eq!(
                    sum(column),
                    column(&w.amounts).0,
                    "{label}: themes {year:?} of {}: {name}: {w:?}",
                    w.wijk_id
                );
            }
        }
    }
    for summary in queries::wijk_summaries(db, period).await.unwrap() {
        let budget = queries::wijk_budget(db, &summary.wijk_id, period).await.unwrap().unwrap();
        let sum = |f: fn(&queries::Totals) -> queries::Euro| budget.funds.iter().map(|l| f(&l.totals).0).sum::<i64>();
        let columns: [(&str, fn(&queries::Totals) -> queries::Euro); 4] = [
            ("allocated", |t| t.amount_allocated),
            ("committed", |t| t.amount_committed),
            ("spent", |t| t.amount_spent),
            ("remaining", |t| t.amount_remaining),
        ];
        for (name, column) in columns {
            assert_eq!(sum(column), column(&budget.totals).0, "{label}: budget of {}: {name}", summary.wijk_id);
        }
        assert_eq!(budget.totals, summary.totals, "{label}: the budget of {} and its summary", summary.wijk_id);
    }
    for fund in queries::funds(db, None).await.unwrap() {
        let Some(detail) = queries::fund_detail_as_of(db, &fund.fund_id, as_of, 0, 1000).await.unwrap() else {
            continue;
        };
        let sum =
            |f: fn(&queries::Totals) -> queries::Euro| detail.allocations.iter().map(|l| f(&l.totals).0).sum::<i64>();
        let f = &detail.fund;
        assert_eq!(sum(|t| t.amount_allocated), f.amount_allocated.0, "{label}: {}: allocated", f.fund_id);
        assert_eq!(sum(|t| t.amount_committed), f.amount_committed.0, "{label}: {}: committed", f.fund_id);
        assert_eq!(sum(|t| t.amount_spent), f.amount_spent.0, "{label}: {}: spent", f.fund_id);
        assert_eq!(
            sum(|t| t.amount_remaining) + f.amount_unallocated.0,
            f.amount_remaining.0,
            "{label}: {}: remaining is the wijken's plus the unallocated",
            f.fund_id
        );
    }
    if as_of.is_none() {
        for year in [2021, 2022] {
            for s in reports::close_statements(db, year).await.unwrap() {
                let sum = |f: fn(&reports::CloseLineView) -> queries::Euro| s.lines.iter().map(|l| f(l).0).sum::<i64>();
                assert_eq!(sum(|l| l.amount_spent), s.amount_spent.0, "{label}: {} spent", s.fund_id);
                assert_eq!(sum(|l| l.amount_committed), s.amount_committed.0, "{label}: {} committed", s.fund_id);
                assert_eq!(sum(|l| l.amount_receivable), s.amount_receivable.0, "{label}: {} receivable", s.fund_id);
                assert_eq!(
                    sum(|l| l.amount_lapsed) + s.unallocated_lapsed.0,
                    s.amount_lapsed.0,
                    "{label}: {} lapsed",
                    s.fund_id
                );
                assert_eq!(sum(|l| l.amount_carried_over), s.amount_carried_over.0, "{label}: {} carried", s.fund_id);
                assert_eq!(s.difference.0, 0, "{label}: {} reconciles", s.fund_id);
            }
        }
    }
}

/// (c): every wijk's available, committed and spent money in every fund, as of `as_of`, is zero or more.
async fn assert_never_negative(db: &Db, as_of: NaiveDate, label: &str) {
    for w in WIJKEN {
        let budget = queries::wijk_budget(db, w, Period { year: None, as_of: Some(as_of) }).await.unwrap().unwrap();
        for line in &budget.funds {
            let t = &line.totals;
            assert!(
                t.amount_remaining.0 >= 0 && t.amount_committed.0 >= 0 && t.amount_spent.0 >= 0,
                "{label}: {w} in {} shows negative money: {t:?}",
                line.fund_id
            );
        }
    }
}

async fn check(history: &History, backend: Backend) {
    let (ops, close, days) = history;
    let original = Harness::new(backend).await;
    setup(&original.ledger).await;
    // The stored steps, each with its booking day.
    let mut stored: Vec<(Step, NaiveDate)> = Vec::new();
    for op in ops {
        let (command, on) = command(op);
        let step = Step::Fund(command);
        if run(&original.ledger, &step).await {
            stored.push((step, on));
        }
    }
    if *close && run(&original.ledger, &Step::Close).await {
        stored.push((Step::Close, date(CLOSE_DECIDED)));
    }
    original.catch_up().await;
    let db = &original.store.db;
    assert_reports_add_up(db, None, &format!("{backend:?} now")).await;

    // (c) No as-of answer shows negative money, on any day asked and on the
    // last day of the year, which the close's postings are dated on.
    for as_of in days.iter().map(|d| day_2022(*d)).chain([date("2022-12-31"), date(AFTER_ALL)]) {
        assert_never_negative(db, as_of, &format!("{backend:?} as of {as_of}; history {history:?}")).await;
    }

    let asked: Vec<NaiveDate> = days.iter().map(|d| day_2022(*d)).chain([date(AFTER_ALL)]).collect();
    for as_of in asked {
        assert_reports_add_up(db, Some(as_of), &format!("{backend:?} as of {as_of}")).await;
        let fresh = Harness::new(backend).await;
        setup(&fresh.ledger).await;
        for (step, on) in stored.iter().filter(|(_, on)| *on <= as_of) {
            assert!(
                run(&fresh.ledger, step).await,
                "{backend:?}: {step:?} (booked {on}) was stored in the original but not in a ledger of the days up to {as_of}"
            );
        }
        fresh.catch_up().await;
        let then = answers(db, Some(as_of), as_of).await;
        let fresh_now = answers(&fresh.store.db, None, as_of).await;
        for (a, b) in then.iter().zip(&fresh_now) {
            assert_eq!(a, b, "{backend:?}: as of {as_of}, the ledger answers (left) unlike a fresh one of the days up to then (right); history {history:?}");
        }
        fresh.store.cleanup().await;
    }
    original.store.cleanup().await;
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 16,
        max_shrink_iters: 100,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn as_of_answers_equal_a_fresh_ledger_of_the_days_up_to_then_on_sqlite(history in history()) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(check(&history, Backend::Sqlite));
    }
}

/// The same generator with a fixed seed, so PostgreSQL sees the same kinds of histories.
#[tokio::test]
async fn as_of_answers_equal_a_fresh_ledger_of_the_days_up_to_then_on_postgres() {
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &[14; 32]);
    let mut runner = TestRunner::new_with_rng(Config::default(), rng);
    let strategy = history();
    for _ in 0..8 {
        let history = strategy.new_tree(&mut runner).unwrap().current();
        check(&history, Backend::Postgres).await;
    }
}

#[tokio::test]
async fn every_report_column_sums_to_its_total_on_the_demo() {
    for backend in BACKENDS {
        let h = Harness::new(backend).await;
        wijkbudget::demo::load(&h.ledger, |_, _| {}).await.expect("the demo loads");
        h.catch_up().await;
        let db = &h.store.db;
        assert_reports_add_up(db, None, &format!("{backend:?} demo")).await;
        for as_of in ["2021-06-30", "2021-12-31", "2022-03-31", "2022-12-31"] {
            assert_reports_add_up(db, Some(date(as_of)), &format!("{backend:?} demo as of {as_of}")).await;
        }
        h.store.cleanup().await;
    }
}
