-- twofa schema for SQLite. Times are INTEGER Unix microseconds, NULL for
-- the zero time.Time; TOTP steps are INTEGER (uint64 steps below 2^63).
-- Tables are STRICT so that a wrongly typed value fails loudly.

-- users: one row per (tenant, user) the store has seen, created by the
-- first CreateDevice. failures and locked_until implement the lockout.
CREATE TABLE users (
	tenant       TEXT    NOT NULL,
	user_id      TEXT    NOT NULL,
	failures     INTEGER NOT NULL DEFAULT 0,
	locked_until INTEGER,
	created_at   INTEGER,
	PRIMARY KEY (tenant, user_id)
) STRICT, WITHOUT ROWID;

-- devices: second factors. secret is the sealed blob, key_id the master
-- key it is sealed under (for rotation). last_step is compared-and-set
-- by AcceptStep. Rows keep their rowid so that ties in created_at keep
-- insertion order.
CREATE TABLE devices (
	id           TEXT    NOT NULL PRIMARY KEY,
	tenant       TEXT    NOT NULL,
	user_id      TEXT    NOT NULL,
	kind         TEXT    NOT NULL,
	name         TEXT    NOT NULL,
	status       TEXT    NOT NULL CHECK (status IN ('pending', 'active')),
	secret       BLOB    NOT NULL,
	key_id       INTEGER NOT NULL,
	algorithm    INTEGER NOT NULL,
	digits       INTEGER NOT NULL,
	period       INTEGER NOT NULL,
	t0           INTEGER NOT NULL,
	last_step    INTEGER NOT NULL DEFAULT 0,
	drift        INTEGER NOT NULL DEFAULT 0,
	resync_step  INTEGER NOT NULL DEFAULT 0,
	resync_at    INTEGER,
	created_at   INTEGER,
	expires_at   INTEGER,
	confirmed_at INTEGER,
	last_used_at INTEGER,
	FOREIGN KEY (tenant, user_id) REFERENCES users (tenant, user_id)
) STRICT;
CREATE INDEX devices_user ON devices (tenant, user_id);
CREATE INDEX devices_key ON devices (key_id);
CREATE INDEX devices_pending_expiry ON devices (expires_at) WHERE status = 'pending';

-- backup_codes: hashes of single-use codes; used_at is set when spent.
CREATE TABLE backup_codes (
	tenant     TEXT    NOT NULL,
	user_id    TEXT    NOT NULL,
	hash       BLOB    NOT NULL,
	created_at INTEGER,
	used_at    INTEGER,
	PRIMARY KEY (tenant, user_id, hash),
	FOREIGN KEY (tenant, user_id) REFERENCES users (tenant, user_id)
) STRICT, WITHOUT ROWID;

-- limits: fixed-window counters. window_end lets a sweep delete old
-- windows whatever their length.
CREATE TABLE limits (
	key          TEXT    NOT NULL,
	window_start INTEGER NOT NULL,
	window_end   INTEGER NOT NULL,
	count        INTEGER NOT NULL,
	PRIMARY KEY (key, window_start)
) STRICT, WITHOUT ROWID;
CREATE INDEX limits_end ON limits (window_end);

-- audit: the hash-chained log. seq is the rowid, so the head is the last
-- row of the table's b-tree; writers are serialised by SQLite's write
-- lock, which is what keeps the chain from forking.
CREATE TABLE audit (
	seq        INTEGER PRIMARY KEY,
	time       INTEGER NOT NULL,
	type       TEXT    NOT NULL,
	tenant     TEXT    NOT NULL,
	user_id    TEXT    NOT NULL,
	device     TEXT    NOT NULL,
	factor     TEXT    NOT NULL,
	reason     TEXT    NOT NULL,
	actor      TEXT    NOT NULL,
	ip         TEXT    NOT NULL,
	user_agent TEXT    NOT NULL,
	detail     TEXT    NOT NULL,
	prev_hash  BLOB    NOT NULL,
	hash       BLOB    NOT NULL
) STRICT;
CREATE INDEX audit_user ON audit (tenant, user_id, seq);

-- settings: sealed values the Service keeps (such as the audit key);
-- key_id is the sealing key's ID, 0 when the value is not a sealed blob.
CREATE TABLE settings (
	name   TEXT    NOT NULL PRIMARY KEY,
	value  BLOB    NOT NULL,
	key_id INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
