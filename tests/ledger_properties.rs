//! Properties of the whole ledger over generated command histories: random
//! sequences of registrations, establishments, allocations, expenses and
//! reversals (including every kind of refusal) go through `Ledger` and the
//! projector, and afterwards
//!
//! (a) no read-model budget line has spent more than was allocated;
//! (b) the postings balance, per event and in total (the trial balance);
//! (c) the read models equal the fold of each fund's stream;
//! (d) a refused or unchanged command stored nothing;
//!
//! and every command's result is what a plain in-memory model of the rules
//! predicts. The generated histories run on SQLite (fast); a fixed-seed
//! sample of the same generator also runs on PostgreSQL.

mod common;

use std::collections::BTreeMap;

use chrono::NaiveDate;
use common::{Backend, TestStore};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use rust_decimal::Decimal;
use sqlx::Row;
use wijkbudget::domain::fund::{Decision, ExpenseDetails, FundCommand, FundKind, FundTerms};
use wijkbudget::domain::ids::{ExpenseId, FundId, Text, WijkId, Year};
use wijkbudget::domain::money::{euro_from_cents, Amount};
use wijkbudget::domain::wijk::WijkCommand;
use wijkbudget::ledger::{Actor, CommandMeta, Ledger, LedgerError, Outcome};
use wijkbudget::on_db;
use wijkbudget::projections::{self, queries, Projector};
use wijkbudget::store::repository::{head, LedgerRepository};
use wijkbudget::store::Db;

/// Wijken 0 and 1 are registered before the history starts, wijk 2 by a
/// command in it, wijk 3 never.
const WIJKEN: [&str; 4] = ["oost-1223", "west-7", "noord-3", "zuid-9"];
const FUNDS: [&str; 2] = ["A21-182", "begroting-2022"];
/// Expense ids 0..EXPENSE_IDS are used; reversals also ask for one more that never is.
const EXPENSE_IDS: usize = 6;

#[derive(Debug, Clone)]
enum Op {
    RegisterThirdWijk,
    Establish { fund: usize, cents: i64 },
    Allocate { fund: usize, wijk: usize, cents: i64, in_year: bool },
    Expense { fund: usize, wijk: usize, id: usize, cents: i64, in_year: bool },
    Reverse { fund: usize, id: usize, requested_on: &'static str },
}

/// Fund amounts: two, so a repeated establishment is sometimes identical
/// (unchanged) and sometimes not (refused).
fn fund_cents() -> impl Strategy<Value = i64> {
    prop_oneof![Just(500_000i64), Just(800_000i64)]
}

fn op() -> impl Strategy<Value = Op> {
    let fund = 0..FUNDS.len();
    let wijk = prop_oneof![6 => 0..3usize, 1 => Just(3usize)];
    let in_year = prop::bool::weighted(0.93);
    prop_oneof![
        1 => Just(Op::RegisterThirdWijk),
        1 => (fund.clone(), fund_cents()).prop_map(|(fund, cents)| Op::Establish { fund, cents }),
        4 => (fund.clone(), wijk.clone(), 1..=300_000i64, in_year.clone())
            .prop_map(|(fund, wijk, cents, in_year)| Op::Allocate { fund, wijk, cents, in_year }),
        // A few round amounts make exact repeats (idempotent retries) likely.
        6 => (
            fund.clone(),
            wijk,
            0..EXPENSE_IDS,
            prop_oneof![Just(2_500i64), Just(10_000i64), 1..=150_000i64],
            in_year,
        )
            .prop_map(|(fund, wijk, id, cents, in_year)| Op::Expense { fund, wijk, id, cents, in_year }),
        3 => (fund, 0..=EXPENSE_IDS, prop_oneof![Just("2021-12-01"), Just("2022-09-01"), Just("2023-03-01")])
            .prop_map(|(fund, id, requested_on)| Op::Reverse { fund, id, requested_on }),
    ]
}

/// Usually both funds are established first (a history without them is
/// mostly refusals); then at most 45 random commands, so no fund gets near
/// the 100 events at which `Ledger` snapshots it (see
/// `a_fund_past_its_hundredth_event_...` in tests/ledger/snapshots.rs).
fn history() -> impl Strategy<Value = Vec<Op>> {
    let establish = |fund| fund_cents().prop_map(move |cents| Op::Establish { fund, cents });
    (
        prop::option::weighted(0.9, establish(0)),
        prop::option::weighted(0.9, establish(1)),
        prop::collection::vec(op(), 1..46),
    )
        .prop_map(|(first, second, ops)| first.into_iter().chain(second).chain(ops).collect())
}

// --- The commands an `Op` stands for ------------------------------------------

fn text(s: &str) -> Text {
    Text::parse(s).unwrap()
}
fn wijk_id(i: usize) -> WijkId {
    WijkId::parse(WIJKEN[i]).unwrap()
}
fn fund_id(i: usize) -> FundId {
    FundId::parse(FUNDS[i]).unwrap()
}
fn amount(cents: i64) -> Amount {
    Amount::try_from(Decimal::new(cents, 2)).unwrap()
}
fn date(s: &str) -> NaiveDate {
    s.parse().unwrap()
}
fn booked_on(in_year: bool) -> NaiveDate {
    date(if in_year { "2022-06-01" } else { "2023-01-02" })
}
fn meta() -> CommandMeta {
    CommandMeta::new(Actor { name: "property".into(), role: "finance".into() })
}

fn terms(fund: usize, cents: i64) -> FundTerms {
    FundTerms {
        fund_id: fund_id(fund),
        year: Year::new(2022).unwrap(),
        kind: if fund == 0 { FundKind::Amendement } else { FundKind::Begroting },
        name: text(&format!("Fonds {}", FUNDS[fund])),
        amount: amount(cents),
        decision: Decision { reference: text(FUNDS[fund]), adopted_on: date("2021-11-11") },
        purpose: text("Sociale cohesie"),
    }
}

async fn execute(ledger: &Ledger, op: &Op) -> Result<Outcome, LedgerError> {
    let command = match op {
        Op::RegisterThirdWijk => {
            let command = WijkCommand::Register { wijk_id: wijk_id(2), name: text("Noord 3") };
            return ledger.register_wijk(command, &meta()).await;
        }
        Op::Establish { fund, cents } => FundCommand::Establish(terms(*fund, *cents)),
        Op::Allocate { wijk, cents, in_year, .. } => FundCommand::Allocate {
            wijk_id: wijk_id(*wijk),
            amount: amount(*cents),
            reason: text("verdeling"),
            booked_on: booked_on(*in_year),
        },
        Op::Expense { wijk, id, cents, in_year, .. } => FundCommand::RecordExpense(ExpenseDetails {
            expense_id: ExpenseId::parse(&format!("exp-{id}")).unwrap(),
            wijk_id: wijk_id(*wijk),
            amount: amount(*cents),
            initiative: text("Buurtinitiatief"),
            theme: text("groen"),
            booked_on: booked_on(*in_year),
            reference: text(&format!("factuur {id}")),
        }),
        Op::Reverse { id, requested_on, .. } => FundCommand::ReverseExpense {
            booked_on: None,
            expense_id: ExpenseId::parse(&format!("exp-{id}")).unwrap(),
            reason: text("correctie"),
            requested_on: date(requested_on),
            post_closing: false,
        },
    };
    let (Op::Establish { fund, .. } | Op::Allocate { fund, .. } | Op::Expense { fund, .. } | Op::Reverse { fund, .. }) =
        op
    else {
        unreachable!("registration returned above")
    };
    ledger.fund(&fund_id(*fund), command, &meta()).await
}

/// The variant of a command's result: `Recorded`, `Unchanged`, `Overspend`, ...
fn outcome_name(result: &Result<Outcome, LedgerError>) -> String {
    let debug = match result {
        Ok(outcome) => format!("{outcome:?}"),
        Err(LedgerError::Fund(err)) => format!("{err:?}"),
        Err(LedgerError::Wijk(err)) => format!("{err:?}"),
        Err(LedgerError::Refused(err)) => format!("{err:?}"),
        Err(err) => format!("{err:?}"),
    };
    debug.split([' ', '(', '{']).next().unwrap().to_string()
}

// --- The model: the rules, in memory, in cents ---------------------------------

#[derive(Debug, Clone, PartialEq)]
struct ModelExpense {
    wijk: usize,
    cents: i64,
    in_year: bool,
    reversed: bool,
}

#[derive(Debug, Clone, Default)]
struct ModelFund {
    cents: i64,
    allocated: i64,
    /// wijk -> (allocated, spent)
    lines: BTreeMap<usize, (i64, i64)>,
    /// wijk -> money given back by reversals booked after 2022-06-01, the day
    /// every expense is booked: an expense on that day cannot use it yet.
    returned_later: BTreeMap<usize, i64>,
    expenses: BTreeMap<usize, ModelExpense>,
}

#[derive(Debug, Default)]
struct Model {
    third_registered: bool,
    funds: [Option<ModelFund>; 2],
    /// expense id -> the fund that claimed it
    claims: BTreeMap<usize, usize>,
}

impl Model {
    /// Decides `op` as the ledger should, applies it, and names the outcome.
    fn decide(&mut self, op: &Op) -> &'static str {
        let registered = |wijk: usize, third: bool| wijk < 2 || (wijk == 2 && third);
        match *op {
            Op::RegisterThirdWijk => {
                if self.third_registered {
                    return "Unchanged";
                }
                self.third_registered = true;
                "Recorded"
            }
            Op::Establish { fund, cents } => match &self.funds[fund] {
                Some(existing) if existing.cents == cents => "Unchanged",
                Some(_) => "AlreadyEstablished",
                None => {
                    self.funds[fund] = Some(ModelFund { cents, ..Default::default() });
                    "Recorded"
                }
            },
            Op::Allocate { fund, wijk, cents, in_year } => {
                let third = self.third_registered;
                let Some(f) = self.funds[fund].as_mut() else { return "UnknownFund" };
                if !in_year {
                    return "OutsideFundYear";
                }
                if !registered(wijk, third) {
                    return "UnknownWijk";
                }
                if cents > f.cents - f.allocated {
                    return "FundExhausted";
                }
                f.allocated += cents;
                f.lines.entry(wijk).or_default().0 += cents;
                "Recorded"
            }
            Op::Expense { fund, wijk, id, cents, in_year } => {
                let third = self.third_registered;
                let Some(f) = self.funds[fund].as_mut() else { return "UnknownFund" };
                // Expense ids are unique across funds.
                if self.claims.get(&id).is_some_and(|owner| *owner != fund) {
                    return "ExpenseIdUsedElsewhere";
                }
                if let Some(existing) = f.expenses.get(&id) {
                    let same = existing.wijk == wijk && existing.cents == cents && existing.in_year == in_year;
                    return if same { "Unchanged" } else { "ExpenseIdTaken" };
                }
                if !in_year {
                    return "OutsideFundYear";
                }
                // Only a registered wijk can have a line, so "no line and not
                // registered" is just "not registered".
                if !registered(wijk, third) {
                    return "UnknownWijk";
                }
                let (allocated, spent) = f.lines.get(&wijk).copied().unwrap_or_default();
                let returned_later = f.returned_later.get(&wijk).copied().unwrap_or_default();
                if cents > allocated - spent - returned_later {
                    return "Overspend";
                }
                self.claims.insert(id, fund);
                f.lines.entry(wijk).or_default().1 += cents;
                f.expenses.insert(id, ModelExpense { wijk, cents, in_year, reversed: false });
                "Recorded"
            }
            Op::Reverse { fund, id, requested_on } => {
                let Some(f) = self.funds[fund].as_mut() else { return "UnknownFund" };
                let Some(expense) = f.expenses.get_mut(&id) else { return "UnknownExpense" };
                if expense.reversed {
                    return "AlreadyReversed";
                }
                expense.reversed = true;
                f.lines.entry(expense.wijk).or_default().1 -= expense.cents;
                // A reversal is booked on the day asked, but never before the
                // expense (2022-06-01) nor after the fund's year.
                if requested_on > "2022-06-01" {
                    *f.returned_later.entry(expense.wijk).or_default() += expense.cents;
                }
                "Recorded"
            }
        }
    }
}

// --- The check -----------------------------------------------------------------

async fn scalar(db: &Db, sql: &str) -> i64 {
    on_db!(db, pool => sqlx::query_scalar::<_, i64>(sql).fetch_one(pool).await.unwrap())
}

async fn log_head(db: &Db) -> i64 {
    head(db).await.unwrap().0
}

/// Runs one history on a fresh store and checks every property; panics on the first violation.
async fn check(history: &[Op], backend: Backend) {
    let store = TestStore::new(backend).await;
    let db = store.db.clone();
    let repo = LedgerRepository::new(db.clone());
    let projector = Projector::new(db.clone(), repo.appended());
    let ledger = Ledger::new(repo, projector.subscribe());
    for (i, name) in WIJKEN.iter().enumerate().take(2) {
        ledger.register_wijk(WijkCommand::Register { wijk_id: wijk_id(i), name: text(name) }, &meta()).await.unwrap();
    }

    let mut model = Model::default();
    for (step, op) in history.iter().enumerate() {
        let before = log_head(&db).await;
        let result = execute(&ledger, op).await;
        let after = log_head(&db).await;
        let expected = model.decide(op);
        assert_eq!(outcome_name(&result), expected, "step {step}: {op:?} gave {result:?}");
        match result {
            // (d) a command that failed, or asked for what was already true, stored nothing.
            Err(_) | Ok(Outcome::Unchanged) => assert_eq!(after, before, "step {step}: {op:?} changed the log"),
            Ok(Outcome::Recorded { first_position, last_position }) => {
                assert_eq!((first_position, last_position), (before + 1, after), "step {step}: {op:?}");
            }
        }
        projector.catch_up(|_| {}).await.unwrap();
        // (a) no budget line is ever overspent.
        let overspent = scalar(
            &db,
            "SELECT COUNT(*) FROM rm_balances WHERE kind IN ('wijk_budget', 'committed', 'spent', 'receivable') AND cents < 0",
        )
        .await;
        assert_eq!(overspent, 0, "step {step}: {op:?} left a budget line overspent");
    }

    let (checkpoint, head) = projections::status(&db).await.unwrap();
    assert_eq!(checkpoint, head, "the projector is at the head");

    // (b) the trial balance: all postings sum to zero, and so does each event's.
    let total = scalar(&db, "SELECT CAST(COALESCE(SUM(amount_cents), 0) AS BIGINT) FROM rm_postings").await;
    assert_eq!(total, 0, "the trial balance");
    let unbalanced = scalar(
        &db,
        "SELECT COUNT(*) FROM (SELECT position FROM rm_postings GROUP BY position HAVING SUM(amount_cents) <> 0) x",
    )
    .await;
    assert_eq!(unbalanced, 0, "every event's postings balance");
    let fund_events = scalar(&db, "SELECT COUNT(*) FROM events WHERE aggregate_type = 'fund'").await;
    assert_eq!(scalar(&db, "SELECT COUNT(*) FROM rm_postings").await, 2 * fund_events, "two postings per fund event");

    // (c) the read models equal the fold of the log, and both equal the model.
    for (f, name) in FUNDS.iter().enumerate() {
        let folded = ledger.load_fund(&fund_id(f)).await.unwrap();
        let rows: BTreeMap<String, (i64, i64)> = on_db!(&db, pool => {
            sqlx::query(
                "SELECT wijk_id, CAST(SUM(CASE WHEN kind = 'allocated' THEN cents ELSE 0 END) AS BIGINT) AS a, \
                 CAST(SUM(CASE WHEN kind = 'spent' THEN cents ELSE 0 END) AS BIGINT) AS s \
                 FROM rm_balances WHERE fund_id = $1 GROUP BY wijk_id",
            )
            .bind(*name)
            .fetch_all(pool)
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get::<String, _>("wijk_id"), (r.get::<i64, _>("a"), r.get::<i64, _>("s"))))
            .collect()
        });
        let folded_lines: BTreeMap<String, (Decimal, Decimal)> =
            folded.lines().map(|(w, l)| (w.to_string(), (l.amount_allocated, l.amount_spent))).collect();
        let projected_lines: BTreeMap<String, (Decimal, Decimal)> =
            rows.iter().map(|(w, (a, s))| (w.clone(), (euro_from_cents(*a), euro_from_cents(*s)))).collect();
        assert_eq!(projected_lines, folded_lines, "{name}: read-model budget lines vs the fold of its stream");
        for (w, wijk) in WIJKEN.iter().enumerate() {
            let line = folded.line(&wijk_id(w));
            let (a, s) = rows.get(*wijk).copied().unwrap_or_default();
            assert_eq!(
                (line.amount_allocated, line.amount_spent),
                (euro_from_cents(a), euro_from_cents(s)),
                "{name}/{wijk}"
            );
        }
        let modelled: BTreeMap<String, (i64, i64)> = model.funds[f]
            .as_ref()
            .map(|m| m.lines.iter().map(|(w, l)| (WIJKEN[*w].to_string(), *l)).collect())
            .unwrap_or_default();
        assert_eq!(rows, modelled, "{name}: read-model budget lines vs the model");

        let detail = queries::fund_detail(&db, name, 0, 1000).await.unwrap();
        match (&model.funds[f], detail) {
            (Some(m), Some(detail)) => {
                assert_eq!(euro_from_cents(detail.fund.amount_unallocated.0), folded.amount_unallocated(), "{name}");
                assert_eq!(detail.fund.amount_unallocated.0, m.cents - m.allocated, "{name}");
                let expenses: BTreeMap<String, (i64, bool)> =
                    detail.expenses.iter().map(|e| (e.expense_id.clone(), (e.amount.0, e.reversed))).collect();
                let modelled: BTreeMap<String, (i64, bool)> =
                    m.expenses.iter().map(|(id, e)| (format!("exp-{id}"), (e.cents, e.reversed))).collect();
                assert_eq!(expenses, modelled, "{name}: expenses and their reversal marks");
            }
            (None, None) => assert!(folded.terms().is_none(), "{name}"),
            (m, d) => panic!("{name}: established in the model: {}, in the read model: {}", m.is_some(), d.is_some()),
        }
    }
    store.cleanup().await;
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 24,
        max_shrink_iters: 200,
        // Keep failures in the report, not in a file next to this one.
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn generated_histories_keep_the_ledger_balanced_and_the_read_models_true_on_sqlite(history in history()) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(check(&history, Backend::Sqlite));
    }
}

/// The same generator with a fixed seed, so PostgreSQL sees the same kinds of histories.
fn fixed_histories(count: usize) -> Vec<Vec<Op>> {
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &[42; 32]);
    let mut runner = TestRunner::new_with_rng(Config::default(), rng);
    let strategy = history();
    (0..count).map(|_| strategy.new_tree(&mut runner).unwrap().current()).collect()
}

#[tokio::test]
async fn generated_histories_keep_the_ledger_balanced_and_the_read_models_true_on_postgres() {
    for history in fixed_histories(6) {
        check(&history, Backend::Postgres).await;
    }
}
