-- outbox: the messages twofa sends (email now; SMS, push and webhooks
-- next). Each is written in the transaction of the change that causes it
-- and sent by a worker (twofa.Service.DeliverOutbox). payload is the
-- sealed body, NULL once the message is sent; key_id is its master key
-- (0 once cleared), for rotation. A claim leases a message to one
-- worker: lease_token is that worker's, lease_until when the lease runs
-- out and the message is due again. seq is the rowid: the order messages
-- were added in, which listings page by.
CREATE TABLE outbox (
	seq         INTEGER PRIMARY KEY,
	id          TEXT    NOT NULL UNIQUE,
	tenant      TEXT    NOT NULL,
	user_id     TEXT    NOT NULL,
	channel     TEXT    NOT NULL,
	kind        TEXT    NOT NULL,
	payload     BLOB,
	key_id      INTEGER NOT NULL,
	status      TEXT    NOT NULL CHECK (status IN ('queued', 'sent', 'failed')),
	attempts    INTEGER NOT NULL DEFAULT 0,
	next_at     INTEGER NOT NULL,
	lease_token TEXT,
	lease_until INTEGER,
	last_error  TEXT    NOT NULL DEFAULT '',
	created_at  INTEGER NOT NULL,
	sent_at     INTEGER
) STRICT;
-- The claim: queued messages by when they are due.
CREATE INDEX outbox_due ON outbox (next_at, seq) WHERE status = 'queued';
-- Listings by status (every tenant's) and by tenant and status, newest
-- first; the counts of OutboxStats.
CREATE INDEX outbox_status ON outbox (status, seq);
CREATE INDEX outbox_tenant ON outbox (tenant, status, seq);
-- Messages that are done (sent, or failed for good), by when, for the
-- sweep that deletes old ones (DeleteMessages).
CREATE INDEX outbox_done ON outbox (sent_at) WHERE status <> 'queued';
