-- A tenant's webhook: every audit event of the tenant (or those of
-- webhook_events) is delivered through the outbox to webhook_url, signed
-- with the secret webhook_secret, sealed under the master key
-- webhook_key_id with the tenant as associated data. webhook_url and
-- webhook_secret are both NULL when the tenant has no webhook;
-- webhook_events is empty for every event. The webhook is written alone
-- (SetWebhook), like each other setting.
ALTER TABLE tenants
	ADD COLUMN webhook_url     text,
	ADD COLUMN webhook_secret  bytea,
	ADD COLUMN webhook_key_id  bigint NOT NULL DEFAULT 0,
	ADD COLUMN webhook_events  text[] NOT NULL DEFAULT '{}',
	ADD CONSTRAINT tenants_webhook_whole CHECK ((webhook_url IS NULL) = (webhook_secret IS NULL));
-- Webhook secrets by master key, for key rotation (SealedSecrets, CountSealed).
CREATE INDEX tenants_webhook_key_id ON tenants (webhook_key_id) WHERE webhook_secret IS NOT NULL;
