-- outbox: the messages twofa sends (email now; SMS, push and webhooks
-- next). Each is written in the transaction of the change that causes it
-- and sent by a worker (twofa.Service.DeliverOutbox). payload is the
-- sealed body, NULL once the message is sent; key_id is its master key
-- (0 once cleared), for rotation. A claim leases a message to one worker
-- (FOR UPDATE SKIP LOCKED, so replicas never wait for each other's
-- claims): lease_token is that worker's, lease_until when the lease runs
-- out and the message is due again. seq is the order messages were added
-- in, which listings page by.
CREATE TABLE outbox (
	id          text COLLATE "C" PRIMARY KEY,
	seq         bigint GENERATED ALWAYS AS IDENTITY,
	tenant      text COLLATE "C" NOT NULL,
	user_id     text COLLATE "C" NOT NULL,
	channel     text NOT NULL,
	kind        text NOT NULL,
	payload     bytea,
	key_id      bigint NOT NULL,
	status      text NOT NULL CHECK (status IN ('queued', 'sent', 'failed')),
	attempts    integer NOT NULL DEFAULT 0,
	next_at     timestamptz NOT NULL,
	lease_token text,
	lease_until timestamptz,
	last_error  text NOT NULL DEFAULT '',
	created_at  timestamptz NOT NULL,
	sent_at     timestamptz
);
-- The claim: queued messages by when they are due.
CREATE INDEX outbox_due ON outbox (next_at, seq) WHERE status = 'queued';
-- Listings by status (every tenant's) and by tenant and status, newest
-- first; the counts of OutboxStats.
CREATE INDEX outbox_status ON outbox (status, seq);
CREATE INDEX outbox_tenant ON outbox (tenant, status, seq);
-- Listings of every message, and paging after a given one.
CREATE UNIQUE INDEX outbox_seq ON outbox (seq);
-- Messages that are done (sent, or failed for good), by when, for the
-- sweep that deletes old ones (DeleteMessages).
CREATE INDEX outbox_done ON outbox (sent_at) WHERE status <> 'queued';
