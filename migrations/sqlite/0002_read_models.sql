-- Read models written by the projector (projections/). They are derived from
-- the event log and may be wiped and rebuilt at any time (`wijkbudget rebuild`).

-- How far each projector has read the log. Written in the same transaction
-- as the read-model rows it covers.
CREATE TABLE projector_checkpoints
(
    name     TEXT NOT NULL PRIMARY KEY,
    position INTEGER NOT NULL
) STRICT;
INSERT INTO projector_checkpoints (name, position) VALUES ('read_models', 0);

CREATE TABLE rm_wijken
(
    wijk_id  TEXT NOT NULL PRIMARY KEY,
    name     TEXT NOT NULL,
    position INTEGER NOT NULL
) STRICT;

CREATE TABLE rm_funds
(
    fund_id            TEXT NOT NULL PRIMARY KEY,
    year               INTEGER NOT NULL,
    kind               TEXT NOT NULL,
    name               TEXT NOT NULL,
    amount_cents       INTEGER NOT NULL,
    decision_reference TEXT NOT NULL,
    adopted_on         TEXT NOT NULL,
    purpose            TEXT NOT NULL,
    booked_on          TEXT NOT NULL,
    position           INTEGER NOT NULL
) STRICT;

-- One row per wijk and fund: the current totals, kept up to date event by event.
CREATE TABLE rm_budget_lines
(
    wijk_id         TEXT NOT NULL,
    fund_id         TEXT NOT NULL,
    year            INTEGER NOT NULL,
    allocated_cents INTEGER NOT NULL,
    spent_cents     INTEGER NOT NULL,
    PRIMARY KEY (wijk_id, fund_id)
) STRICT;
CREATE INDEX rm_budget_lines_year ON rm_budget_lines (year, wijk_id);

-- Every posting of every event: the journal the audit trail and as-of
-- questions are answered from.
CREATE TABLE rm_postings
(
    position     INTEGER NOT NULL,
    line         INTEGER NOT NULL,
    event_id     TEXT NOT NULL,
    event_type   TEXT NOT NULL,
    fund_id      TEXT NOT NULL,
    wijk_id      TEXT,
    account_kind TEXT NOT NULL,
    account      TEXT NOT NULL,
    amount_cents INTEGER NOT NULL,
    year         INTEGER NOT NULL,
    booked_on    TEXT NOT NULL,
    recorded_at  TEXT NOT NULL,
    actor        TEXT NOT NULL,
    role         TEXT NOT NULL,
    reason       TEXT,
    reference    TEXT,
    initiative   TEXT,
    theme        TEXT,
    expense_id   TEXT,
    PRIMARY KEY (position, line)
) STRICT;
CREATE INDEX rm_postings_wijk ON rm_postings (wijk_id, position);
CREATE INDEX rm_postings_fund ON rm_postings (fund_id, position);

CREATE TABLE rm_expenses
(
    expense_id        TEXT NOT NULL PRIMARY KEY,
    fund_id           TEXT NOT NULL,
    wijk_id           TEXT NOT NULL,
    amount_cents      INTEGER NOT NULL,
    initiative        TEXT NOT NULL,
    theme             TEXT NOT NULL,
    booked_on         TEXT NOT NULL,
    reference         TEXT NOT NULL,
    position          INTEGER NOT NULL,
    event_id          TEXT NOT NULL,
    reversed_position INTEGER,
    reversal_reason   TEXT
) STRICT;
CREATE INDEX rm_expenses_fund ON rm_expenses (fund_id, position);
