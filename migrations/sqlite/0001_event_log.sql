-- The event log. Append-only: rows are inserted by the service and never
-- updated or deleted (triggers below refuse it). An applied migration is
-- never edited: add a new file.

CREATE TABLE events
(
    position       INTEGER NOT NULL PRIMARY KEY CHECK (position >= 1),
    event_id       TEXT    NOT NULL UNIQUE,
    recorded_at    TEXT    NOT NULL,
    aggregate_type TEXT    NOT NULL,
    aggregate_id   TEXT    NOT NULL,
    sequence       INTEGER NOT NULL CHECK (sequence >= 1),
    event_type     TEXT    NOT NULL,
    event_version  TEXT    NOT NULL,
    payload        TEXT    NOT NULL,
    metadata       TEXT    NOT NULL,
    -- SHA-256 over the previous hash and this event's canonical bytes (ARCHITECTURE.md).
    hash           TEXT    NOT NULL,
    CONSTRAINT events_stream_sequence UNIQUE (aggregate_type, aggregate_id, sequence)
) STRICT;

CREATE TABLE client_ids
(
    kind         TEXT    NOT NULL,
    id           TEXT    NOT NULL,
    aggregate_id TEXT    NOT NULL,
    position     INTEGER NOT NULL,
    PRIMARY KEY (kind, id)
) STRICT;

CREATE TABLE idempotency_keys
(
    key            TEXT    NOT NULL PRIMARY KEY,
    fingerprint    TEXT    NOT NULL,
    first_position INTEGER NOT NULL,
    last_position  INTEGER NOT NULL
) STRICT;

CREATE TABLE snapshots
(
    aggregate_type   TEXT    NOT NULL,
    aggregate_id     TEXT    NOT NULL,
    last_sequence    INTEGER NOT NULL CHECK (last_sequence >= 0),
    current_snapshot INTEGER NOT NULL CHECK (current_snapshot >= 0),
    payload          TEXT    NOT NULL,
    PRIMARY KEY (aggregate_type, aggregate_id)
) STRICT;

CREATE TRIGGER events_no_update BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'table events is append-only: UPDATE is refused; record a correction event instead'); END;
CREATE TRIGGER events_no_delete BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'table events is append-only: DELETE is refused; record a correction event instead'); END;
CREATE TRIGGER client_ids_no_update BEFORE UPDATE ON client_ids
BEGIN SELECT RAISE(ABORT, 'table client_ids is append-only: UPDATE is refused'); END;
CREATE TRIGGER client_ids_no_delete BEFORE DELETE ON client_ids
BEGIN SELECT RAISE(ABORT, 'table client_ids is append-only: DELETE is refused'); END;
CREATE TRIGGER idempotency_keys_no_update BEFORE UPDATE ON idempotency_keys
BEGIN SELECT RAISE(ABORT, 'table idempotency_keys is append-only: UPDATE is refused'); END;
CREATE TRIGGER idempotency_keys_no_delete BEFORE DELETE ON idempotency_keys
BEGIN SELECT RAISE(ABORT, 'table idempotency_keys is append-only: DELETE is refused'); END;
