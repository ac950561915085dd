-- PostgreSQL's migration 0004 keeps the audit log in several chains, so
-- that replicas append in parallel. SQLite has one writer and keeps one
-- chain; this version exists so that both stores number their schemas
-- alike.
SELECT 1;
