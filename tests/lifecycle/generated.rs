//! Generated lifecycles keep the books balanced and the read models true.

use super::*;

// ---------------------------------------------------------------------------
// 5. Generated lifecycles keep the books balanced and the read models true
// ---------------------------------------------------------------------------

/// Oost 1221 and Zuid get money at the start; Centrum only through transfers.
const P_WIJKEN: [&str; 3] = ["oost-1221", "zuid", "centrum"];
const P_FUND: &str = "begroting-2022";
/// Commitment ids 0..P_COMMITMENTS are used (the first P_SEEDED made at the
/// start); one more is asked for and never made.
const P_COMMITMENTS: usize = 5;
const P_SEEDED: usize = 3;
/// Expense ids, shared by direct expenses and payments so they sometimes collide.
const P_EXPENSES: usize = 8;
/// Kinds of rm_balances that may never go negative.
const NON_NEGATIVE: [&str; 4] = ["wijk_budget", "committed", "spent", "receivable"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum When {
    Before,
    Inside,
    After,
}

impl When {
    fn day(self) -> NaiveDate {
        match self {
            Self::Before => date("2021-12-15"),
            Self::Inside => date("2022-06-15"),
            Self::After => date("2023-02-01"),
        }
    }
}

#[derive(Debug, Clone)]
enum Op {
    Commit { wijk: usize, id: usize, cents: i64, when: When },
    Pay { id: usize, expense: usize, cents: i64, when: When },
    Settle { id: usize, settled: Decimal, when: When },
    Repay { id: usize, cents: i64, when: When },
    Withdraw { id: usize, cancelled: bool, when: When },
    Transfer { from: usize, to: usize, cents: i64, when: When },
    Expense { wijk: usize, expense: usize, cents: i64, when: When },
    Reverse { expense: usize, post_closing: bool },
    Close { carry_over: Vec<usize> },
}

/// Booking dates: mostly inside the fund's year before the close, mostly
/// after it once the year is closed (when only commitments may still move).
fn when(closed: bool) -> impl Strategy<Value = When> {
    let (inside, after) = if closed { (3, 10) } else { (16, 3) };
    prop_oneof![1 => Just(When::Before), inside => Just(When::Inside), after => Just(When::After)]
}

/// Amounts of commitments, transfers and expenses: round ones make repeats likely.
fn money() -> impl Strategy<Value = i64> {
    prop_oneof![Just(10_000i64), Just(25_000i64), 1_000..=30_000i64]
}

/// Payments are smaller, so that most of them fit a commitment.
fn payment() -> impl Strategy<Value = i64> {
    prop_oneof![Just(5_000i64), Just(10_000i64), 100..=15_000i64]
}

fn settled() -> impl Strategy<Value = Decimal> {
    prop_oneof![
        3 => Just(Decimal::ZERO),
        6 => (0..=10_000i64).prop_map(|c| Decimal::new(c, 2)),
        2 => (10_000..=30_000i64).prop_map(|c| Decimal::new(c, 2)),
        1 => Just(Decimal::new(-100, 2)),
        1 => Just(Decimal::new(1005, 3)),
    ]
}

fn close() -> impl Strategy<Value = Op> {
    proptest::sample::subsequence(vec![0usize, 1, 2], 0..=2).prop_map(|carry_over| Op::Close { carry_over })
}

/// One operation; `closed` says whether it is generated for after the year close.
fn op(closed: bool) -> impl Strategy<Value = Op> {
    let wijk = 0..P_WIJKEN.len();
    // Mostly the seeded commitments, sometimes a generated or an unknown one.
    let id = prop_oneof![3 => 0..P_SEEDED, 1 => 0..=P_COMMITMENTS];
    let new_id = prop_oneof![1 => 0..P_SEEDED, 3 => P_SEEDED..P_COMMITMENTS];
    prop_oneof![
        6 => (wijk.clone(), new_id, money(), when(closed))
            .prop_map(|(wijk, id, cents, when)| Op::Commit { wijk, id, cents, when }),
        6 => (id.clone(), 0..P_EXPENSES, payment(), when(closed))
            .prop_map(|(id, expense, cents, when)| Op::Pay { id, expense, cents, when }),
        4 => (id.clone(), settled(), when(closed)).prop_map(|(id, settled, when)| Op::Settle { id, settled, when }),
        4 => (id.clone(), prop_oneof![100..=2_000i64, Just(5_000i64), money()], when(closed))
            .prop_map(|(id, cents, when)| Op::Repay { id, cents, when }),
        1 => (id, any::<bool>(), when(closed)).prop_map(|(id, cancelled, when)| Op::Withdraw { id, cancelled, when }),
        2 => (wijk.clone(), wijk.clone(), money(), when(closed))
            .prop_map(|(from, to, cents, when)| Op::Transfer { from, to, cents, when }),
        3 => (wijk, 0..P_EXPENSES, money(), when(closed))
            .prop_map(|(wijk, expense, cents, when)| Op::Expense { wijk, expense, cents, when }),
        1 => (0..P_EXPENSES, any::<bool>()).prop_map(|(expense, post_closing)| Op::Reverse { expense, post_closing }),
        // Closing again once closed must change nothing.
        (closed as u32) => close(),
    ]
}

/// A year of operations, usually a close, and operations after it.
fn history() -> impl Strategy<Value = Vec<Op>> {
    (
        prop::collection::vec(op(false), 10..40),
        proptest::option::weighted(0.7, close()),
        prop::collection::vec(op(true), 0..20),
    )
        .prop_map(|(mut ops, close, after)| {
            ops.extend(close);
            ops.extend(after);
            ops
        })
}

fn commitment_id(i: usize) -> CommitmentId {
    CommitmentId::parse(&format!("SUB-{i}")).unwrap()
}

fn expense_id(i: usize) -> ExpenseId {
    ExpenseId::parse(&format!("uitgave-{i}")).unwrap()
}

/// What a step did, as far as the head of the log is concerned.
enum Ran {
    Stored,
    Unchanged,
    Refused(String),
    /// A year close: it may or may not store.
    Closed,
}

async fn run_op(ledger: &Ledger, op: &Op) -> Ran {
    let fund = fund_id(P_FUND);
    let command = match op.clone() {
        Op::Commit { wijk: w, id, cents, when } => FundCommand::Commit(CommitmentDetails {
            commitment_id: commitment_id(id),
            wijk_id: wijk(P_WIJKEN[w]),
            amount: amount_cents(cents),
            initiative: text(&format!("Initiatief {id}")),
            applicant: text("Bewonersgroep"),
            applicant_kind: ApplicantKind::Organisation,
            theme: text(["groen", "spelen"][id % 2]),
            decision: Decision { reference: text(&format!("Subsidiebeschikking {id}")), adopted_on: when.day() },
            grant_rule: text("Subsidieregeling wijkbudgetten"),
            booked_on: when.day(),
        }),
        Op::Pay { id, expense, cents, when } => FundCommand::Pay {
            commitment_id: commitment_id(id),
            expense_id: expense_id(expense),
            amount: amount_cents(cents),
            booked_on: when.day(),
            reference: text("betaalopdracht"),
        },
        Op::Settle { id, settled, when } => FundCommand::Settle {
            commitment_id: commitment_id(id),
            settled_amount: settled,
            decision_reference: text("Vaststelling"),
            booked_on: when.day(),
        },
        Op::Repay { id, cents, when } => FundCommand::Repay {
            commitment_id: commitment_id(id),
            amount: amount_cents(cents),
            booked_on: when.day(),
            reference: text("terugbetaling"),
        },
        Op::Withdraw { id, cancelled, when } => FundCommand::Withdraw {
            commitment_id: commitment_id(id),
            reason: text("gaat niet door"),
            cancelled,
            booked_on: when.day(),
        },
        Op::Transfer { from, to, cents, when } => FundCommand::Transfer {
            from_wijk: wijk(P_WIJKEN[from]),
            to_wijk: wijk(P_WIJKEN[to]),
            amount: amount_cents(cents),
            decision_reference: text("Collegebesluit"),
            reason: text("herverdeling"),
            booked_on: when.day(),
        },
        Op::Expense { wijk: w, expense, cents, when } => FundCommand::RecordExpense(ExpenseDetails {
            expense_id: expense_id(expense),
            wijk_id: wijk(P_WIJKEN[w]),
            amount: amount_cents(cents),
            initiative: text("Burendag"),
            theme: text("sociale cohesie"),
            booked_on: when.day(),
            reference: text("factuur"),
        }),
        Op::Reverse { expense, post_closing } => FundCommand::ReverseExpense {
            booked_on: None,
            expense_id: expense_id(expense),
            reason: text("dubbel geboekt"),
            requested_on: date("2022-10-01"),
            post_closing,
        },
        Op::Close { carry_over } => {
            let decision =
                Decision { reference: text("Raadsbesluit jaarrekening 2022"), adopted_on: date("2023-06-29") };
            let carry: Vec<WijkId> = carry_over.iter().map(|&w| wijk(P_WIJKEN[w])).collect();
            return match ledger.close_year(Year::new(2022).unwrap(), decision, &carry, &meta()).await {
                Ok(_) => Ran::Closed,
                Err(err @ (LedgerError::Fund(_) | LedgerError::Refused(_))) => Ran::Refused(format!("{err:?}")),
                Err(other) => panic!("{op:?}: the store failed: {other:?}"),
            };
        }
    };
    match ledger.fund(&fund, command, &meta()).await {
        Ok(Outcome::Recorded { .. }) => Ran::Stored,
        Ok(Outcome::Unchanged) => Ran::Unchanged,
        Err(err @ (LedgerError::Fund(_) | LedgerError::Refused(_))) => Ran::Refused(format!("{err:?}")),
        Err(other) => panic!("{op:?}: the store failed: {other:?}"),
    }
}

/// Every balance kind of a budget line, in cents, as rm_balances names them.
fn line_balances(line: &BudgetLine) -> [(&'static str, i64); 8] {
    [
        ("allocated", cents(line.amount_allocated)),
        ("transferred", cents(line.amount_transferred)),
        ("wijk_budget", cents(line.amount_available)),
        ("committed", cents(line.amount_committed)),
        ("spent", cents(line.amount_spent)),
        ("receivable", cents(line.amount_receivable)),
        ("lapsed", cents(line.amount_lapsed)),
        ("carried_over", cents(line.amount_carried_over)),
    ]
}

/// wijk, fund, status, amount, paid, settled and owed of one rm_commitments row.
type CommitmentRow = (String, String, String, i64, i64, Option<i64>, i64);

/// The books balance, no balance that must stay >= 0 went negative, and the
/// read model's balances are exactly the folded funds' budget lines.
async fn check_books(h: &Harness, step: &str) {
    let db = &h.store.db;
    let (total, unbalanced, balances, funds, commitments) = on_db!(db, pool => {
        let total: i64 = sqlx::query_scalar("SELECT CAST(COALESCE(SUM(amount_cents), 0) AS BIGINT) FROM rm_postings")
            .fetch_one(pool)
            .await
            .unwrap();
        let unbalanced: Vec<(i64, i64)> = sqlx::query(
            "SELECT position, CAST(SUM(amount_cents) AS BIGINT) AS total FROM rm_postings GROUP BY position \
             HAVING SUM(amount_cents) <> 0 ORDER BY position",
        )
        .fetch_all(pool)
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get("position"), r.get("total")))
        .collect();
        let balances: Vec<(String, String, String, i64)> = sqlx::query("SELECT wijk_id, fund_id, kind, cents FROM rm_balances")
            .fetch_all(pool)
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get("wijk_id"), r.get("fund_id"), r.get("kind"), r.get("cents")))
            .collect();
        let funds: Vec<String> = sqlx::query_scalar("SELECT fund_id FROM rm_funds ORDER BY fund_id").fetch_all(pool).await.unwrap();
        let commitments: Vec<CommitmentRow> = sqlx::query(
            "SELECT wijk_id, fund_id, status, amount_cents, paid_cents, settled_cents, owed_cents FROM rm_commitments",
        )
        .fetch_all(pool)
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get("wijk_id"), r.get("fund_id"), r.get("status"), r.get("amount_cents"), r.get("paid_cents"), r.get("settled_cents"), r.get("owed_cents")))
        .collect();
        (total, unbalanced, balances, funds, commitments)
    });
    assert_eq!(total, 0, "{step}: the trial balance of all postings");
    assert!(unbalanced.is_empty(), "{step}: events whose postings do not sum to zero: {unbalanced:?}");
    let negative: Vec<_> =
        balances.iter().filter(|(_, _, kind, c)| NON_NEGATIVE.contains(&kind.as_str()) && *c < 0).collect();
    assert!(negative.is_empty(), "{step}: negative balances in the read model: {negative:?}");

    let read: BTreeMap<(String, String, String), i64> =
        balances.into_iter().filter(|b| b.3 != 0).map(|(w, f, k, c)| ((w, f, k), c)).collect();
    // The commitments read model agrees with the balances: what is committed is
    // what open and settled commitments may still pay; what is receivable is owed.
    let mut from_commitments: BTreeMap<(String, String, String), i64> = BTreeMap::new();
    for (w, f, status, amount, paid, settled, owed) in &commitments {
        let open = match (status.as_str(), settled) {
            ("open", _) => amount - paid,
            ("settled", Some(settled)) => (settled - paid).max(0),
            ("withdrawn" | "cancelled", _) => 0,
            other => panic!("{step}: commitment with status {other:?}"),
        };
        assert!(
            *paid >= 0 && *owed >= 0 && open >= 0,
            "{step}: commitment row {w} {f} {status} {amount} {paid} {settled:?} {owed}"
        );
        *from_commitments.entry((w.clone(), f.clone(), "committed".into())).or_default() += open;
        *from_commitments.entry((w.clone(), f.clone(), "receivable".into())).or_default() += owed;
    }
    from_commitments.retain(|_, c| *c != 0);
    let of_commitments: BTreeMap<_, _> = read
        .iter()
        .filter(|((_, _, k), _)| k == "committed" || k == "receivable")
        .map(|(k, c)| (k.clone(), *c))
        .collect();
    assert_eq!(of_commitments, from_commitments, "{step}: rm_balances (left) and rm_commitments (right) disagree");

    let mut folded: BTreeMap<(String, String, String), i64> = BTreeMap::new();
    for fund in &funds {
        let state = h.ledger.load_fund(&fund_id(fund)).await.unwrap();
        for (w, line) in state.lines() {
            // The domain's own identity: available is what is left of the line.
            let rest = line.amount_allocated + line.amount_transferred
                - line.amount_spent
                - line.amount_committed
                - line.amount_receivable
                - line.amount_lapsed
                - line.amount_carried_over;
            assert_eq!(rest, line.amount_available, "{step}: {fund}/{w}: the fund's line does not add up: {line:?}");
            for (kind, c) in line_balances(line) {
                if c != 0 {
                    folded.insert((w.to_string(), fund.clone(), kind.to_string()), c);
                }
            }
        }
    }
    let differing: Vec<String> = read
        .keys()
        .chain(folded.keys())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .filter(|k| read.get(*k) != folded.get(*k))
        .map(|k| format!("{k:?}: read model {:?}, fund {:?}", read.get(k), folded.get(k)))
        .collect();
    assert!(differing.is_empty(), "{step}: read model and folded funds differ:\n{}", differing.join("\n"));
}

async fn check_lifecycle(ops: &[Op]) {
    let h = Harness::new(Backend::Sqlite).await;
    for w in P_WIJKEN {
        register(&h.ledger, w).await;
    }
    let fund = fund_id(P_FUND);
    h.ledger.fund(&fund, FundCommand::Establish(terms_2022(P_FUND, amount_cents(200_000))), &meta()).await.unwrap();
    h.ledger.fund(&fund, allocate(P_WIJKEN[0], amount_cents(100_000)), &meta()).await.unwrap();
    h.ledger.fund(&fund, allocate(P_WIJKEN[1], amount_cents(60_000)), &meta()).await.unwrap();
    // A few commitments to start from, so that payments, settlements and
    // repayments mostly find one.
    for (id, w, c) in [(0, 0, 30_000), (1, 1, 20_000), (2, 0, 15_000)].into_iter().take(P_SEEDED) {
        let op = Op::Commit { wijk: w, id, cents: c, when: When::Inside };
        assert!(matches!(run_op(&h.ledger, &op).await, Ran::Stored), "seeding {op:?}");
    }
    // Partly paid, so that a settlement below the payments claims money back.
    for (id, c) in [(0, 20_000), (1, 5_000)] {
        let op = Op::Pay { id, expense: P_EXPENSES + id, cents: c, when: When::Inside };
        assert!(matches!(run_op(&h.ledger, &op).await, Ran::Stored), "seeding {op:?}");
    }
    h.catch_up().await;
    check_books(&h, "after setup").await;

    for (i, op) in ops.iter().enumerate() {
        let was_closed = h.ledger.load_fund(&fund).await.unwrap().is_closed();
        let before = h.head().await;
        let ran = run_op(&h.ledger, op).await;
        let after = h.head().await;
        let step = format!("step {i} {op:?}");
        match &ran {
            Ran::Stored => assert!(after > before, "{step}: recorded but the head did not move"),
            Ran::Unchanged => assert_eq!(after, before, "{step}: unchanged but stored events"),
            Ran::Refused(why) => assert_eq!(after, before, "{step}: refused ({why}) but stored events"),
            Ran::Closed if was_closed => assert_eq!(after, before, "{step}: closing a closed year stored events"),
            Ran::Closed => assert!(h.ledger.load_fund(&fund).await.unwrap().is_closed(), "{step}: the fund is closed"),
        }
        h.catch_up().await;
        check_books(&h, &step).await;
    }
    h.store.cleanup().await;
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 16,
        max_shrink_iters: 100,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn generated_lifecycles_keep_the_books_balanced_and_the_read_models_equal_to_the_funds(ops in history()) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(check_lifecycle(&ops));
    }
}
