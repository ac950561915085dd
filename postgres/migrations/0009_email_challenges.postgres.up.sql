-- Email as a factor, and the challenges of every delivered factor.

-- An email device keeps its address sealed in secret, and a keyed blind
-- index of it, so that a user cannot hold one address twice.
ALTER TABLE devices ADD COLUMN address_index bytea;
CREATE UNIQUE INDEX devices_address ON devices (tenant, user_id, address_index) WHERE address_index IS NOT NULL;

-- Whether a restricted factor (email) may be a user's only factor.
ALTER TABLE tenants ADD COLUMN restricted_only boolean NOT NULL DEFAULT false;

-- challenges: a code sent to a device, to be typed back. attempts counts
-- wrong codes (all codes together); consumed_at is set, with a
-- compare-and-set, by the right one.
CREATE TABLE challenges (
	id           text COLLATE "C" PRIMARY KEY,
	tenant       text COLLATE "C" NOT NULL,
	user_id      text COLLATE "C" NOT NULL,
	device_id    text COLLATE "C" NOT NULL,
	factor       text NOT NULL,
	purpose      text NOT NULL,
	attempts     integer NOT NULL DEFAULT 0,
	sends        integer NOT NULL DEFAULT 1,
	last_sent_at timestamptz NOT NULL,
	created_at   timestamptz NOT NULL,
	expires_at   timestamptz NOT NULL,
	consumed_at  timestamptz,
	FOREIGN KEY (tenant, user_id) REFERENCES users (tenant, user_id)
);
CREATE INDEX challenges_user ON challenges (tenant, user_id);
CREATE INDEX challenges_expiry ON challenges (expires_at);

-- challenge_codes: the live codes of a challenge, as keyed hashes; seq
-- orders them, oldest first.
CREATE TABLE challenge_codes (
	challenge_id text COLLATE "C" NOT NULL REFERENCES challenges (id) ON DELETE CASCADE,
	seq          integer NOT NULL,
	hash         bytea NOT NULL,
	expires_at   timestamptz NOT NULL,
	PRIMARY KEY (challenge_id, seq)
);
