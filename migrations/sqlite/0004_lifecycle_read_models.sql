-- Read models for the budget lifecycle (commitments, settlement, transfers,
-- year-end close). Read models are derived data: this migration replaces the
-- per-line totals with balances per account and wipes every read model, so
-- the projector rebuilds them all from position zero at the next start.

DROP TABLE rm_budget_lines;

-- The balance of each wijk account of each fund, from the postings, plus two
-- running totals that are not balances: 'allocated' and 'transferred'.
CREATE TABLE rm_balances
(
    wijk_id TEXT NOT NULL,
    fund_id TEXT NOT NULL,
    year    INTEGER NOT NULL,
    kind    TEXT NOT NULL,
    cents   INTEGER NOT NULL,
    PRIMARY KEY (wijk_id, fund_id, kind)
) STRICT;
CREATE INDEX rm_balances_year ON rm_balances (year, wijk_id);

CREATE TABLE rm_commitments
(
    commitment_id      TEXT NOT NULL PRIMARY KEY,
    fund_id            TEXT NOT NULL,
    wijk_id            TEXT NOT NULL,
    amount_cents       INTEGER NOT NULL,
    paid_cents         INTEGER NOT NULL,
    settled_cents      INTEGER,
    owed_cents         INTEGER NOT NULL,
    status             TEXT NOT NULL,
    initiative         TEXT NOT NULL,
    applicant          TEXT NOT NULL,
    theme              TEXT NOT NULL,
    decision_reference TEXT NOT NULL,
    decided_on         TEXT NOT NULL,
    grant_rule         TEXT NOT NULL,
    booked_on          TEXT NOT NULL,
    last_paid_on       TEXT,
    position           INTEGER NOT NULL
) STRICT;
CREATE INDEX rm_commitments_status ON rm_commitments (status, decided_on);

-- The close statement of each fund, one line per wijk, frozen at close.
CREATE TABLE rm_close_lines
(
    fund_id            TEXT NOT NULL,
    wijk_id            TEXT NOT NULL,
    allocated_cents    INTEGER NOT NULL,
    transferred_cents  INTEGER NOT NULL,
    spent_cents        INTEGER NOT NULL,
    committed_cents    INTEGER NOT NULL,
    receivable_cents   INTEGER NOT NULL,
    lapsed_cents       INTEGER NOT NULL,
    carried_over_cents INTEGER NOT NULL,
    PRIMARY KEY (fund_id, wijk_id)
) STRICT;

ALTER TABLE rm_funds ADD COLUMN carried_over_from TEXT;
ALTER TABLE rm_funds ADD COLUMN closed_on TEXT;
ALTER TABLE rm_funds ADD COLUMN close_decision TEXT;
ALTER TABLE rm_funds ADD COLUMN carry_over_fund TEXT;
ALTER TABLE rm_funds ADD COLUMN unallocated_lapsed_cents INTEGER;
ALTER TABLE rm_postings ADD COLUMN commitment_id TEXT;
ALTER TABLE rm_expenses ADD COLUMN commitment_id TEXT;

DELETE FROM rm_wijken;
DELETE FROM rm_funds;
DELETE FROM rm_postings;
DELETE FROM rm_expenses;
UPDATE projector_checkpoints SET position = 0;
