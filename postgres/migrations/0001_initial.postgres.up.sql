-- twofa on PostgreSQL. Times are timestamptz (microseconds, UTC in and
-- out), NULL for the zero time.Time. Identifiers use the "C" collation:
-- byte order, as Go compares strings, and cheaper indexes.

-- users: one row per user the store has seen; never deleted, so failure
-- counts and locks outlive the user's factors.
CREATE TABLE users (
	tenant       text COLLATE "C" NOT NULL,
	user_id      text COLLATE "C" NOT NULL,
	failures     integer NOT NULL DEFAULT 0,  -- consecutive failed attempts
	locked_until timestamptz,                 -- refuse attempts until then
	created_at   timestamptz,
	PRIMARY KEY (tenant, user_id)
);

-- devices: second factors. id is globally unique (twofa.NewID).
CREATE TABLE devices (
	id           text COLLATE "C" PRIMARY KEY,
	tenant       text COLLATE "C" NOT NULL,
	user_id      text COLLATE "C" NOT NULL,
	ord          bigint GENERATED ALWAYS AS IDENTITY, -- insertion order, breaks created_at ties
	kind         text NOT NULL,
	name         text NOT NULL,
	status       text NOT NULL CHECK (status IN ('pending', 'active')),
	secret       bytea,                -- sealed; the store never sees it in the clear
	key_id       bigint NOT NULL,      -- master key the secret is sealed under
	algorithm    smallint NOT NULL,
	digits       integer NOT NULL,
	period       integer NOT NULL,
	t0           bigint NOT NULL,
	last_step    bigint NOT NULL DEFAULT 0 CHECK (last_step >= 0),  -- compare-and-set by AcceptStep
	drift        integer NOT NULL DEFAULT 0,
	resync_step  bigint NOT NULL DEFAULT 0 CHECK (resync_step >= 0),
	resync_at    timestamptz,
	created_at   timestamptz,
	expires_at   timestamptz,          -- pending devices only
	confirmed_at timestamptz,
	last_used_at timestamptz,
	FOREIGN KEY (tenant, user_id) REFERENCES users
);
CREATE INDEX devices_user ON devices (tenant, user_id, created_at, ord);
CREATE INDEX devices_key_id ON devices (key_id);
CREATE INDEX devices_pending_expiry ON devices (expires_at) WHERE status = 'pending';

-- backup_codes: hashed single-use codes; used ones stay until replaced.
CREATE TABLE backup_codes (
	tenant     text COLLATE "C" NOT NULL,
	user_id    text COLLATE "C" NOT NULL,
	hash       bytea NOT NULL,
	created_at timestamptz,
	used_at    timestamptz,            -- NULL while unused
	PRIMARY KEY (tenant, user_id, hash),
	FOREIGN KEY (tenant, user_id) REFERENCES users
);

-- limits: event counts in fixed windows [window_start, window_end).
CREATE TABLE limits (
	key          text COLLATE "C" NOT NULL,
	window_start timestamptz NOT NULL,
	window_end   timestamptz NOT NULL,
	count        integer NOT NULL,
	PRIMARY KEY (key, window_start, window_end)
);
CREATE INDEX limits_window_end ON limits (window_end);

-- audit: the hash-chained log. ip, user_agent and detail are bytea because
-- they are free text from outside (an end user's User-Agent may hold a NUL
-- or invalid UTF-8, which text refuses) and the chain hashes exact bytes.
CREATE TABLE audit (
	seq        bigint PRIMARY KEY,
	time       timestamptz,
	type       text NOT NULL,
	tenant     text COLLATE "C" NOT NULL,
	user_id    text COLLATE "C" NOT NULL,
	device     text NOT NULL,
	factor     text NOT NULL,
	reason     text NOT NULL,
	actor      text NOT NULL,
	ip         bytea NOT NULL,
	user_agent bytea NOT NULL,
	detail     bytea NOT NULL,
	prev_hash  bytea,                  -- NULL for the first entry
	hash       bytea NOT NULL
);
CREATE INDEX audit_user ON audit (tenant, user_id, seq);

-- audit_head: the last entry's seq and hash. Writers lock this one row
-- (SELECT ... FOR UPDATE) to append, so the chain never forks.
CREATE TABLE audit_head (
	id   integer PRIMARY KEY CHECK (id = 1),
	seq  bigint NOT NULL,
	hash bytea                         -- NULL before the first entry
);
INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, NULL);

-- settings: sealed values by name, such as the audit chain's key.
CREATE TABLE settings (
	name   text COLLATE "C" PRIMARY KEY,
	value  bytea NOT NULL,
	key_id bigint NOT NULL             -- seal.KeyID of value, 0 if unparseable
);
CREATE INDEX settings_key_id ON settings (key_id);
