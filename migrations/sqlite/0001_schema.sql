-- The schema of a SQLite store as it stood when migrations became versioned.
-- Every statement is IF NOT EXISTS: a store made before then takes this as
-- its first version without change.

CREATE TABLE IF NOT EXISTS plans (
    plan_id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at INTEGER NOT NULL,
    day TEXT NOT NULL,
    model_version TEXT NOT NULL,
    data_hash TEXT NOT NULL,
    accounts INTEGER NOT NULL,
    summary TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS active_plan (
    id INTEGER PRIMARY KEY,
    plan_id INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS plan_items (
    plan_id INTEGER NOT NULL,
    account_id TEXT NOT NULL,
    person TEXT NOT NULL,
    timezone TEXT NOT NULL,
    currency TEXT NOT NULL,
    strategy TEXT NOT NULL,
    queue_rank INTEGER NOT NULL,
    priority INTEGER NOT NULL,
    p_pay REAL NOT NULL,
    expected_value INTEGER NOT NULL,
    reasons TEXT NOT NULL,
    blocked_by TEXT NOT NULL,
    propensity REAL NOT NULL,
    model_version TEXT NOT NULL,
    balance INTEGER NOT NULL,
    days_past_due INTEGER NOT NULL,
    risk REAL NOT NULL,
    calls_in_window INTEGER NOT NULL,
    call_from INTEGER,
    history TEXT NOT NULL,
    blocked_live TEXT,
    leased_by TEXT,
    lease_expires INTEGER,
    PRIMARY KEY (plan_id, account_id));
CREATE INDEX IF NOT EXISTS plan_items_queue ON plan_items (plan_id, strategy, queue_rank);
CREATE INDEX IF NOT EXISTS plan_items_person ON plan_items (plan_id, person);
CREATE TABLE IF NOT EXISTS people (
    plan_id INTEGER NOT NULL,
    person TEXT NOT NULL,
    calls_added INTEGER NOT NULL,
    PRIMARY KEY (plan_id, person));
CREATE TABLE IF NOT EXISTS actions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id TEXT NOT NULL,
    at INTEGER NOT NULL,
    at_text TEXT NOT NULL,
    channel TEXT NOT NULL,
    outcome TEXT NOT NULL,
    promised_amount TEXT,
    promised_on TEXT,
    agent_id TEXT,
    idempotency_key TEXT,
    request_hash TEXT,
    recorded_at INTEGER NOT NULL);
CREATE UNIQUE INDEX IF NOT EXISTS actions_idempotency ON actions (account_id, idempotency_key);
CREATE INDEX IF NOT EXISTS actions_account ON actions (account_id, id);
CREATE INDEX IF NOT EXISTS actions_at ON actions (at);

-- Kept when plan rows are pruned: what outcomes are built from.
CREATE TABLE IF NOT EXISTS decisions (
    plan_id INTEGER PRIMARY KEY,
    day TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    accounts INTEGER NOT NULL,
    activated INTEGER NOT NULL,
    data BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS decisions_day ON decisions (day);

-- A lease request's Idempotency-Key (per queue): what it leased, for a retry.
CREATE TABLE IF NOT EXISTS lease_requests (
    strategy TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    plan_id INTEGER NOT NULL,
    accounts TEXT NOT NULL,
    expires INTEGER NOT NULL,
    recorded_at INTEGER NOT NULL,
    PRIMARY KEY (strategy, idempotency_key));

-- Who did what: every write through the API and every run, in the
-- transaction of its effect. Nothing updates or deletes it (see below).
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at INTEGER NOT NULL,
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
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id TEXT NOT NULL,
    rule TEXT NOT NULL,
    at INTEGER NOT NULL,
    key_id TEXT NOT NULL,
    reason TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS unblocks_account ON unblocks (account_id, rule);

-- Who did what is append-only: updates and deletes are refused through any
-- connection; only dropping the triggers gets past.
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit BEGIN SELECT RAISE(ABORT, 'the audit table is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit BEGIN SELECT RAISE(ABORT, 'the audit table is append-only'); END;
