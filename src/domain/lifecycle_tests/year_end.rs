//! Money between wijken and across years: transfers, closing the year, the
//! carry-over fund, and the double-entry invariants over a long scenario.

use super::*;

// ---------------------------------------------------------------------------
// Transfers between wijken
// ---------------------------------------------------------------------------

#[test]
fn money_is_transferred_between_wijken() {
    fund()
        .given(with_commitment())
        .when(transfer("oost-1223", "centrum", "4000", "2022-05-01"))
        .then_expect_events(vec![transferred("oost-1223", "centrum", "4000", "2022-05-01")]);
    let mut events = with_commitment();
    events.push(transferred("oost-1223", "centrum", "4000", "2022-05-01"));
    let f = fold(&events);
    let oost = f.line(&wijk("oost-1223"));
    let centrum = f.line(&wijk("centrum"));
    assert_eq!(oost.amount_available, dec("3000"));
    assert_eq!(oost.amount_transferred, dec("-4000"));
    assert_eq!(centrum.amount_available, dec("4000"));
    assert_eq!(centrum.amount_transferred, dec("4000"));
}

#[test]
fn the_receiving_wijk_can_spend_transferred_money() {
    let mut given = oost_has_10000();
    given.push(transferred("oost-1223", "centrum", "4000", "2022-05-01"));
    let mut kruisdam = wegaplein("kruisdam", "4000");
    kruisdam.wijk_id = wijk("centrum");
    fund()
        .given(given)
        .when(FundCommand::RecordExpense(kruisdam.clone()))
        .then_expect_events(vec![FundEvent::ExpenseRecorded(kruisdam)]);
}

#[test]
fn a_transfer_of_more_than_the_source_has_available_is_refused() {
    fund()
        .given(with_commitment())
        .when(transfer("oost-1223", "centrum", "7000.01", "2022-05-01"))
        .then_expect_error_message(
            "wijk oost-1223 has 7000.00 available in fund A21-182, so 7000.01 cannot be transferred",
        );
}

#[test]
fn a_transfer_to_the_same_wijk_is_refused() {
    fund()
        .given(oost_has_10000())
        .when(transfer("oost-1223", "oost-1223", "1", "2022-05-01"))
        .then_expect_error_message("a transfer needs two different wijken");
}

#[test]
fn a_transfer_from_a_wijk_without_money_in_the_fund_is_refused() {
    fund()
        .given(oost_has_10000())
        .when(transfer("centrum", "oost-1223", "1", "2022-05-01"))
        .then_expect_error_message("wijk centrum is not among the wijken with money in this fund");
}

#[test]
fn a_transfer_to_an_unregistered_wijk_is_refused() {
    fund()
        .given(oost_has_10000())
        .when(transfer("oost-1223", "atlantis", "1", "2022-05-01"))
        .then_expect_error_message("wijk atlantis is not registered; register it first with POST /api/v1/wijken");
}

#[test]
fn a_transfer_booked_outside_the_fund_year_is_refused() {
    fund().given(oost_has_10000()).when(transfer("oost-1223", "centrum", "1", "2023-01-05")).then_expect_error_message(
        "booking date 2023-01-05 is outside fund A21-182's year 2022; book it within 2022 or use a fund of that year",
    );
}

// ---------------------------------------------------------------------------
// Closing the year
// ---------------------------------------------------------------------------

/// oost-1223: 10000, sv-1 of 3000 with 1000 paid, a direct expense of 500.
/// centrum: 5000, a direct expense of 1000. 35000 never allocated.
fn before_closing() -> Vec<FundEvent> {
    let mut kruisdam = wegaplein("kruisdam", "1000");
    kruisdam.wijk_id = wijk("centrum");
    let mut events = with_partial_payment();
    events.push(allocated("centrum", "5000"));
    events.push(FundEvent::ExpenseRecorded(wegaplein("wegaplein", "500")));
    events.push(FundEvent::ExpenseRecorded(kruisdam));
    events
}

#[test]
fn closing_carries_over_the_chosen_wijken_and_lapses_the_rest() {
    fund().given(before_closing()).when(close(&["oost-1223"], Some("A21-182-overheveling"))).then_expect_events(vec![
        closed(
            vec![close_line("centrum", "4000", "0", "0"), close_line("oost-1223", "0", "6500", "2000")],
            "35000",
            Some("A21-182-overheveling"),
        ),
    ]);
}

#[test]
fn closing_without_carry_over_lapses_all_available_money() {
    fund().given(before_closing()).when(close(&[], None)).then_expect_events(vec![closed(
        vec![close_line("centrum", "4000", "0", "0"), close_line("oost-1223", "6500", "0", "2000")],
        "35000",
        None,
    )]);
}

#[test]
fn after_closing_available_money_is_gone_and_open_commitments_stay() {
    let mut events = before_closing();
    events.push(closed(
        vec![close_line("centrum", "4000", "0", "0"), close_line("oost-1223", "0", "6500", "2000")],
        "35000",
        Some("A21-182-overheveling"),
    ));
    let f = fold(&events);
    assert!(f.is_closed());
    assert_eq!(f.amount_unallocated(), dec("0"));
    let oost = f.line(&wijk("oost-1223"));
    assert_eq!(oost.amount_available, dec("0"));
    assert_eq!(oost.amount_carried_over, dec("6500"));
    assert_eq!(oost.amount_lapsed, dec("0"));
    assert_eq!(oost.amount_committed, dec("2000"));
    let centrum = f.line(&wijk("centrum"));
    assert_eq!(centrum.amount_available, dec("0"));
    assert_eq!(centrum.amount_lapsed, dec("4000"));
}

#[test]
fn closing_with_a_carry_over_for_a_wijk_not_in_the_fund_is_refused() {
    fund()
        .given(with_partial_payment())
        .when(close(&["oost-1223", "zuid"], Some("A21-182-overheveling")))
        .then_expect_error_message("wijk zuid is not among the wijken with money in this fund");
}

#[test]
fn closing_twice_is_refused() {
    fund()
        .given(closed_with_open_commitment())
        .when(close(&[], None))
        .then_expect_error_message("fund A21-182 is already closed");
}

#[test]
fn closing_a_fund_that_does_not_exist_is_refused() {
    fund()
        .given_no_previous_events()
        .when(close(&[], None))
        .then_expect_error_message("this fund does not exist; establish it first with POST /api/v1/funds");
}

#[test]
fn after_closing_an_allocation_in_the_year_is_refused() {
    fund()
        .given(closed_with_open_commitment())
        .when(allocate("oost-1223", "1"))
        .then_expect_error_message(
            "fund A21-182's year 2022 is closed, so nothing more can be booked in it on 2022-01-10; book it on a fund of an open year",
        );
}

#[test]
fn after_closing_a_direct_expense_in_the_year_is_refused() {
    fund()
        .given(closed_with_open_commitment())
        .when(FundCommand::RecordExpense(wegaplein("laat", "1")))
        .then_expect_error_message(
            "fund A21-182's year 2022 is closed, so nothing more can be booked in it on 2022-06-01; book it on a fund of an open year",
        );
}

#[test]
fn after_closing_a_commitment_in_the_year_is_refused() {
    fund()
        .given(closed_with_open_commitment())
        .when(FundCommand::Commit(grant("sv-2", "1")))
        .then_expect_error_message(
            "fund A21-182's year 2022 is closed, so nothing more can be booked in it on 2022-03-01; book it on a fund of an open year",
        );
}

#[test]
fn after_closing_a_transfer_in_the_year_is_refused() {
    fund()
        .given(closed_with_open_commitment())
        .when(transfer("oost-1223", "centrum", "1", "2022-12-31"))
        .then_expect_error_message(
            "fund A21-182's year 2022 is closed, so nothing more can be booked in it on 2022-12-31; book it on a fund of an open year",
        );
}

#[test]
fn after_closing_a_reversal_not_marked_post_closing_is_refused() {
    let mut given = oost_has_10000();
    given.push(FundEvent::ExpenseRecorded(wegaplein("dubbel", "100")));
    given.push(closed(vec![close_line("oost-1223", "9900", "0", "0")], "40000", None));
    fund().given(given).when(reverse("dubbel", "2023-03-01", false)).then_expect_error_message(
        "fund A21-182 is closed, so this reversal must be marked post_closing: send \"post_closing\": true with it",
    );
}

#[test]
fn after_closing_a_reversal_marked_post_closing_lapses_the_money() {
    let mut given = oost_has_10000();
    given.push(FundEvent::ExpenseRecorded(wegaplein("dubbel", "100")));
    given.push(closed(vec![close_line("oost-1223", "9900", "0", "0")], "40000", None));
    let reversed = FundEvent::ExpenseReversedAfterClose {
        expense_id: eid("dubbel"),
        wijk_id: wijk("oost-1223"),
        amount: eur("100"),
        reason: text("dubbel geboekt"),
        // Booked on the day it is made, after the closed year, so the
        // closed year's as-of answers stay as the close left them (issue 14).
        booked_on: date("2023-03-01"),
        reverses_sequence: 3,
    };
    fund().given(given.clone()).when(reverse("dubbel", "2023-03-01", true)).then_expect_events(vec![reversed.clone()]);
    given.push(reversed);
    let line = fold(&given).line(&wijk("oost-1223"));
    assert_eq!(line.amount_spent, dec("0"));
    assert_eq!(line.amount_available, dec("0"));
    assert_eq!(line.amount_lapsed, dec("10000"));
}

#[test]
fn after_closing_a_payment_still_cannot_be_reversed() {
    fund().given(closed_with_open_commitment()).when(reverse("f-1", "2023-03-01", true)).then_expect_error_message(
        "expense f-1 is a payment on a commitment; correct it through the commitment's settlement",
    );
}

#[test]
fn a_settlement_after_closing_lapses_the_released_money() {
    fund()
        .given(closed_with_open_commitment())
        .when(settle("sv-1", "2500", "2023-02-01"))
        .then_expect_events(vec![settled("sv-1", "2500", "500", "0", "2023-02-01", true)]);
    let mut events = closed_with_open_commitment();
    events.push(settled("sv-1", "2500", "500", "0", "2023-02-01", true));
    let line = fold(&events).line(&wijk("oost-1223"));
    assert_eq!(line.amount_committed, dec("1500"));
    assert_eq!(line.amount_available, dec("0"));
    assert_eq!(line.amount_lapsed, dec("7500"));
}

#[test]
fn a_withdrawal_after_closing_lapses_the_released_money() {
    fund()
        .given(closed_with_open_commitment())
        .when(withdraw("sv-1", false, "2023-02-01"))
        .then_expect_events(vec![withdrawn("sv-1", "2000", false, "2023-02-01", true)]);
    let mut events = closed_with_open_commitment();
    events.push(withdrawn("sv-1", "2000", false, "2023-02-01", true));
    let line = fold(&events).line(&wijk("oost-1223"));
    assert_eq!(line.amount_committed, dec("0"));
    assert_eq!(line.amount_available, dec("0"));
    assert_eq!(line.amount_lapsed, dec("9000"));
}

#[test]
fn a_cancellation_after_closing_lapses_the_released_money() {
    fund()
        .given(closed_with_open_commitment())
        .when(withdraw("sv-1", true, "2023-02-01"))
        .then_expect_events(vec![withdrawn("sv-1", "2000", true, "2023-02-01", true)]);
}

#[test]
fn a_withdrawal_dated_inside_a_closed_year_is_refused() {
    fund()
        .given(closed_with_open_commitment())
        .when(withdraw("sv-1", false, "2022-12-31"))
        .then_expect_error_message(
            "fund A21-182's year 2022 is closed, so nothing more can be booked in it on 2022-12-31; book it on or after 2023-01-01",
        );
}

#[test]
fn a_repayment_after_closing_lapses_the_money() {
    let mut given = with_recovery_claimed();
    given.push(closed(vec![close_line("oost-1223", "7200", "0", "0")], "40000", None));
    fund().given(given.clone()).when(repay("sv-1", "300", "2023-02-01")).then_expect_events(vec![repaid(
        "sv-1",
        "300",
        "2023-02-01",
        true,
    )]);
    given.push(repaid("sv-1", "300", "2023-02-01", true));
    let line = fold(&given).line(&wijk("oost-1223"));
    assert_eq!(line.amount_receivable, dec("0"));
    assert_eq!(line.amount_available, dec("0"));
    assert_eq!(line.amount_lapsed, dec("7500"));
}

#[test]
fn a_repayment_dated_inside_a_closed_year_is_refused() {
    let mut given = with_recovery_claimed();
    given.push(closed(vec![close_line("oost-1223", "7200", "0", "0")], "40000", None));
    fund()
        .given(given)
        .when(repay("sv-1", "300", "2022-12-30"))
        .then_expect_error_message(
            "fund A21-182's year 2022 is closed, so nothing more can be booked in it on 2022-12-30; book it on or after 2023-01-01",
        );
}

// ---------------------------------------------------------------------------
// The carry-over fund
// ---------------------------------------------------------------------------

#[test]
fn a_carry_over_fund_is_established_with_the_money_already_allocated() {
    fund().given_no_previous_events().when(establish_carry_over()).then_expect_events(vec![carried_over()]);
    let f = fold(&[carried_over()]);
    assert_eq!(f.carried_over_from(), Some(&fid("A21-182")));
    assert_eq!(f.amount_unallocated(), dec("0"));
    let line = f.line(&wijk("oost-1223"));
    assert_eq!(line.amount_allocated, dec("6500"));
    assert_eq!(line.amount_available, dec("6500"));
}

#[test]
fn carried_over_money_cannot_be_spent_before_the_close_decision() {
    let mut expense = wegaplein("januari", "10");
    expense.booked_on = date("2023-01-15");
    fund().given(vec![carried_over()]).when(FundCommand::RecordExpense(expense)).then_expect_error_message(
        "booking date 2023-01-15 is before the close decision that carried this money over on 2023-03-30; book it on or after that day",
    );
    let mut details = grant("sv-januari", "10");
    details.booked_on = date("2023-03-29");
    fund().given(vec![carried_over()]).when(FundCommand::Commit(details)).then_expect_error_message(
        "booking date 2023-03-29 is before the close decision that carried this money over on 2023-03-30; book it on or after that day",
    );
}

#[test]
fn a_close_decision_before_the_new_year_carries_over_on_1_january() {
    let mut terms = carry_over_terms();
    terms.decision.adopted_on = date("2022-12-20");
    let command = FundCommand::EstablishCarryOver {
        terms: terms.clone(),
        from_fund: fid("A21-182"),
        allocations: vec![(wijk("oost-1223"), eur("6500"))],
    };
    fund().given_no_previous_events().when(command).then_expect_events(vec![FundEvent::FundCarriedOver {
        terms,
        from_fund: fid("A21-182"),
        booked_on: date("2023-01-01"),
        allocations: vec![(wijk("oost-1223"), eur("6500"))],
    }]);
}

/// Money a commitment returns after the fund's year, before the year is
/// closed, lapses at once: back in the wijk's available money it could
/// never be spent, and the close (dated 31 December) would lapse it before
/// it came back, so the as-of answer for 31 December went negative.
#[test]
fn money_a_commitment_returns_after_the_year_lapses_even_before_the_close() {
    fund().given(with_commitment()).when(withdraw("sv-1", false, "2023-02-01")).then_expect_events(vec![withdrawn(
        "sv-1",
        "3000",
        false,
        "2023-02-01",
        true,
    )]);
    fund().given(with_commitment()).when(settle("sv-1", "1000", "2023-02-01")).then_expect_events(vec![settled(
        "sv-1",
        "1000",
        "2000",
        "0",
        "2023-02-01",
        true,
    )]);
    let mut given = with_recovery_claimed();
    given.push(repaid("sv-1", "100", "2022-12-20", false));
    fund().given(given).when(repay("sv-1", "200", "2023-01-10")).then_expect_events(vec![repaid(
        "sv-1",
        "200",
        "2023-01-10",
        true,
    )]);
    // Within the year it still returns to the wijk.
    fund().given(with_commitment()).when(withdraw("sv-1", false, "2022-12-31")).then_expect_events(vec![withdrawn(
        "sv-1",
        "3000",
        false,
        "2022-12-31",
        false,
    )]);
}

#[test]
fn a_carry_over_decided_after_the_new_year_ended_is_refused() {
    let mut terms = carry_over_terms();
    terms.decision.adopted_on = date("2024-01-05");
    let command = FundCommand::EstablishCarryOver {
        terms,
        from_fund: fid("A21-182"),
        allocations: vec![(wijk("oost-1223"), eur("6500"))],
    };
    fund().given_no_previous_events().when(command).then_expect_error_message(
        "the close decision of 2024-01-05 comes after carry-over fund A21-182-overheveling's year 2023, so the money could never be used; a carry-over needs a decision adopted by 2023-12-31",
    );
}

#[test]
fn a_reversal_marked_post_closing_in_an_open_year_is_refused() {
    let mut given = oost_has_10000();
    given.push(FundEvent::ExpenseRecorded(wegaplein("dubbel", "100")));
    fund().given(given).when(reverse("dubbel", "2022-07-01", true)).then_expect_error_message(
        "fund A21-182's year 2022 is not closed, so this reversal is not a post-closing correction; send it without post_closing",
    );
}

#[test]
fn a_reversal_is_booked_on_the_day_it_names_within_the_rules() {
    let mut given = oost_has_10000();
    given.push(FundEvent::ExpenseRecorded(wegaplein("dubbel", "100")));
    let on = |booked_on: &str, post_closing: bool| FundCommand::ReverseExpense {
        booked_on: Some(date(booked_on)),
        expense_id: eid("dubbel"),
        reason: text("dubbel geboekt"),
        requested_on: date("2026-12-01"),
        post_closing,
    };
    let reversed = |booked_on: &str| FundEvent::ExpenseReversed {
        expense_id: eid("dubbel"),
        wijk_id: wijk("oost-1223"),
        amount: eur("100"),
        reason: text("dubbel geboekt"),
        booked_on: date(booked_on),
        reverses_sequence: 3,
    };
    fund().given(given.clone()).when(on("2022-08-01", false)).then_expect_events(vec![reversed("2022-08-01")]);
    // Not before the expense itself (wegaplein is booked on 2022-06-01).
    fund().given(given.clone()).when(on("2022-05-31", false)).then_expect_error_message(
        "booking date 2022-05-31 is before the expense's own booking on 2022-06-01; book it on or after that day",
    );
    // Not outside the fund's year while the year is open.
    fund().given(given.clone()).when(on("2023-01-02", false)).then_expect_error_message(
        "booking date 2023-01-02 is outside fund A21-182's year 2022; book it within 2022 or use a fund of that year",
    );
    // After the close: only after the closed year.
    given.push(closed(vec![close_line("oost-1223", "9900", "0", "0")], "40000", None));
    fund().given(given.clone()).when(on("2022-12-31", true)).then_expect_error_message(
        "fund A21-182's year 2022 is closed, so nothing more can be booked in it on 2022-12-31; book it on or after 2023-01-01",
    );
    fund().given(given).when(on("2023-01-01", true)).then_expect_events(vec![FundEvent::ExpenseReversedAfterClose {
        expense_id: eid("dubbel"),
        wijk_id: wijk("oost-1223"),
        amount: eur("100"),
        reason: text("dubbel geboekt"),
        booked_on: date("2023-01-01"),
        reverses_sequence: 3,
    }]);
}

#[test]
fn establishing_the_carry_over_fund_again_records_nothing() {
    fund().given(vec![carried_over()]).when(establish_carry_over()).then_expect_events(vec![]);
}

#[test]
fn a_carry_over_fund_cannot_be_established_again_as_an_ordinary_fund() {
    fund()
        .given(vec![carried_over()])
        .when(FundCommand::Establish(carry_over_terms()))
        .then_expect_error_message("fund A21-182-overheveling already exists with other terms; choose another fund_id");
}

#[test]
fn a_wijk_can_spend_its_carried_over_money() {
    let mut expense = wegaplein("wegaplein-2023", "6500");
    expense.booked_on = date("2023-04-01");
    fund()
        .given(vec![carried_over()])
        .when(FundCommand::RecordExpense(expense.clone()))
        .then_expect_events(vec![FundEvent::ExpenseRecorded(expense)]);
}

#[test]
fn a_wijk_can_commit_its_carried_over_money() {
    let mut details = grant("sv-2023-1", "6500");
    details.booked_on = date("2023-04-01");
    fund()
        .given(vec![carried_over()])
        .when(FundCommand::Commit(details.clone()))
        .then_expect_events(vec![FundEvent::CommitmentMade(details)]);
}

#[test]
fn a_wijk_cannot_spend_more_than_was_carried_over() {
    let mut expense = wegaplein("wegaplein-2023", "6500.01");
    expense.booked_on = date("2023-04-01");
    fund().given(vec![carried_over()]).when(FundCommand::RecordExpense(expense)).then_expect_error_message(
        "wijk oost-1223 has 6500.00 left from fund A21-182-overheveling, so an expense of 6500.01 would overspend it",
    );
}

// ---------------------------------------------------------------------------
// Invariants over a long scenario
// ---------------------------------------------------------------------------

/// Runs the commands one after another, each on the events recorded so far,
/// and returns every event recorded. A refusal fails the test.
fn run(commands: Vec<FundCommand>) -> Vec<FundEvent> {
    let mut events: Vec<FundEvent> = Vec::new();
    for command in commands {
        let shown = format!("{command:?}");
        let new = fund()
            .given(events.clone())
            .when(command)
            .inspect_result()
            .unwrap_or_else(|e| panic!("{shown} was refused: {e}"));
        assert!(!new.is_empty(), "{shown} recorded nothing");
        events.extend(new);
    }
    events
}

type Balances = BTreeMap<(AccountKind, Option<WijkId>), Decimal>;

fn balance(balances: &Balances, kind: AccountKind, wijk_id: Option<&WijkId>) -> Decimal {
    balances.get(&(kind, wijk_id.cloned())).copied().unwrap_or_default()
}

/// Checks, after every single event, that its postings balance, that the
/// folded budget lines equal the ledger's balances, and that no balance
/// other than the sources goes negative.
fn assert_ledger_matches_fund(fund_id: &FundId, events: &[FundEvent]) -> (Fund, Balances) {
    use AccountKind as K;
    let mut fund = Fund::default();
    let mut balances = Balances::new();
    for (i, event) in events.iter().enumerate() {
        let what = format!("after event {} ({})", i + 1, event.event_type());
        let ps = postings(fund_id, event);
        let sum: Decimal = ps.iter().map(|p| p.amount).sum();
        assert_eq!(sum, Decimal::ZERO, "postings of event {} ({}) do not balance", i + 1, event.event_type());
        for p in ps {
            assert_eq!(&p.account.fund_id, fund_id, "{what}");
            *balances.entry((p.account.kind, p.account.wijk_id)).or_default() += p.amount;
        }
        fund.apply(event.clone());

        let total: Decimal = balances.values().copied().sum();
        assert_eq!(total, Decimal::ZERO, "trial balance {what}");
        for ((kind, wijk_id), amount) in &balances {
            if !matches!(kind, K::Appropriation | K::CarriedIn) {
                assert!(*amount >= Decimal::ZERO, "{} of {wijk_id:?} is {amount} {what}", kind.as_str());
            }
            if let Some(w) = wijk_id {
                assert!(fund.lines().any(|(l, _)| l == w), "{what}: posting to {w} which has no budget line");
            }
        }
        assert_eq!(balance(&balances, K::Fund, None), fund.amount_unallocated(), "fund account {what}");
        for (w, line) in fund.lines() {
            let w = Some(w);
            assert_eq!(balance(&balances, K::WijkBudget, w), line.amount_available, "wijk_budget of {w:?} {what}");
            assert_eq!(balance(&balances, K::Committed, w), line.amount_committed, "committed of {w:?} {what}");
            assert_eq!(balance(&balances, K::Spent, w), line.amount_spent, "spent of {w:?} {what}");
            assert_eq!(balance(&balances, K::Receivable, w), line.amount_receivable, "receivable of {w:?} {what}");
            assert_eq!(balance(&balances, K::Lapsed, w), line.amount_lapsed, "lapsed of {w:?} {what}");
            assert_eq!(balance(&balances, K::CarriedOver, w), line.amount_carried_over, "carried_over of {w:?} {what}");
        }
    }
    (fund, balances)
}

fn kruisdam(expense_id: &str, amount: &str) -> ExpenseDetails {
    ExpenseDetails { wijk_id: wijk("centrum"), initiative: text("Kruisdam groen"), ..wegaplein(expense_id, amount) }
}

#[test]
fn every_event_of_a_whole_year_balances_and_the_budget_lines_equal_the_ledger() {
    let mut bankje = wegaplein("bankje", "300");
    bankje.booked_on = date("2022-09-15");
    let events = run(vec![
        FundCommand::Establish(a21_182()),
        allocate("oost-1223", "20000"),
        allocate("centrum", "10000"),
        FundCommand::RecordExpense(wegaplein("wegaplein", "1500")),
        FundCommand::Commit(grant("sv-1", "6000")),
        FundCommand::Commit(grant("sv-2", "3000")),
        FundCommand::Commit(grant_in("centrum", "sv-3", "4000")),
        pay("sv-1", "f-1", "2000", "2022-04-01"),
        pay("sv-1", "f-2", "2500", "2022-06-01"),
        // settled below what was paid: 1500 released, 500 claimed back
        settle("sv-1", "4000", "2022-07-01"),
        repay("sv-1", "200", "2022-08-01"),
        pay("sv-2", "f-3", "1000", "2022-05-01"),
        withdraw("sv-2", false, "2022-08-15"),
        transfer("oost-1223", "centrum", "1000", "2022-08-20"),
        pay("sv-3", "f-4", "1000", "2022-06-01"),
        // settled between paid and committed: 1000 released, 2000 still open
        settle("sv-3", "3000", "2022-09-01"),
        FundCommand::RecordExpense(kruisdam("kruisdam", "500")),
        reverse("kruisdam", "2022-09-10", false),
        FundCommand::RecordExpense(bankje),
        FundCommand::Commit(grant("sv-4", "2500")),
        pay("sv-4", "f-5", "500", "2022-10-01"),
        FundCommand::Commit(grant_in("centrum", "sv-5", "1000")),
        withdraw("sv-5", true, "2022-10-15"),
        FundCommand::Commit(grant("sv-6", "1000")),
        close(&["oost-1223"], Some("A21-182-overheveling")),
        // after the close: carried-along commitments and corrections
        pay("sv-3", "f-6", "2000", "2023-01-20"),
        repay("sv-1", "300", "2023-02-01"),
        withdraw("sv-4", false, "2023-02-10"),
        reverse("bankje", "2023-03-01", true),
        settle("sv-6", "800", "2023-03-05"),
        pay("sv-6", "f-7", "800", "2023-03-10"),
    ]);
    assert_eq!(events.len(), 31);
    let fund_id = fid("A21-182");
    let (f, balances) = assert_ledger_matches_fund(&fund_id, &events);

    // The whole appropriation is accounted for.
    assert_eq!(balance(&balances, AccountKind::Appropriation, None), dec("-50000"));
    assert_eq!(balance(&balances, AccountKind::Lapsed, None), dec("20000"));
    assert_eq!(balance(&balances, AccountKind::Fund, None), dec("0"));

    // oost-1223: 20000 − 1000 transferred; spent 1500 + 4000 (sv-1 net of the
    // claim) + 1000 (sv-2) + 500 (sv-4) + 800 (sv-6); 500 repaid after close
    // of which 300 lapsed; bankje reversed after close and lapsed.
    let oost = f.line(&wijk("oost-1223"));
    assert_eq!(oost.amount_allocated, dec("20000"));
    assert_eq!(oost.amount_transferred, dec("-1000"));
    assert_eq!(oost.amount_spent, dec("7800"));
    assert_eq!(oost.amount_committed, dec("0"));
    assert_eq!(oost.amount_receivable, dec("0"));
    assert_eq!(oost.amount_available, dec("0"));
    assert_eq!(
        oost.amount_carried_over + oost.amount_lapsed + oost.amount_spent,
        oost.amount_allocated + oost.amount_transferred
    );
    let centrum = f.line(&wijk("centrum"));
    assert_eq!(centrum.amount_spent, dec("3000"));
    assert_eq!(centrum.amount_committed, dec("0"));
    assert_eq!(centrum.amount_available, dec("0"));
    assert_eq!(centrum.amount_carried_over, dec("0"));
    assert_eq!(centrum.amount_lapsed, dec("8000"));
}

#[test]
fn every_event_of_a_carry_over_fund_balances_and_the_budget_lines_equal_the_ledger() {
    let mut expense = wegaplein("wegaplein-2023", "1000");
    expense.booked_on = date("2023-04-01");
    let mut details = grant("sv-2023-1", "4000");
    details.booked_on = date("2023-04-02");
    let events = run(vec![
        establish_carry_over(),
        FundCommand::RecordExpense(expense),
        FundCommand::Commit(details),
        pay("sv-2023-1", "f-2023-1", "3500", "2023-05-01"),
        settle("sv-2023-1", "3000", "2023-06-01"),
        repay("sv-2023-1", "500", "2023-06-15"),
        transfer("oost-1223", "centrum", "1500", "2023-07-01"),
        close(&[], None),
    ]);
    let fund_id = fid("A21-182-overheveling");
    let (f, balances) = assert_ledger_matches_fund(&fund_id, &events);
    assert_eq!(balance(&balances, AccountKind::CarriedIn, None), dec("-6500"));
    let oost = f.line(&wijk("oost-1223"));
    assert_eq!(oost.amount_spent, dec("4000"));
    assert_eq!(oost.amount_lapsed, dec("1000"));
    assert_eq!(f.line(&wijk("centrum")).amount_lapsed, dec("1500"));
}

#[test]
fn a_carry_over_fund_whose_allocations_do_not_add_up_to_its_amount_is_refused() {
    let mut command = establish_carry_over();
    if let FundCommand::EstablishCarryOver { allocations, .. } = &mut command {
        allocations.push((wijk("centrum"), eur("100")));
    }
    fund().given_no_previous_events().when(command).then_expect_error_message(
        "the carry-over allocations sum to 6600.00, but the fund's amount is 6500.00; they must be equal",
    );
}

#[test]
fn closing_with_wijken_to_carry_over_but_no_fund_to_carry_into_is_refused() {
    fund()
        .given(vec![established(), allocated("oost-1223", "1000")])
        .when(FundCommand::Close(Closing {
            decision_reference: text("Raadsbesluit"),
            carry_over: vec![wijk("oost-1223")],
            carry_over_fund: None,
        }))
        .then_expect_error_message("wijken to carry over need a carry_over_fund to carry into");
}
