//! Given/when/then tests of every fund rule, including each refusal.

use cqrs_es::{Aggregate, DomainEvent};
use rust_decimal::Decimal;

use super::fund::*;
use super::ids::*;
use super::postings::postings;
use super::test_support::{a21_182, allocate, allocated, date, established, eur, fund, text, wegaplein, wijk};

#[test]
fn a_fund_is_established_and_booked_on_the_first_day_of_its_year() {
    fund().given_no_previous_events().when(FundCommand::Establish(a21_182())).then_expect_events(vec![established()]);
}

#[test]
fn a_fund_adopted_during_its_year_is_booked_on_the_adoption_date() {
    let mut terms = a21_182();
    terms.decision.adopted_on = date("2022-03-15");
    fund()
        .given_no_previous_events()
        .when(FundCommand::Establish(terms.clone()))
        .then_expect_events(vec![FundEvent::FundEstablished { terms, booked_on: date("2022-03-15") }]);
}

#[test]
fn establishing_the_same_fund_again_with_the_same_terms_records_nothing() {
    fund().given(vec![established()]).when(FundCommand::Establish(a21_182())).then_expect_events(vec![]);
}

#[test]
fn establishing_a_fund_id_again_with_other_terms_is_refused() {
    let mut terms = a21_182();
    terms.amount = eur("60000");
    fund()
        .given(vec![established()])
        .when(FundCommand::Establish(terms))
        .then_expect_error_message("fund A21-182 already exists with other terms; choose another fund_id");
}

#[test]
fn money_is_allocated_from_a_fund_to_a_registered_wijk() {
    fund()
        .given(vec![established()])
        .when(allocate("oost-1223", "50000"))
        .then_expect_events(vec![allocated("oost-1223", "50000")]);
}

#[test]
fn allocating_from_a_fund_that_does_not_exist_is_refused() {
    fund()
        .given_no_previous_events()
        .when(allocate("oost-1223", "10"))
        .then_expect_error_message("this fund does not exist; establish it first with POST /api/v1/funds");
}

#[test]
fn allocating_to_an_unregistered_wijk_is_refused() {
    fund()
        .given(vec![established()])
        .when(allocate("atlantis", "10"))
        .then_expect_error_message("wijk atlantis is not registered; register it first with POST /api/v1/wijken");
}

#[test]
fn a_fund_never_hands_out_more_than_its_amount() {
    fund()
        .given(vec![established(), allocated("oost-1223", "40000")])
        .when(allocate("centrum", "10000.01"))
        .then_expect_error_message("fund A21-182 has 10000.00 unallocated, so 10000.01 cannot be allocated");
}

#[test]
fn an_allocation_booked_outside_the_fund_year_is_refused() {
    fund()
        .given(vec![established()])
        .when(FundCommand::Allocate {
            wijk_id: wijk("oost-1223"),
            amount: eur("1"),
            reason: text("te laat"),
            booked_on: date("2023-01-01"),
        })
        .then_expect_error_message(
            "booking date 2023-01-01 is outside fund A21-182's year 2022; book it within 2022 or use a fund of that year",
        );
}

#[test]
fn an_amendment_fund_can_be_spent_in_full() {
    fund()
        .given(vec![established(), allocated("oost-1223", "50000")])
        .when(FundCommand::RecordExpense(wegaplein("wegaplein", "50000")))
        .then_expect_events(vec![FundEvent::ExpenseRecorded(wegaplein("wegaplein", "50000"))]);
}

#[test]
fn an_expense_larger_than_the_remaining_budget_by_one_cent_is_rejected() {
    fund()
        .given(vec![established(), allocated("oost-1223", "50000")])
        .when(FundCommand::RecordExpense(wegaplein("wegaplein", "50000.01")))
        .then_expect_error_message(
            "wijk oost-1223 has 50000.00 left from fund A21-182, so an expense of 50000.01 would overspend it",
        );
}

#[test]
fn an_expense_far_larger_than_the_remaining_budget_is_rejected() {
    fund()
        .given(vec![
            established(),
            allocated("oost-1223", "50000"),
            FundEvent::ExpenseRecorded(wegaplein("eerste", "30000")),
        ])
        .when(FundCommand::RecordExpense(wegaplein("tweede", "900000")))
        .then_expect_error_message(
            "wijk oost-1223 has 20000.00 left from fund A21-182, so an expense of 900000.00 would overspend it",
        );
}

#[test]
fn a_wijk_without_an_allocation_from_the_fund_cannot_spend_from_it() {
    let mut expense = wegaplein("kruisdam", "1");
    expense.wijk_id = wijk("centrum");
    fund()
        .given(vec![established(), allocated("oost-1223", "50000")])
        .when(FundCommand::RecordExpense(expense))
        .then_expect_error_message(
            "wijk centrum has 0.00 left from fund A21-182, so an expense of 1.00 would overspend it",
        );
}

#[test]
fn an_expense_for_an_unregistered_wijk_is_rejected() {
    let mut expense = wegaplein("nergens", "1");
    expense.wijk_id = wijk("atlantis");
    fund()
        .given(vec![established(), allocated("oost-1223", "50000")])
        .when(FundCommand::RecordExpense(expense))
        .then_expect_error_message("wijk atlantis is not registered; register it first with POST /api/v1/wijken");
}

#[test]
fn an_expense_booked_outside_the_fund_year_is_rejected() {
    let mut expense = wegaplein("wegaplein", "10");
    expense.booked_on = date("2021-12-31");
    fund()
        .given(vec![established(), allocated("oost-1223", "50000")])
        .when(FundCommand::RecordExpense(expense))
        .then_expect_error_message(
        "booking date 2021-12-31 is outside fund A21-182's year 2022; book it within 2022 or use a fund of that year",
    );
}

#[test]
fn recording_the_same_expense_twice_records_it_once() {
    fund()
        .given(vec![
            established(),
            allocated("oost-1223", "50000"),
            FundEvent::ExpenseRecorded(wegaplein("wegaplein", "100")),
        ])
        .when(FundCommand::RecordExpense(wegaplein("wegaplein", "100")))
        .then_expect_events(vec![]);
}

#[test]
fn an_expense_id_reused_with_other_details_is_refused() {
    fund()
        .given(vec![
            established(),
            allocated("oost-1223", "50000"),
            FundEvent::ExpenseRecorded(wegaplein("wegaplein", "100")),
        ])
        .when(FundCommand::RecordExpense(wegaplein("wegaplein", "200")))
        .then_expect_error_message("expense wegaplein already exists with other details; choose another expense_id");
}

#[test]
fn an_expense_id_used_in_another_fund_is_refused() {
    fund()
        .with_expense_in_other_fund("B22-001", wegaplein("wegaplein", "100"))
        .given(vec![established(), allocated("oost-1223", "50000")])
        .when(FundCommand::RecordExpense(wegaplein("wegaplein", "100")))
        .then_expect_error_message("expense wegaplein is already used in fund B22-001; choose another expense_id");
}

#[test]
fn an_expense_of_another_fund_cannot_be_reversed_here() {
    fund()
        .with_expense_in_other_fund("B22-001", wegaplein("elders", "100"))
        .given(vec![established(), allocated("oost-1223", "50000")])
        .when(FundCommand::ReverseExpense {
            booked_on: None,
            expense_id: ExpenseId::parse("elders").unwrap(),
            reason: text("?"),
            requested_on: date("2022-08-01"),
            post_closing: false,
        })
        .then_expect_error_message("expense elders is not recorded in fund A21-182");
}

/// The fund's state is what every command loads, so it must not grow with
/// the number of expenses: 100 or 999 expenses on the same day serialise to
/// snapshots of the same size (the totals have as many digits).
#[test]
fn the_fund_state_does_not_grow_with_its_expenses() {
    let snapshot_after = |expenses: usize| {
        let mut fund = Fund::default();
        fund.apply(established());
        fund.apply(allocated("oost-1223", "50000"));
        for i in 0..expenses {
            fund.apply(FundEvent::ExpenseRecorded(wegaplein(&format!("e-{i}"), "1")));
        }
        serde_json::to_string(&fund).unwrap().len()
    };
    assert_eq!(snapshot_after(100), snapshot_after(999));
}

#[test]
fn a_reversal_returns_the_money_and_references_the_original_event() {
    fund()
        .given(vec![
            established(),
            allocated("oost-1223", "50000"),
            FundEvent::ExpenseRecorded(wegaplein("dubbel", "100")),
        ])
        .when(FundCommand::ReverseExpense {
            booked_on: None,
            expense_id: ExpenseId::parse("dubbel").unwrap(),
            reason: text("dubbel geboekt"),
            requested_on: date("2022-07-01"),
            post_closing: false,
        })
        .then_expect_events(vec![FundEvent::ExpenseReversed {
            expense_id: ExpenseId::parse("dubbel").unwrap(),
            wijk_id: wijk("oost-1223"),
            amount: eur("100"),
            reason: text("dubbel geboekt"),
            booked_on: date("2022-07-01"),
            reverses_sequence: 3,
        }]);
}

#[test]
fn a_reversal_made_after_the_fund_year_is_booked_on_its_last_day() {
    let events = fund()
        .given(vec![
            established(),
            allocated("oost-1223", "50000"),
            FundEvent::ExpenseRecorded(wegaplein("dubbel", "100")),
        ])
        .when(FundCommand::ReverseExpense {
            booked_on: None,
            expense_id: ExpenseId::parse("dubbel").unwrap(),
            reason: text("dubbel geboekt"),
            requested_on: date("2023-02-01"),
            post_closing: false,
        })
        .inspect_result()
        .unwrap();
    assert_eq!(events[0].booked_on(), date("2022-12-31"));
}

#[test]
fn after_a_reversal_the_money_can_be_spent_again() {
    fund()
        .given(vec![
            established(),
            allocated("oost-1223", "100"),
            FundEvent::ExpenseRecorded(wegaplein("dubbel", "100")),
            FundEvent::ExpenseReversed {
                expense_id: ExpenseId::parse("dubbel").unwrap(),
                wijk_id: wijk("oost-1223"),
                amount: eur("100"),
                reason: text("dubbel geboekt"),
                booked_on: date("2022-07-01"),
                reverses_sequence: 3,
            },
        ])
        .when(FundCommand::RecordExpense(ExpenseDetails { booked_on: date("2022-07-15"), ..wegaplein("juist", "100") }))
        .then_expect_events(vec![FundEvent::ExpenseRecorded(ExpenseDetails {
            booked_on: date("2022-07-15"),
            ..wegaplein("juist", "100")
        })]);
}

#[test]
fn money_returned_by_a_reversal_cannot_be_spent_on_a_day_before_it_came_back() {
    fund()
        .given(vec![
            established(),
            allocated("oost-1223", "100"),
            FundEvent::ExpenseRecorded(wegaplein("dubbel", "100")),
            FundEvent::ExpenseReversed {
                expense_id: ExpenseId::parse("dubbel").unwrap(),
                wijk_id: wijk("oost-1223"),
                amount: eur("100"),
                reason: text("dubbel geboekt"),
                booked_on: date("2022-07-01"),
                reverses_sequence: 3,
            },
        ])
        .when(FundCommand::RecordExpense(wegaplein("juist", "100")))
        .then_expect_error_message(
            "wijk oost-1223 has 0.00 left from fund A21-182 on 2022-06-01, so an expense of 100.00 would overspend it; \
             the bookings dated 2022-07-01 (+100.00) make the difference: book it on or after 2022-07-01",
        );
}

#[test]
fn an_allocation_booked_before_the_fund_is_refused() {
    let mut terms = a21_182();
    terms.decision.adopted_on = date("2022-03-15");
    fund()
        .given(vec![FundEvent::FundEstablished { terms, booked_on: date("2022-03-15") }])
        .when(allocate("oost-1223", "10"))
        .then_expect_error_message(
            "booking date 2022-01-10 is before the fund's booking on 2022-03-15; book it on or after that day",
        );
}

#[test]
fn an_expense_cannot_be_reversed_twice() {
    fund()
        .given(vec![
            established(),
            allocated("oost-1223", "100"),
            FundEvent::ExpenseRecorded(wegaplein("dubbel", "100")),
            FundEvent::ExpenseReversed {
                expense_id: ExpenseId::parse("dubbel").unwrap(),
                wijk_id: wijk("oost-1223"),
                amount: eur("100"),
                reason: text("dubbel geboekt"),
                booked_on: date("2022-07-01"),
                reverses_sequence: 3,
            },
        ])
        .when(FundCommand::ReverseExpense {
            booked_on: None,
            expense_id: ExpenseId::parse("dubbel").unwrap(),
            reason: text("nog eens"),
            requested_on: date("2022-08-01"),
            post_closing: false,
        })
        .then_expect_error_message("expense dubbel has already been reversed");
}

#[test]
fn reversing_an_unknown_expense_is_refused() {
    fund()
        .given(vec![established()])
        .when(FundCommand::ReverseExpense {
            booked_on: None,
            expense_id: ExpenseId::parse("nooit").unwrap(),
            reason: text("?"),
            requested_on: date("2022-08-01"),
            post_closing: false,
        })
        .then_expect_error_message("expense nooit is not recorded in fund A21-182");
}

#[test]
fn every_event_posts_a_balanced_set() {
    let fund_id = FundId::parse("A21-182").unwrap();
    let events = vec![
        established(),
        allocated("oost-1223", "50000"),
        FundEvent::ExpenseRecorded(wegaplein("wegaplein", "50000")),
    ];
    for event in &events {
        let sum: Decimal = postings(&fund_id, event).iter().map(|p| p.amount).sum();
        assert_eq!(sum, Decimal::ZERO, "{}", event.event_type());
    }
}

#[test]
fn a_fund_established_event_of_version_1_is_upcast_to_version_2() {
    use cqrs_es::persist::SerializedEvent;
    let v1 = serde_json::json!({ "FundEstablished": serde_json::to_value(a21_182()).unwrap() });
    let stored = SerializedEvent::new(
        "A21-182".into(),
        1,
        "fund".into(),
        "FundEstablished".into(),
        "1.0".into(),
        v1,
        serde_json::json!({}),
    );
    let upcast = super::upcasters().into_iter().fold(stored, |e, u| {
        if u.can_upcast(&e.event_type, &e.event_version) {
            u.upcast(e)
        } else {
            e
        }
    });
    assert_eq!(upcast.event_version, "2.0.0");
    let event: FundEvent = serde_json::from_value(upcast.payload).unwrap();
    assert_eq!(event, established());
}

#[test]
fn an_allocation_without_a_booking_date_is_booked_on_the_day_the_funds_money_entered_the_ledger() {
    let mut fund = Fund::default();
    assert_eq!(fund.default_allocation_date(), None, "no fund, no default");
    fund.apply(established());
    assert_eq!(fund.default_allocation_date(), Some(date("2022-01-01")), "decision before the year");

    let mut terms = a21_182();
    terms.decision.adopted_on = date("2022-03-15");
    let mut adopted_in_year = Fund::default();
    adopted_in_year.apply(FundEvent::FundEstablished { terms, booked_on: date("2022-03-15") });
    assert_eq!(adopted_in_year.default_allocation_date(), Some(date("2022-03-15")), "decision in the year");
}

#[test]
fn an_expense_dated_before_the_money_arrives_names_the_day_judged_and_the_booking_that_makes_the_difference() {
    let late = FundEvent::BudgetAllocated {
        wijk_id: wijk("oost-1223"),
        amount: eur("50000"),
        reason: text("Raadsbesluit"),
        booked_on: date("2022-12-31"),
    };
    let mut expense = wegaplein("wegaplein", "50000");
    expense.booked_on = date("2022-09-15");
    fund().given(vec![established(), late]).when(FundCommand::RecordExpense(expense)).then_expect_error_message(
        "wijk oost-1223 has 0.00 left from fund A21-182 on 2022-09-15, so an expense of 50000.00 would overspend it; \
         the bookings dated 2022-12-31 (+50000.00) make the difference: book it on or after 2022-12-31",
    );
}

#[test]
fn a_back_dated_expense_that_a_later_booking_leaves_no_room_for_names_that_booking() {
    let mut later = wegaplein("later", "30000");
    later.booked_on = date("2022-10-01");
    let mut earlier = wegaplein("earlier", "30000");
    earlier.booked_on = date("2022-06-01");
    fund()
        .given(vec![established(), allocated("oost-1223", "50000"), FundEvent::ExpenseRecorded(later)])
        .when(FundCommand::RecordExpense(earlier))
        .then_expect_error_message(
            "wijk oost-1223 has 20000.00 left from fund A21-182 from 2022-06-01 on, so an expense of 30000.00 \
             would overspend it; it has 50000.00 on 2022-06-01, but the bookings dated 2022-10-01 (-30000.00) \
             leave 20000.00 on that day, and no day may go below zero",
        );
}

#[test]
fn a_transfer_dated_before_the_money_arrives_says_from_when_the_money_is_there() {
    let late = FundEvent::BudgetAllocated {
        wijk_id: wijk("oost-1223"),
        amount: eur("1000"),
        reason: text("Raadsbesluit"),
        booked_on: date("2022-05-01"),
    };
    let early = FundCommand::Transfer {
        from_wijk: wijk("oost-1223"),
        to_wijk: wijk("centrum"),
        amount: eur("400"),
        decision_reference: text("B&W 2022-114"),
        reason: text("herverdeling"),
        booked_on: date("2022-04-01"),
    };
    fund().given(vec![established(), late]).when(early).then_expect_error_message(
        "wijk oost-1223 has 0.00 available in fund A21-182 on 2022-04-01, so 400.00 cannot be transferred; \
         the bookings dated 2022-05-01 (+1000.00) make the difference: book it on or after 2022-05-01",
    );
}
