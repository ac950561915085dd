-- The audit log in several chains. With one chain, every transaction that
-- appends holds the one head row from its append to its commit, so
-- appends, and the verifications that make them, commit one at a time,
-- however many replicas there are. Each chain has a head row of its own;
-- a transaction appends to the chain its first event's user hashes to
-- (postgres.auditChains of them), and Seq comes from a sequence, taken
-- while the chain's head is held, so it increases along every chain.
-- The entries so far are chain 0.
ALTER TABLE audit ADD COLUMN chain smallint NOT NULL DEFAULT 0 CHECK (chain >= 0);
CREATE INDEX audit_chain ON audit (chain, seq);

CREATE TABLE audit_heads (
	chain smallint PRIMARY KEY CHECK (chain >= 0),
	seq   bigint NOT NULL,
	hash  bytea                        -- NULL before the chain's first entry
);
INSERT INTO audit_heads (chain, seq, hash) SELECT 0, seq, hash FROM audit_head;
INSERT INTO audit_heads (chain, seq, hash) SELECT c, 0, NULL FROM generate_series(1, 15) AS c;
DROP TABLE audit_head;

CREATE SEQUENCE audit_seq AS bigint;
SELECT setval('audit_seq', coalesce((SELECT max(seq) FROM audit), 0) + 1, false);
