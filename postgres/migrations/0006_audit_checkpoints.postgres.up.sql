-- audit_checkpoints: where walks of the audit log stopped, one row per
-- kind and chain (twofa.AuditCheckpoint). A walk resumes from the
-- "verified" checkpoint instead of the chain's beginning. mac is an
-- HMAC under the audit chain key, so a row written by hand is found out.
CREATE TABLE audit_checkpoints (
	kind   text COLLATE "C" NOT NULL,
	chain  smallint NOT NULL CHECK (chain >= 0),
	seq    bigint NOT NULL,
	hash   bytea NOT NULL,
	events bigint NOT NULL,
	time   timestamptz NOT NULL,
	mac    bytea NOT NULL,
	PRIMARY KEY (kind, chain)
);

-- A tenant's entries from a time (AuditFilter.Since), for the admin
-- console's audit page and chart.
CREATE INDEX audit_time ON audit (tenant, time);
