-- Email as a factor, and the challenges of every delivered factor.

-- An email device keeps its address sealed in secret, and a keyed blind
-- index of it, so that a user cannot hold one address twice.
ALTER TABLE devices ADD COLUMN address_index BLOB;
CREATE UNIQUE INDEX devices_address ON devices (tenant, user_id, address_index) WHERE address_index IS NOT NULL;

-- Whether a restricted factor (email) may be a user's only factor.
ALTER TABLE tenants ADD COLUMN restricted_only INTEGER NOT NULL DEFAULT 0 CHECK (restricted_only IN (0, 1));

-- challenges: a code sent to a device, to be typed back. attempts counts
-- wrong codes (all codes together); consumed_at is set, with a
-- compare-and-set, by the right one.
CREATE TABLE challenges (
	id           TEXT    NOT NULL PRIMARY KEY,
	tenant       TEXT    NOT NULL,
	user_id      TEXT    NOT NULL,
	device_id    TEXT    NOT NULL,
	factor       TEXT    NOT NULL,
	purpose      TEXT    NOT NULL,
	attempts     INTEGER NOT NULL DEFAULT 0,
	sends        INTEGER NOT NULL DEFAULT 1,
	last_sent_at INTEGER NOT NULL,
	created_at   INTEGER NOT NULL,
	expires_at   INTEGER NOT NULL,
	consumed_at  INTEGER,
	FOREIGN KEY (tenant, user_id) REFERENCES users (tenant, user_id)
) STRICT;
CREATE INDEX challenges_user ON challenges (tenant, user_id);
CREATE INDEX challenges_expiry ON challenges (expires_at);

-- challenge_codes: the live codes of a challenge, as keyed hashes; seq
-- orders them, oldest first.
CREATE TABLE challenge_codes (
	challenge_id TEXT    NOT NULL REFERENCES challenges (id) ON DELETE CASCADE,
	seq          INTEGER NOT NULL,
	hash         BLOB    NOT NULL,
	expires_at   INTEGER NOT NULL,
	PRIMARY KEY (challenge_id, seq)
) STRICT, WITHOUT ROWID;
