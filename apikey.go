package twofa

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"fmt"
	"strings"
	"sync"
	"time"
)

// Scope is what an API key may do.
type Scope string

// API key scopes: an application verifies and manages its users' factors;
// an administrator may also unlock users and read the audit log.
const (
	ScopeApp   Scope = "app"
	ScopeAdmin Scope = "admin"
)

// APIKey authenticates a calling application or an administrator of one
// tenant. The key itself is shown once when made; only its SHA-256 hash is
// stored (it has 256 random bits, so a plain hash resists any guessing).
type APIKey struct {
	ID         string
	Tenant     string
	Name       string
	Scope      Scope
	Hash       []byte
	CreatedAt  time.Time
	RevokedAt  time.Time
	LastUsedAt time.Time
}

// APIKeyStore keeps API keys.
type APIKeyStore interface {
	// CreateAPIKey stores a new key.
	CreateAPIKey(ctx context.Context, k *APIKey, e *AuditEvent) error
	// APIKeyByHash returns the unrevoked key with this hash. ErrNotFound.
	APIKeyByHash(ctx context.Context, hash []byte) (*APIKey, error)
	// APIKeys lists a tenant's keys, or every tenant's for "", revoked
	// ones included, oldest first.
	APIKeys(ctx context.Context, tenant string) ([]*APIKey, error)
	// RevokeAPIKey revokes a key by ID. ErrNotFound. The event, if any,
	// is given the key's tenant before it is linked.
	RevokeAPIKey(ctx context.Context, id string, now time.Time, e *AuditEvent) error
}

// apiKeyPrefix marks twofa keys, so secret scanners can find leaked ones.
const apiKeyPrefix = "tfa_"

var keyEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// Audit events of API keys.
const (
	EventAPIKeyCreated EventType = "api_key_created"
	EventAPIKeyRevoked EventType = "api_key_revoked"
)

// CreateAPIKey makes a key for a tenant and returns it with the secret to
// hand to its holder, once.
func (s *Service) CreateAPIKey(ctx context.Context, tenant, name string, scope Scope) (string, *APIKey, error) {
	if err := validateID("tenant", tenant); err != nil {
		return "", nil, err
	}
	name, err := cleanName("key name", name, 64)
	if err != nil {
		return "", nil, err
	}
	if name == "" {
		return "", nil, Errorf(EINVALID, "key name is empty")
	}
	if scope != ScopeApp && scope != ScopeAdmin {
		return "", nil, Errorf(EINVALID, "scope must be app or admin")
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", nil, fmt.Errorf("generating an API key: %w", err)
	}
	secret := apiKeyPrefix + strings.ToLower(keyEncoding.EncodeToString(raw[:]))
	now := s.now()
	k := &APIKey{ID: NewID("key"), Tenant: tenant, Name: name, Scope: scope, Hash: hashAPIKey(secret), CreatedAt: now}
	e := s.event(ctx, EventAPIKeyCreated, UserRef{Tenant: tenant}, "", now)
	e.Detail = fmt.Sprintf("key %s %q, scope %s", k.ID, name, scope)
	if err := s.store.CreateAPIKey(ctx, k, e); err != nil {
		return "", nil, err
	}
	return secret, k, nil
}

func hashAPIKey(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

// Authenticate returns the API key whose secret this is, or an
// EUNAUTHORIZED error. Lookups are cached for a few seconds, so a revoked
// key stops working everywhere within apiKeyCacheTTL.
func (s *Service) Authenticate(ctx context.Context, secret string) (*APIKey, error) {
	if !strings.HasPrefix(secret, apiKeyPrefix) || len(secret) > 128 {
		return nil, Errorf(EUNAUTHORIZED, "missing or malformed API key")
	}
	h := hashAPIKey(secret)
	now := s.now()
	if k := s.apiKeys.get(h, now); k != nil {
		return k, nil
	}
	k, err := s.store.APIKeyByHash(ctx, h)
	if err != nil {
		if ErrorCode(err) == ENOTFOUND {
			return nil, Errorf(EUNAUTHORIZED, "unknown or revoked API key")
		}
		return nil, err
	}
	s.apiKeys.put(h, k, now)
	return k, nil
}

// APIKeys lists a tenant's keys ("" for all).
func (s *Service) APIKeys(ctx context.Context, tenant string) ([]*APIKey, error) {
	return s.store.APIKeys(ctx, tenant)
}

// RevokeAPIKey revokes a key. Its audit entry carries the key's tenant,
// which the store fills in.
func (s *Service) RevokeAPIKey(ctx context.Context, id string) error {
	now := s.now()
	e := s.event(ctx, EventAPIKeyRevoked, UserRef{}, "", now)
	e.Detail = "key " + id
	return s.store.RevokeAPIKey(ctx, id, now, e)
}

// apiKeyCacheTTL bounds how long a revoked key may still be accepted by a
// process that looked it up before.
const apiKeyCacheTTL = 5 * time.Second

// keyCache remembers recent API key lookups: every request authenticates,
// and a database round trip per request would dominate the verify path.
type keyCache struct {
	mu sync.Mutex
	m  map[[sha256.Size]byte]cachedKey
}

type cachedKey struct {
	k       *APIKey
	expires time.Time
}

func (c *keyCache) get(h []byte, now time.Time) *APIKey {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[[sha256.Size]byte(h)]
	if !ok || !now.Before(e.expires) {
		return nil
	}
	return e.k
}

func (c *keyCache) put(h []byte, k *APIKey, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) > 10000 {
		c.m = map[[sha256.Size]byte]cachedKey{}
	}
	c.m[[sha256.Size]byte(h)] = cachedKey{k: k, expires: now.Add(apiKeyCacheTTL)}
}
