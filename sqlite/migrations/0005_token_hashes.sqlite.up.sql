-- Used links are swept (DeleteStaleLinks), as expired ones are by
-- links_expires_at.
CREATE INDEX links_used ON links (used_at) WHERE used_at IS NOT NULL;
