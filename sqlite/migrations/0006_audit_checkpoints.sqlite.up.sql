-- audit_checkpoints: where walks of the audit log stopped, one row per
-- kind and chain (twofa.AuditCheckpoint). A walk resumes from the
-- "verified" checkpoint instead of the chain's beginning. mac is an
-- HMAC under the audit chain key, so a row written by hand is found out.
CREATE TABLE audit_checkpoints (
	kind   TEXT    NOT NULL,
	chain  INTEGER NOT NULL CHECK (chain >= 0),
	seq    INTEGER NOT NULL,
	hash   BLOB    NOT NULL,
	events INTEGER NOT NULL,
	time   INTEGER NOT NULL,
	mac    BLOB    NOT NULL,
	PRIMARY KEY (kind, chain)
) STRICT, WITHOUT ROWID;

-- A tenant's entries from a time (AuditFilter.Since), for the admin
-- console's audit page and chart.
CREATE INDEX audit_time ON audit (tenant, time);
