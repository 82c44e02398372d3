-- The schema of a PostgreSQL store as it stood when migrations became versioned.
-- Every statement is IF NOT EXISTS or replaces what it finds: a store made
-- before then takes this as its first version without change.

CREATE TABLE IF NOT EXISTS plans (
    plan_id BIGSERIAL PRIMARY KEY,
    created_at BIGINT NOT NULL,
    day TEXT NOT NULL,
    model_version TEXT NOT NULL,
    data_hash TEXT NOT NULL,
    accounts BIGINT NOT NULL,
    summary TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS active_plan (
    id BIGINT PRIMARY KEY,
    plan_id BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS plan_items (
    plan_id BIGINT NOT NULL,
    account_id TEXT NOT NULL,
    person TEXT NOT NULL,
    timezone TEXT NOT NULL,
    currency TEXT NOT NULL,
    strategy TEXT NOT NULL,
    queue_rank BIGINT NOT NULL,
    priority BIGINT NOT NULL,
    p_pay DOUBLE PRECISION NOT NULL,
    expected_value BIGINT NOT NULL,
    reasons TEXT NOT NULL,
    blocked_by TEXT NOT NULL,
    propensity DOUBLE PRECISION NOT NULL,
    model_version TEXT NOT NULL,
    balance BIGINT NOT NULL,
    days_past_due BIGINT NOT NULL,
    risk DOUBLE PRECISION NOT NULL,
    calls_in_window BIGINT NOT NULL,
    call_from BIGINT,
    history TEXT NOT NULL,
    blocked_live TEXT,
    leased_by TEXT,
    lease_expires BIGINT,
    PRIMARY KEY (plan_id, account_id));
CREATE INDEX IF NOT EXISTS plan_items_queue ON plan_items (plan_id, strategy, queue_rank);
CREATE INDEX IF NOT EXISTS plan_items_person ON plan_items (plan_id, person);
CREATE TABLE IF NOT EXISTS people (
    plan_id BIGINT NOT NULL,
    person TEXT NOT NULL,
    calls_added BIGINT NOT NULL,
    PRIMARY KEY (plan_id, person));
CREATE TABLE IF NOT EXISTS actions (
    id BIGSERIAL PRIMARY KEY,
    account_id TEXT NOT NULL,
    at BIGINT NOT NULL,
    at_text TEXT NOT NULL,
    channel TEXT NOT NULL,
    outcome TEXT NOT NULL,
    promised_amount TEXT,
    promised_on TEXT,
    agent_id TEXT,
    idempotency_key TEXT,
    request_hash TEXT,
    recorded_at BIGINT NOT NULL);
CREATE UNIQUE INDEX IF NOT EXISTS actions_idempotency ON actions (account_id, idempotency_key);
CREATE INDEX IF NOT EXISTS actions_account ON actions (account_id, id);
CREATE INDEX IF NOT EXISTS actions_at ON actions (at);

-- Kept when plan rows are pruned: what outcomes are built from.
CREATE TABLE IF NOT EXISTS decisions (
    plan_id BIGINT PRIMARY KEY,
    day TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    accounts BIGINT NOT NULL,
    activated BIGINT NOT NULL,
    data BYTEA NOT NULL);
CREATE INDEX IF NOT EXISTS decisions_day ON decisions (day);

-- A lease request's Idempotency-Key (per queue): what it leased, for a retry.
CREATE TABLE IF NOT EXISTS lease_requests (
    strategy TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    plan_id BIGINT NOT NULL,
    accounts TEXT NOT NULL,
    expires BIGINT NOT NULL,
    recorded_at BIGINT NOT NULL,
    PRIMARY KEY (strategy, idempotency_key));

-- Who did what: every write through the API and every run, in the
-- transaction of its effect. Nothing updates or deletes it (see below).
CREATE TABLE IF NOT EXISTS audit (
    id BIGSERIAL PRIMARY KEY,
    at BIGINT NOT NULL,
    key_id TEXT NOT NULL,
    role TEXT NOT NULL,
    agent_id TEXT,
    action TEXT NOT NULL,
    account_id TEXT,
    detail TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS audit_account ON audit (account_id, id);
CREATE INDEX IF NOT EXISTS audit_at ON audit (at);

-- Blocks lifted by a manager: the API's actions of the rule recorded
-- up to `at` no longer block the account, now or in later plans.
CREATE TABLE IF NOT EXISTS unblocks (
    id BIGSERIAL PRIMARY KEY,
    account_id TEXT NOT NULL,
    rule TEXT NOT NULL,
    at BIGINT NOT NULL,
    key_id TEXT NOT NULL,
    reason TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS unblocks_account ON unblocks (account_id, rule);

-- Who did what is append-only: updates, deletes and truncation are
-- refused through any connection; only the owner dropping the triggers
-- gets past.
CREATE OR REPLACE FUNCTION prioritize_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $body$ BEGIN RAISE EXCEPTION 'the audit table is append-only'; END $body$;
DROP TRIGGER IF EXISTS audit_append_only ON audit;
CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE ON audit FOR EACH ROW EXECUTE FUNCTION prioritize_audit_append_only();
DROP TRIGGER IF EXISTS audit_no_truncate ON audit;
CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit FOR EACH STATEMENT EXECUTE FUNCTION prioritize_audit_append_only();
