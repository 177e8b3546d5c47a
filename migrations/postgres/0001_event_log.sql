-- The event log. Append-only: rows are inserted by the service and never
-- updated or deleted (triggers below refuse it; the service role needs only
-- INSERT and SELECT). An applied migration is never edited: add a new file.

CREATE TABLE events
(
    position       BIGINT      NOT NULL PRIMARY KEY CHECK (position >= 1),
    event_id       TEXT        NOT NULL UNIQUE,
    recorded_at    TIMESTAMPTZ NOT NULL,
    aggregate_type TEXT        NOT NULL,
    aggregate_id   TEXT        NOT NULL,
    sequence       BIGINT      NOT NULL CHECK (sequence >= 1),
    event_type     TEXT        NOT NULL,
    event_version  TEXT        NOT NULL,
    -- `json`, not `jsonb`: the text is kept exactly as written.
    payload        JSON        NOT NULL,
    metadata       JSON        NOT NULL,
    -- SHA-256 over the previous hash and this event's canonical bytes (ARCHITECTURE.md).
    hash           TEXT        NOT NULL,
    CONSTRAINT events_stream_sequence UNIQUE (aggregate_type, aggregate_id, sequence)
);

-- Client-chosen ids that must be unique across aggregates (expense ids),
-- claimed in the same transaction as the events that introduce them.
CREATE TABLE client_ids
(
    kind         TEXT   NOT NULL,
    id           TEXT   NOT NULL,
    aggregate_id TEXT   NOT NULL,
    position     BIGINT NOT NULL,
    PRIMARY KEY (kind, id)
);

-- Idempotency keys of commands that stored events, claimed in the same
-- transaction as those events, so a retry can never book money twice.
CREATE TABLE idempotency_keys
(
    key            TEXT   NOT NULL PRIMARY KEY,
    fingerprint    TEXT   NOT NULL,
    first_position BIGINT NOT NULL,
    last_position  BIGINT NOT NULL
);

-- Snapshots are a cache of aggregate state; they may be dropped and rebuilt.
CREATE TABLE snapshots
(
    aggregate_type   TEXT   NOT NULL,
    aggregate_id     TEXT   NOT NULL,
    last_sequence    BIGINT NOT NULL CHECK (last_sequence >= 0),
    current_snapshot BIGINT NOT NULL CHECK (current_snapshot >= 0),
    payload          JSON   NOT NULL,
    PRIMARY KEY (aggregate_type, aggregate_id)
);

CREATE FUNCTION wijkbudget_refuse_change() RETURNS trigger
    LANGUAGE plpgsql AS
$$
BEGIN
    RAISE EXCEPTION 'table % is append-only: % is refused; record a correction event instead', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION wijkbudget_refuse_change();
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION wijkbudget_refuse_change();
CREATE TRIGGER client_ids_append_only BEFORE UPDATE OR DELETE ON client_ids
    FOR EACH ROW EXECUTE FUNCTION wijkbudget_refuse_change();
CREATE TRIGGER client_ids_no_truncate BEFORE TRUNCATE ON client_ids
    FOR EACH STATEMENT EXECUTE FUNCTION wijkbudget_refuse_change();
CREATE TRIGGER idempotency_keys_append_only BEFORE UPDATE OR DELETE ON idempotency_keys
    FOR EACH ROW EXECUTE FUNCTION wijkbudget_refuse_change();
CREATE TRIGGER idempotency_keys_no_truncate BEFORE TRUNCATE ON idempotency_keys
    FOR EACH STATEMENT EXECUTE FUNCTION wijkbudget_refuse_change();
