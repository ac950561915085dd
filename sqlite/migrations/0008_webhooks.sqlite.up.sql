-- A tenant's webhook: every audit event of the tenant (or those of
-- webhook_events) is delivered through the outbox to webhook_url, signed
-- with the secret webhook_secret, sealed under the master key
-- webhook_key_id with the tenant as associated data. webhook_url and
-- webhook_secret are both NULL when the tenant has no webhook;
-- webhook_events is a JSON array of event types, '[]' for every event.
-- The webhook is written alone (SetWebhook), like each other setting.
ALTER TABLE tenants ADD COLUMN webhook_url TEXT;
ALTER TABLE tenants ADD COLUMN webhook_secret BLOB
	CHECK ((webhook_url IS NULL) = (webhook_secret IS NULL));
ALTER TABLE tenants ADD COLUMN webhook_key_id INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tenants ADD COLUMN webhook_events TEXT NOT NULL DEFAULT '[]'
	CHECK (json_valid(webhook_events) AND json_type(webhook_events) = 'array');
-- Webhook secrets by master key, for key rotation (SealedSecrets, CountSealed).
CREATE INDEX tenants_webhook_key_id ON tenants (webhook_key_id) WHERE webhook_secret IS NOT NULL;
