package twofa

import (
	"context"
	"crypto/hmac"
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
// tenant. The key itself is shown once when made; only its keyed hash is
// stored (Service.tokenHash): it has 256 random bits, so no hash of it can
// be guessed back, and the key of the hash keeps whoever can write the
// database without the master key from storing a key of their own.
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

	// UpgradeKeyHashes finishes the store's migration to keyed hashes
	// (schema version 5), which needs the Service's key: in one
	// transaction, each key whose hash was a plain SHA-256 when this
	// handle applied that migration, and still is, gets the hash
	// rehash(plain). No other key is ever rehashed: not one written after
	// the migration, nor any on a handle that found the migration done
	// already, nor any on a second call. It returns how many keys it
	// rehashed.
	UpgradeKeyHashes(ctx context.Context, rehash func(plain []byte) []byte) (int, error)
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
	k := &APIKey{ID: NewID("key"), Tenant: tenant, Name: name, Scope: scope, Hash: s.tokenHash(secret), CreatedAt: now}
	e := s.event(ctx, EventAPIKeyCreated, UserRef{Tenant: tenant}, "", now)
	e.Detail = fmt.Sprintf("key %s %q, scope %s", k.ID, name, scope)
	if err := s.store.CreateAPIKey(ctx, k, e); err != nil {
		return "", nil, err
	}
	return secret, k, nil
}

// tokenHash is the stored form of an API key or a link token:
// HMAC-SHA-256 under the token key of the token's SHA-256. Hashing twice
// lets rows stored before the key existed, which held the SHA-256, be
// rehashed without their tokens (upgradeTokenHashes).
func (s *Service) tokenHash(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return s.rehashToken(h[:])
}

// rehashToken is the keyed hash of a token's SHA-256.
func (s *Service) rehashToken(plain []byte) []byte {
	m := hmac.New(sha256.New, s.tokenKey)
	m.Write(plain)
	return m.Sum(nil)
}

// upgradeTokenHashes rehashes the API keys and links that held plain
// SHA-256 hashes when the store was migrated to keyed hashes, if this
// Service's store made that migration. Only then: rows written later, by
// anyone able to write the database, stay plain, and no plain hash ever
// matches.
func (s *Service) upgradeTokenHashes(ctx context.Context) error {
	keys, err := s.store.UpgradeKeyHashes(ctx, s.rehashToken)
	if err != nil {
		return fmt.Errorf("rehashing API keys: %w", err)
	}
	links, err := s.store.UpgradeLinkHashes(ctx, s.rehashToken)
	if err != nil {
		return fmt.Errorf("rehashing links: %w", err)
	}
	if keys+links > 0 {
		s.log.InfoContext(ctx, "API keys and links now stored as keyed hashes", "api_keys", keys, "links", links)
	}
	return nil
}

// Authenticate returns the API key whose secret this is, or an
// EUNAUTHORIZED error. Lookups are cached for a few seconds, so a revoked
// key stops working everywhere within apiKeyCacheTTL.
func (s *Service) Authenticate(ctx context.Context, secret string) (*APIKey, error) {
	if !strings.HasPrefix(secret, apiKeyPrefix) || len(secret) > 128 {
		return nil, Errorf(EUNAUTHORIZED, "missing or malformed API key")
	}
	h := s.tokenHash(secret)
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
