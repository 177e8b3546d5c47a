//! A grant's life: commitments, payments on them, direct expenses beside
//! them, settlement, repayment, withdrawal and cancellation.

use super::*;

// ---------------------------------------------------------------------------
// Commitments
// ---------------------------------------------------------------------------

#[test]
fn a_commitment_holds_a_wijks_money_for_an_approved_initiative() {
    fund()
        .given(oost_has_10000())
        .when(FundCommand::Commit(grant("sv-1", "3000")))
        .then_expect_events(vec![committed("sv-1", "3000")]);
}

#[test]
fn a_commitment_of_all_the_available_money_is_allowed() {
    fund()
        .given(oost_has_10000())
        .when(FundCommand::Commit(grant("sv-1", "10000")))
        .then_expect_events(vec![committed("sv-1", "10000")]);
}

#[test]
fn a_commitment_larger_than_the_available_money_is_refused() {
    let mut given = with_commitment();
    given.push(FundEvent::ExpenseRecorded(wegaplein("wegaplein", "1500")));
    fund().given(given).when(FundCommand::Commit(grant("sv-2", "5500.01"))).then_expect_error_message(
        "wijk oost-1223 has 5500.00 available in fund A21-182 from 2022-03-01 on, so 5500.01 cannot be committed; \
         it has 7000.00 on 2022-03-01, but the bookings dated 2022-06-01 (-1500.00) leave 5500.00 on that day, \
         and no day may go below zero",
    );
}

#[test]
fn a_commitment_for_a_registered_wijk_without_money_in_the_fund_is_refused() {
    fund()
        .given(oost_has_10000())
        .when(FundCommand::Commit(grant_in("centrum", "sv-1", "1")))
        .then_expect_error_message("wijk centrum has 0.00 available in fund A21-182, so 1.00 cannot be committed");
}

#[test]
fn a_commitment_for_an_unregistered_wijk_is_refused() {
    fund()
        .given(oost_has_10000())
        .when(FundCommand::Commit(grant_in("atlantis", "sv-1", "1")))
        .then_expect_error_message("wijk atlantis is not registered; register it first with POST /api/v1/wijken");
}

#[test]
fn a_commitment_booked_after_the_fund_year_is_refused() {
    let mut details = grant("sv-1", "100");
    details.booked_on = date("2023-01-02");
    fund().given(oost_has_10000()).when(FundCommand::Commit(details)).then_expect_error_message(
        "booking date 2023-01-02 is outside fund A21-182's year 2022; book it within 2022 or use a fund of that year",
    );
}

#[test]
fn a_commitment_booked_before_the_fund_year_is_refused() {
    let mut details = grant("sv-1", "100");
    details.booked_on = date("2021-12-31");
    fund().given(oost_has_10000()).when(FundCommand::Commit(details)).then_expect_error_message(
        "booking date 2021-12-31 is outside fund A21-182's year 2022; book it within 2022 or use a fund of that year",
    );
}

#[test]
fn a_commitment_in_a_fund_that_does_not_exist_is_refused() {
    fund()
        .given_no_previous_events()
        .when(FundCommand::Commit(grant("sv-1", "100")))
        .then_expect_error_message("this fund does not exist; establish it first with POST /api/v1/funds");
}

#[test]
fn making_the_same_commitment_again_records_nothing() {
    fund().given(with_commitment()).when(FundCommand::Commit(grant("sv-1", "3000"))).then_expect_events(vec![]);
}

#[test]
fn a_commitment_id_reused_with_other_details_is_refused() {
    fund()
        .given(with_commitment())
        .when(FundCommand::Commit(grant("sv-1", "3001")))
        .then_expect_error_message("commitment sv-1 already exists with other details; choose another commitment_id");
}

#[test]
fn after_a_commitment_the_available_money_is_allocated_minus_committed_minus_spent() {
    let mut events = with_commitment();
    events.push(FundEvent::ExpenseRecorded(wegaplein("wegaplein", "1500")));
    let line = fold(&events).line(&wijk("oost-1223"));
    assert_eq!(line.amount_allocated, dec("10000"));
    assert_eq!(line.amount_committed, dec("3000"));
    assert_eq!(line.amount_spent, dec("1500"));
    assert_eq!(line.amount_available, dec("5500"));
    assert_eq!(line.amount_available, line.amount_allocated - line.amount_committed - line.amount_spent);
    assert_eq!(line.amount_remaining(), dec("5500"));

    // A payment moves money from committed to spent; available stays put.
    events.push(paid("sv-1", "f-1", "1000", "2022-04-01"));
    let line = fold(&events).line(&wijk("oost-1223"));
    assert_eq!(line.amount_committed, dec("2000"));
    assert_eq!(line.amount_spent, dec("2500"));
    assert_eq!(line.amount_available, dec("5500"));
    assert_eq!(line.amount_available, line.amount_allocated - line.amount_committed - line.amount_spent);
}

// ---------------------------------------------------------------------------
// Payments on a commitment
// ---------------------------------------------------------------------------

#[test]
fn a_commitment_is_paid_in_parts() {
    fund().given(with_partial_payment()).when(pay("sv-1", "f-2", "2000", "2022-09-01")).then_expect_events(vec![paid(
        "sv-1",
        "f-2",
        "2000",
        "2022-09-01",
    )]);
    let mut events = with_partial_payment();
    events.push(paid("sv-1", "f-2", "2000", "2022-09-01"));
    let line = fold(&events).line(&wijk("oost-1223"));
    assert_eq!(line.amount_committed, dec("0"));
    assert_eq!(line.amount_spent, dec("3000"));
    assert_eq!(line.amount_available, dec("7000"));
}

#[test]
fn a_payment_above_what_is_left_of_the_commitment_is_refused() {
    fund()
        .given(with_partial_payment())
        .when(pay("sv-1", "f-2", "2000.01", "2022-09-01"))
        .then_expect_error_message("commitment sv-1 has 2000.00 left to pay, so a payment of 2000.01 is too much");
}

#[test]
fn a_payment_on_a_fully_paid_commitment_is_refused() {
    let mut given = with_commitment();
    given.push(paid("sv-1", "f-1", "3000", "2022-04-01"));
    fund()
        .given(given)
        .when(pay("sv-1", "f-2", "0.01", "2022-09-01"))
        .then_expect_error_message("commitment sv-1 has 0.00 left to pay, so a payment of 0.01 is too much");
}

#[test]
fn paying_an_unknown_commitment_is_refused() {
    fund()
        .given(with_commitment())
        .when(pay("nooit", "f-1", "10", "2022-04-01"))
        .then_expect_error_message("commitment nooit is not recorded in fund A21-182");
}

#[test]
fn paying_a_withdrawn_commitment_is_refused() {
    let mut given = with_commitment();
    given.push(withdrawn("sv-1", "3000", false, "2022-05-01", false));
    fund()
        .given(given)
        .when(pay("sv-1", "f-1", "10", "2022-06-01"))
        .then_expect_error_message("commitment sv-1 is withdrawn, so it can no longer be paid");
}

#[test]
fn paying_a_cancelled_commitment_is_refused() {
    let mut given = with_commitment();
    given.push(withdrawn("sv-1", "3000", true, "2022-05-01", false));
    fund()
        .given(given)
        .when(pay("sv-1", "f-1", "10", "2022-06-01"))
        .then_expect_error_message("commitment sv-1 is cancelled, so it can no longer be paid");
}

#[test]
fn paying_again_with_the_same_expense_id_and_details_records_nothing() {
    fund().given(with_partial_payment()).when(pay("sv-1", "f-1", "1000", "2022-04-01")).then_expect_events(vec![]);
}

#[test]
fn a_payment_reusing_an_expense_id_with_another_amount_is_refused() {
    fund()
        .given(with_partial_payment())
        .when(pay("sv-1", "f-1", "1500", "2022-04-01"))
        .then_expect_error_message("expense f-1 already exists with other details; choose another expense_id");
}

#[test]
fn a_payment_reusing_an_expense_id_on_another_commitment_is_refused() {
    let mut given = with_partial_payment();
    given.push(committed("sv-2", "500"));
    fund()
        .given(given)
        .when(pay("sv-2", "f-1", "1000", "2022-04-01"))
        .then_expect_error_message("expense f-1 already exists with other details; choose another expense_id");
}

#[test]
fn a_payment_reusing_the_id_of_a_direct_expense_is_refused() {
    let mut given = with_commitment();
    given.push(FundEvent::ExpenseRecorded(wegaplein("f-1", "1000")));
    fund()
        .given(given)
        .when(pay("sv-1", "f-1", "1000", "2022-06-01"))
        .then_expect_error_message("expense f-1 already exists with other details; choose another expense_id");
}

#[test]
fn a_direct_expense_reusing_the_id_of_a_payment_is_refused() {
    fund()
        .given(with_partial_payment())
        .when(FundCommand::RecordExpense(wegaplein("f-1", "1000")))
        .then_expect_error_message("expense f-1 already exists with other details; choose another expense_id");
}

#[test]
fn a_payment_after_the_fund_year_on_a_carried_along_commitment_is_allowed() {
    fund().given(with_partial_payment()).when(pay("sv-1", "f-2", "500", "2023-01-15")).then_expect_events(vec![paid(
        "sv-1",
        "f-2",
        "500",
        "2023-01-15",
    )]);
}

#[test]
fn a_payment_after_the_closed_year_on_a_carried_along_commitment_is_allowed() {
    fund()
        .given(closed_with_open_commitment())
        .when(pay("sv-1", "f-2", "2000", "2023-02-01"))
        .then_expect_events(vec![paid("sv-1", "f-2", "2000", "2023-02-01")]);
}

#[test]
fn a_payment_dated_inside_a_closed_year_is_refused() {
    fund()
        .given(closed_with_open_commitment())
        .when(pay("sv-1", "f-2", "500", "2022-12-20"))
        .then_expect_error_message(
            "fund A21-182's year 2022 is closed, so nothing more can be booked in it on 2022-12-20; book it on or after 2023-01-01",
        );
}

#[test]
fn a_payment_dated_before_the_fund_year_is_refused() {
    fund().given(with_commitment()).when(pay("sv-1", "f-1", "500", "2021-12-31")).then_expect_error_message(
        "booking date 2021-12-31 is outside fund A21-182's year 2022; book it within 2022 or use a fund of that year",
    );
}

#[test]
fn a_payment_on_a_commitment_cannot_be_reversed() {
    fund().given(with_partial_payment()).when(reverse("f-1", "2022-07-01", false)).then_expect_error_message(
        "expense f-1 is a payment on a commitment; correct it through the commitment's settlement",
    );
}

// ---------------------------------------------------------------------------
// Direct expenses next to commitments
// ---------------------------------------------------------------------------

#[test]
fn a_direct_expense_without_a_commitment_is_still_recorded() {
    fund()
        .given(with_commitment())
        .when(FundCommand::RecordExpense(wegaplein("wegaplein", "7000")))
        .then_expect_events(vec![FundEvent::ExpenseRecorded(wegaplein("wegaplein", "7000"))]);
}

#[test]
fn a_direct_expense_cannot_spend_committed_money() {
    fund()
        .given(with_commitment())
        .when(FundCommand::RecordExpense(wegaplein("wegaplein", "7000.01")))
        .then_expect_error_message(
            "wijk oost-1223 has 7000.00 left from fund A21-182, so an expense of 7000.01 would overspend it",
        );
}

// ---------------------------------------------------------------------------
// Settlement (vaststelling)
// ---------------------------------------------------------------------------

#[test]
fn a_commitment_settled_at_its_amount_releases_nothing() {
    let mut given = with_commitment();
    given.push(paid("sv-1", "f-1", "3000", "2022-04-01"));
    fund().given(given).when(settle("sv-1", "3000", "2022-10-01")).then_expect_events(vec![settled(
        "sv-1",
        "3000",
        "0",
        "0",
        "2022-10-01",
        false,
    )]);
}

#[test]
fn a_commitment_settled_at_its_amount_before_any_payment_keeps_all_of_it_committed() {
    fund().given(with_commitment()).when(settle("sv-1", "3000", "2022-10-01")).then_expect_events(vec![settled(
        "sv-1",
        "3000",
        "0",
        "0",
        "2022-10-01",
        false,
    )]);
}

#[test]
fn a_commitment_settled_below_its_amount_with_nothing_paid_releases_the_difference() {
    fund().given(with_commitment()).when(settle("sv-1", "2500", "2022-10-01")).then_expect_events(vec![settled(
        "sv-1",
        "2500",
        "500",
        "0",
        "2022-10-01",
        false,
    )]);
    let mut events = with_commitment();
    events.push(settled("sv-1", "2500", "500", "0", "2022-10-01", false));
    let line = fold(&events).line(&wijk("oost-1223"));
    assert_eq!(line.amount_committed, dec("2500"));
    assert_eq!(line.amount_available, dec("7500"));
}

#[test]
fn a_commitment_settled_at_zero_releases_all_of_it() {
    fund().given(with_commitment()).when(settle("sv-1", "0", "2022-10-01")).then_expect_events(vec![settled(
        "sv-1",
        "0",
        "3000",
        "0",
        "2022-10-01",
        false,
    )]);
}

#[test]
fn a_commitment_settled_between_what_was_paid_and_its_amount_releases_the_rest() {
    fund().given(with_partial_payment()).when(settle("sv-1", "2500", "2022-10-01")).then_expect_events(vec![settled(
        "sv-1",
        "2500",
        "500",
        "0",
        "2022-10-01",
        false,
    )]);
}

#[test]
fn a_commitment_settled_below_what_was_paid_claims_the_difference_back() {
    let mut given = with_commitment();
    given.push(paid("sv-1", "f-1", "2800", "2022-04-01"));
    fund().given(given.clone()).when(settle("sv-1", "2500", "2022-10-01")).then_expect_events(vec![settled(
        "sv-1",
        "2500",
        "200",
        "300",
        "2022-10-01",
        false,
    )]);
    given.push(settled("sv-1", "2500", "200", "300", "2022-10-01", false));
    let line = fold(&given).line(&wijk("oost-1223"));
    assert_eq!(line.amount_committed, dec("0"));
    assert_eq!(line.amount_spent, dec("2500"));
    assert_eq!(line.amount_receivable, dec("300"));
    assert_eq!(line.amount_available, dec("7200"));
}

#[test]
fn a_settled_amount_written_with_trailing_zeros_is_accepted() {
    fund().given(with_commitment()).when(settle("sv-1", "2500.500", "2022-10-01")).then_expect_events(vec![settled(
        "sv-1",
        "2500.50",
        "499.50",
        "0",
        "2022-10-01",
        false,
    )]);
}

#[test]
fn a_negative_settled_amount_is_refused() {
    fund().given(with_commitment()).when(settle("sv-1", "-0.01", "2022-10-01")).then_expect_error_message(
        "the settled amount -0.01 must be between 0.00 and the committed 3000.00, in whole cents",
    );
}

#[test]
fn a_settled_amount_above_the_commitment_is_refused() {
    fund().given(with_commitment()).when(settle("sv-1", "3000.01", "2022-10-01")).then_expect_error_message(
        "the settled amount 3000.01 must be between 0.00 and the committed 3000.00, in whole cents",
    );
}

#[test]
fn a_settled_amount_with_three_decimals_is_refused() {
    fund().given(with_commitment()).when(settle("sv-1", "2500.005", "2022-10-01")).then_expect_error_message(
        "the settled amount 2500.005 must be between 0.00 and the committed 3000.00, in whole cents",
    );
}

#[test]
fn settling_a_commitment_twice_is_refused() {
    let mut given = with_commitment();
    given.push(settled("sv-1", "2500", "500", "0", "2022-10-01", false));
    fund()
        .given(given)
        .when(settle("sv-1", "2500", "2022-10-01"))
        .then_expect_error_message("commitment sv-1 is settled, so it can no longer be settled");
}

#[test]
fn settling_a_withdrawn_commitment_is_refused() {
    let mut given = with_commitment();
    given.push(withdrawn("sv-1", "3000", false, "2022-05-01", false));
    fund()
        .given(given)
        .when(settle("sv-1", "0", "2022-10-01"))
        .then_expect_error_message("commitment sv-1 is withdrawn, so it can no longer be settled");
}

#[test]
fn settling_an_unknown_commitment_is_refused() {
    fund()
        .given(with_commitment())
        .when(settle("nooit", "0", "2022-10-01"))
        .then_expect_error_message("commitment nooit is not recorded in fund A21-182");
}

#[test]
fn a_settlement_dated_inside_a_closed_year_is_refused() {
    fund()
        .given(closed_with_open_commitment())
        .when(settle("sv-1", "2500", "2022-12-31"))
        .then_expect_error_message(
            "fund A21-182's year 2022 is closed, so nothing more can be booked in it on 2022-12-31; book it on or after 2023-01-01",
        );
}

#[test]
fn after_settlement_payments_up_to_the_settled_amount_are_allowed() {
    let mut given = with_partial_payment();
    given.push(settled("sv-1", "2500", "500", "0", "2022-10-01", false));
    fund().given(given).when(pay("sv-1", "f-2", "1500", "2022-11-01")).then_expect_events(vec![paid(
        "sv-1",
        "f-2",
        "1500",
        "2022-11-01",
    )]);
}

#[test]
fn after_settlement_a_payment_beyond_the_settled_amount_is_refused() {
    let mut given = with_partial_payment();
    given.push(settled("sv-1", "2500", "500", "0", "2022-10-01", false));
    fund()
        .given(given)
        .when(pay("sv-1", "f-2", "1500.01", "2022-11-01"))
        .then_expect_error_message("commitment sv-1 has 1500.00 left to pay, so a payment of 1500.01 is too much");
}

#[test]
fn after_settlement_below_what_was_paid_nothing_more_can_be_paid() {
    let mut given = with_commitment();
    given.push(paid("sv-1", "f-1", "2800", "2022-04-01"));
    given.push(settled("sv-1", "2500", "200", "300", "2022-10-01", false));
    fund()
        .given(given)
        .when(pay("sv-1", "f-2", "0.01", "2022-11-01"))
        .then_expect_error_message("commitment sv-1 has 0.00 left to pay, so a payment of 0.01 is too much");
}

// ---------------------------------------------------------------------------
// Repayment (terugvordering)
// ---------------------------------------------------------------------------

#[test]
fn a_repayment_returns_the_money_owed_to_the_wijk() {
    fund().given(with_recovery_claimed()).when(repay("sv-1", "300", "2022-11-15")).then_expect_events(vec![repaid(
        "sv-1",
        "300",
        "2022-11-15",
        false,
    )]);
    let mut events = with_recovery_claimed();
    events.push(repaid("sv-1", "300", "2022-11-15", false));
    let line = fold(&events).line(&wijk("oost-1223"));
    assert_eq!(line.amount_receivable, dec("0"));
    assert_eq!(line.amount_available, dec("7500"));
}

#[test]
fn a_repayment_may_come_in_parts() {
    let mut given = with_recovery_claimed();
    given.push(repaid("sv-1", "100", "2022-11-15", false));
    fund().given(given).when(repay("sv-1", "200", "2022-11-20")).then_expect_events(vec![repaid(
        "sv-1",
        "200",
        "2022-11-20",
        false,
    )]);
}

#[test]
fn a_repayment_of_more_than_is_owed_is_refused() {
    fund()
        .given(with_recovery_claimed())
        .when(repay("sv-1", "300.01", "2022-11-15"))
        .then_expect_error_message("commitment sv-1 has 300.00 owed back, so a repayment of 300.01 is too much");
}

#[test]
fn a_repayment_of_more_than_is_still_owed_after_a_partial_repayment_is_refused() {
    let mut given = with_recovery_claimed();
    given.push(repaid("sv-1", "100", "2022-11-15", false));
    fund()
        .given(given)
        .when(repay("sv-1", "200.01", "2022-11-20"))
        .then_expect_error_message("commitment sv-1 has 200.00 owed back, so a repayment of 200.01 is too much");
}

#[test]
fn a_repayment_when_nothing_is_owed_is_refused() {
    fund()
        .given(with_partial_payment())
        .when(repay("sv-1", "1", "2022-11-15"))
        .then_expect_error_message("commitment sv-1 has 0.00 owed back, so a repayment of 1.00 is too much");
}

#[test]
fn a_repayment_on_an_unknown_commitment_is_refused() {
    fund()
        .given(with_recovery_claimed())
        .when(repay("nooit", "1", "2022-11-15"))
        .then_expect_error_message("commitment nooit is not recorded in fund A21-182");
}

// ---------------------------------------------------------------------------
// Withdrawal (intrekking) and cancellation (annulering)
// ---------------------------------------------------------------------------

#[test]
fn a_withdrawal_releases_the_whole_unpaid_commitment() {
    fund()
        .given(with_partial_payment())
        .when(withdraw("sv-1", false, "2022-08-01"))
        .then_expect_events(vec![withdrawn("sv-1", "2000", false, "2022-08-01", false)]);
    let mut events = with_partial_payment();
    events.push(withdrawn("sv-1", "2000", false, "2022-08-01", false));
    let line = fold(&events).line(&wijk("oost-1223"));
    assert_eq!(line.amount_committed, dec("0"));
    assert_eq!(line.amount_spent, dec("1000"));
    assert_eq!(line.amount_available, dec("9000"));
}

#[test]
fn a_cancellation_releases_the_whole_unpaid_commitment() {
    fund().given(with_commitment()).when(withdraw("sv-1", true, "2022-08-01")).then_expect_events(vec![withdrawn(
        "sv-1",
        "3000",
        true,
        "2022-08-01",
        false,
    )]);
}

#[test]
fn a_cancellation_after_a_partial_payment_releases_only_the_unpaid_part() {
    fund()
        .given(with_partial_payment())
        .when(withdraw("sv-1", true, "2022-08-01"))
        .then_expect_events(vec![withdrawn("sv-1", "2000", true, "2022-08-01", false)]);
}

#[test]
fn released_money_can_be_committed_again() {
    let mut given = with_commitment();
    given.push(withdrawn("sv-1", "3000", false, "2022-08-01", false));
    let later = CommitmentDetails { booked_on: date("2022-08-15"), ..grant("sv-2", "10000") };
    fund()
        .given(given)
        .when(FundCommand::Commit(later.clone()))
        .then_expect_events(vec![FundEvent::CommitmentMade(later)]);
}

#[test]
fn released_money_cannot_be_committed_on_a_day_before_it_was_released() {
    let mut given = with_commitment();
    given.push(withdrawn("sv-1", "3000", false, "2022-08-01", false));
    fund().given(given).when(FundCommand::Commit(grant("sv-2", "10000"))).then_expect_error_message(
        "wijk oost-1223 has 7000.00 available in fund A21-182 on 2022-03-01, so 10000.00 cannot be committed; \
         the bookings dated 2022-08-01 (+3000.00) make the difference: book it on or after 2022-08-01",
    );
}

#[test]
fn a_payment_dated_before_its_commitment_is_refused() {
    fund().given(with_commitment()).when(pay("sv-1", "f-early", "100", "2022-02-01")).then_expect_error_message(
        "booking date 2022-02-01 is before the commitment's last booking on 2022-03-01; book it on or after that day",
    );
}

#[test]
fn a_settlement_dated_before_the_last_payment_is_refused() {
    fund().given(with_partial_payment()).when(settle("sv-1", "500", "2022-03-15")).then_expect_error_message(
        "booking date 2022-03-15 is before the commitment's last booking on 2022-04-01; book it on or after that day",
    );
}

#[test]
fn a_commitment_cannot_be_withdrawn_twice() {
    let mut given = with_commitment();
    given.push(withdrawn("sv-1", "3000", false, "2022-08-01", false));
    fund()
        .given(given)
        .when(withdraw("sv-1", false, "2022-08-02"))
        .then_expect_error_message("commitment sv-1 is withdrawn, so it can no longer be withdrawn");
}

#[test]
fn a_commitment_cannot_be_cancelled_twice() {
    let mut given = with_commitment();
    given.push(withdrawn("sv-1", "3000", true, "2022-08-01", false));
    fund()
        .given(given)
        .when(withdraw("sv-1", true, "2022-08-02"))
        .then_expect_error_message("commitment sv-1 is cancelled, so it can no longer be cancelled");
}

#[test]
fn a_withdrawn_commitment_cannot_be_cancelled_as_well() {
    let mut given = with_commitment();
    given.push(withdrawn("sv-1", "3000", false, "2022-08-01", false));
    fund()
        .given(given)
        .when(withdraw("sv-1", true, "2022-08-02"))
        .then_expect_error_message("commitment sv-1 is withdrawn, so it can no longer be cancelled");
}

#[test]
fn the_unpaid_rest_of_a_settled_commitment_can_be_withdrawn() {
    let mut given = with_commitment();
    given.push(settled("sv-1", "2500", "500", "0", "2022-10-01", false));
    fund().given(given).when(withdraw("sv-1", false, "2022-11-01")).then_expect_events(vec![withdrawn(
        "sv-1",
        "2500",
        false,
        "2022-11-01",
        false,
    )]);
}

#[test]
fn a_settled_commitment_with_nothing_left_to_pay_cannot_be_withdrawn() {
    let mut given = with_partial_payment();
    given.push(settled("sv-1", "1000", "2000", "0", "2022-10-01", false));
    fund()
        .given(given)
        .when(withdraw("sv-1", false, "2022-11-01"))
        .then_expect_error_message("commitment sv-1 is settled, so it can no longer be withdrawn");
}

#[test]
fn withdrawing_an_unknown_commitment_is_refused() {
    fund()
        .given(with_commitment())
        .when(withdraw("nooit", false, "2022-08-01"))
        .then_expect_error_message("commitment nooit is not recorded in fund A21-182");
}
