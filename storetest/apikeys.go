package storetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twofa/twofa"
	"github.com/twofa/twofa/seal"
)

// keyStore returns the store's twofa.APIKeyStore, which every store
// implements: the Service needs it to authenticate callers.
func keyStore(t *testing.T, s twofa.Store) twofa.APIKeyStore {
	t.Helper()
	ks, ok := s.(twofa.APIKeyStore)
	if !ok {
		t.Fatalf("%T does not implement twofa.APIKeyStore", s)
	}
	return ks
}

// keyHash returns the hash of the suite's key named name; it starts with a
// NUL byte, which text columns mangle.
func keyHash(name string) []byte {
	h := sha256.Sum256([]byte("storetest API key " + name))
	h[0] = 0
	return h[:]
}

// newAPIKey returns an unrevoked key of the tenant made at created, whose
// hash is keyHash(id).
func newAPIKey(id, tenant string, scope twofa.Scope, created time.Time) *twofa.APIKey {
	return &twofa.APIKey{
		ID:        id,
		Tenant:    tenant,
		Name:      "Key " + id + " — «Jürgen's» 🔑",
		Scope:     scope,
		Hash:      keyHash(id),
		CreatedAt: created,
	}
}

// keyEvent returns an event about key id of the tenant, as the Service
// makes them.
func keyEvent(typ twofa.EventType, tenant, id string) *twofa.AuditEvent {
	e := newEvent(typ, twofa.UserRef{Tenant: tenant}, "")
	e.Detail = "key " + id
	return e
}

// createKey stores k with no event.
func createKey(t *testing.T, ks twofa.APIKeyStore, k *twofa.APIKey) *twofa.APIKey {
	t.Helper()
	if err := ks.CreateAPIKey(t.Context(), k, nil); err != nil {
		t.Fatalf("CreateAPIKey(%s) = %v", k.ID, err)
	}
	return k
}

// apiKeyDiff lists the fields in which got differs from want; times
// compare as instants.
func apiKeyDiff(got, want *twofa.APIKey) []string {
	if got == nil || want == nil {
		if got != want {
			return []string{fmt.Sprintf("key = %v, want %v", got, want)}
		}
		return nil
	}
	var diffs []string
	field := func(name string, same bool, g, w any) {
		if !same {
			diffs = append(diffs, fmt.Sprintf("%s = %v, want %v", name, g, w))
		}
	}
	field("ID", got.ID == want.ID, got.ID, want.ID)
	field("Tenant", got.Tenant == want.Tenant, got.Tenant, want.Tenant)
	field("Name", got.Name == want.Name, got.Name, want.Name)
	field("Scope", got.Scope == want.Scope, got.Scope, want.Scope)
	field("Hash", bytes.Equal(got.Hash, want.Hash), got.Hash, want.Hash)
	field("CreatedAt", got.CreatedAt.Equal(want.CreatedAt), got.CreatedAt, want.CreatedAt)
	field("RevokedAt", got.RevokedAt.Equal(want.RevokedAt), got.RevokedAt, want.RevokedAt)
	field("LastUsedAt", got.LastUsedAt.Equal(want.LastUsedAt), got.LastUsedAt, want.LastUsedAt)
	return diffs
}

// wantAPIKey checks every field of a key.
func wantAPIKey(t *testing.T, what string, got, want *twofa.APIKey) {
	t.Helper()
	if diffs := apiKeyDiff(got, want); len(diffs) > 0 {
		t.Errorf("%s:\n\t%s", what, strings.Join(diffs, "\n\t"))
	}
}

// wantKeys checks that APIKeys(tenant) lists exactly these keys, in order,
// each with every field as given.
func wantKeys(t *testing.T, ks twofa.APIKeyStore, tenant string, want ...*twofa.APIKey) {
	t.Helper()
	got, err := ks.APIKeys(t.Context(), tenant)
	if err != nil {
		t.Fatalf("APIKeys(%q) = %v", tenant, err)
	}
	ids := func(ks []*twofa.APIKey) []string {
		var s []string
		for _, k := range ks {
			s = append(s, k.ID)
		}
		return s
	}
	if !slices.Equal(ids(got), ids(want)) {
		t.Errorf("APIKeys(%q) = %v, want %v", tenant, ids(got), ids(want))
		return
	}
	for i := range got {
		wantAPIKey(t, fmt.Sprintf("APIKeys(%q)[%d]", tenant, i), got[i], want[i])
	}
}

// wantKeyByHash checks that APIKeyByHash finds the key as want has it.
func wantKeyByHash(t *testing.T, ks twofa.APIKeyStore, want *twofa.APIKey) {
	t.Helper()
	got, err := ks.APIKeyByHash(t.Context(), want.Hash)
	if err != nil {
		t.Errorf("APIKeyByHash(%s's hash) = %v", want.ID, err)
		return
	}
	wantAPIKey(t, fmt.Sprintf("APIKeyByHash(%s's hash)", want.ID), got, want)
}

// wantNoKeyByHash checks that APIKeyByHash finds no key with the hash.
func wantNoKeyByHash(t *testing.T, ks twofa.APIKeyStore, hash []byte) {
	t.Helper()
	k, err := ks.APIKeyByHash(t.Context(), hash)
	if !errors.Is(err, twofa.ErrNotFound) {
		t.Errorf("APIKeyByHash(%x) = %+v, %v; want ErrNotFound", hash, k, err)
	}
}

// rawKeyEvent is an event no chain prepared.
func rawKeyEvent(typ twofa.EventType) *twofa.AuditEvent {
	return &twofa.AuditEvent{Time: now0, Type: typ, Tenant: "acme", Detail: "unprepared"}
}

func testCreateAPIKey(t *testing.T, open Opener) {
	t.Run("OK", func(t *testing.T) {
		o := openStore(t, open)
		ks := keyStore(t, o.Store)
		// A time with microseconds, in a zone other than UTC: the instant
		// is what must survive.
		k := newAPIKey("key_a", "acme", twofa.ScopeAdmin, now0.In(time.FixedZone("UTC+5:30", 5*3600+1800)))
		e := keyEvent(twofa.EventAPIKeyCreated, "acme", k.ID)
		wantNoErr(t, "CreateAPIKey", ks.CreateAPIKey(t.Context(), k, e))
		want := *k
		wantKeyByHash(t, ks, &want)
		wantKeys(t, ks, "acme", &want)
		wantKeys(t, ks, "", &want)
		// Another process sees it at once.
		wantKeyByHash(t, keyStore(t, o.second(t)), &want)

		log := wantLog(t, o, twofa.EventAPIKeyCreated)
		if len(log) == 1 {
			g := log[0]
			if g.Tenant != "acme" || g.User != "" || g.Detail != e.Detail || g.Actor != e.Actor || !g.Time.Equal(now0) {
				t.Errorf("audit event = %+v, want the one passed to CreateAPIKey", g)
			}
		}

		// A nil event appends nothing.
		k2 := newAPIKey("key_b", "acme", twofa.ScopeApp, now0.Add(time.Microsecond))
		wantNoErr(t, "CreateAPIKey(nil event)", ks.CreateAPIKey(t.Context(), k2, nil))
		wantKeyByHash(t, ks, k2)
		wantLog(t, o, twofa.EventAPIKeyCreated)
	})

	t.Run("DuplicateHash", func(t *testing.T) {
		s := openStore(t, open)
		ks := keyStore(t, s.Store)
		k := newAPIKey("key_a", "acme", twofa.ScopeApp, now0)
		wantNoErr(t, "CreateAPIKey", ks.CreateAPIKey(t.Context(), k, keyEvent(twofa.EventAPIKeyCreated, "acme", k.ID)))
		dup := newAPIKey("key_b", "globex", twofa.ScopeAdmin, now0.Add(time.Second))
		dup.Hash = append([]byte(nil), k.Hash...)
		if err := ks.CreateAPIKey(t.Context(), dup, keyEvent(twofa.EventAPIKeyCreated, "globex", dup.ID)); err == nil {
			t.Errorf("CreateAPIKey(a key with a taken hash) = nil, want an error")
		}
		wantKeyByHash(t, ks, k)
		wantKeys(t, ks, "", k)
		wantLog(t, s, twofa.EventAPIKeyCreated)
	})

	t.Run("DuplicateID", func(t *testing.T) {
		s := openStore(t, open)
		ks := keyStore(t, s.Store)
		k := createKey(t, ks, newAPIKey("key_a", "acme", twofa.ScopeApp, now0))
		dup := newAPIKey("key_a", "globex", twofa.ScopeAdmin, now0.Add(time.Second))
		dup.Hash = keyHash("another")
		if err := ks.CreateAPIKey(t.Context(), dup, keyEvent(twofa.EventAPIKeyCreated, "globex", dup.ID)); err == nil {
			t.Errorf("CreateAPIKey(a key with a taken ID) = nil, want an error")
		}
		wantNoKeyByHash(t, ks, dup.Hash)
		wantKeys(t, ks, "", k)
		wantLog(t, s)
	})

	t.Run("Unprepared", func(t *testing.T) {
		s := openStore(t, open)
		ks := keyStore(t, s.Store)
		k := newAPIKey("key_a", "acme", twofa.ScopeApp, now0)
		err := ks.CreateAPIKey(t.Context(), k, rawKeyEvent(twofa.EventAPIKeyCreated))
		wantErr(t, "CreateAPIKey with an unprepared event", err, twofa.ErrUnprepared)
		wantNoKeyByHash(t, ks, k.Hash)
		wantKeys(t, ks, "")
		wantLog(t, s)
	})

	t.Run("RaceSameHashAcrossHandles", func(t *testing.T) {
		// Of keys with one hash stored at once, exactly one is stored.
		o := openStore(t, open)
		keyStore(t, o.Store)
		errs := race(t, o, 8, true, func(ctx context.Context, i int, s twofa.Store) error {
			k := newAPIKey(fmt.Sprintf("key_%d", i), "acme", twofa.ScopeApp, now0)
			k.Hash = keyHash("shared")
			return s.(twofa.APIKeyStore).CreateAPIKey(ctx, k, keyEvent(twofa.EventAPIKeyCreated, "acme", k.ID))
		})
		won := -1
		for i, err := range errs {
			if err == nil {
				if won >= 0 {
					t.Errorf("CreateAPIKey #%d and #%d both stored a key with one hash", won, i)
				}
				won = i
			}
		}
		if won < 0 {
			t.Fatalf("every CreateAPIKey failed: %v", errs)
		}
		ks := keyStore(t, o.Store)
		w := newAPIKey(fmt.Sprintf("key_%d", won), "acme", twofa.ScopeApp, now0)
		w.Hash = keyHash("shared")
		wantKeys(t, ks, "", w)
		wantLog(t, o, twofa.EventAPIKeyCreated)
	})
}

func testAPIKeyByHash(t *testing.T, open Opener) {
	t.Run("OK", func(t *testing.T) {
		s := openStore(t, open)
		ks := keyStore(t, s.Store)
		a := createKey(t, ks, newAPIKey("key_a", "acme", twofa.ScopeApp, now0))
		b := createKey(t, ks, newAPIKey("key_b", "globex", twofa.ScopeAdmin, now0))
		wantKeyByHash(t, ks, a)
		wantKeyByHash(t, ks, b)
	})

	t.Run("ErrNotFound", func(t *testing.T) {
		s := openStore(t, open)
		ks := keyStore(t, s.Store)
		wantNoKeyByHash(t, ks, keyHash("key_a")) // an empty store
		a := createKey(t, ks, newAPIKey("key_a", "acme", twofa.ScopeApp, now0))
		wantNoKeyByHash(t, ks, keyHash("key_b"))
		wantNoKeyByHash(t, ks, a.Hash[:len(a.Hash)-1]) // a prefix is not the hash
		wantNoKeyByHash(t, ks, nil)
		wantNoKeyByHash(t, ks, []byte{})
	})

	t.Run("Revoked", func(t *testing.T) {
		s := openStore(t, open)
		ks := keyStore(t, s.Store)
		a := createKey(t, ks, newAPIKey("key_a", "acme", twofa.ScopeApp, now0))
		b := createKey(t, ks, newAPIKey("key_b", "acme", twofa.ScopeApp, now0))
		wantNoErr(t, "RevokeAPIKey", ks.RevokeAPIKey(t.Context(), a.ID, now0.Add(time.Hour), nil))
		wantNoKeyByHash(t, ks, a.Hash)
		wantKeyByHash(t, ks, b)
	})
}

func testAPIKeys(t *testing.T, open Opener) {
	t.Run("Empty", func(t *testing.T) {
		s := openStore(t, open)
		ks := keyStore(t, s.Store)
		wantKeys(t, ks, "")
		wantKeys(t, ks, "acme")
	})

	t.Run("TenantFilter", func(t *testing.T) {
		s := openStore(t, open)
		ks := keyStore(t, s.Store)
		// Stored out of order: oldest first means by CreatedAt (to the
		// microsecond), then by ID, whatever the order of insertion.
		c := createKey(t, ks, newAPIKey("key_c", "acme", twofa.ScopeApp, now0.Add(2*time.Second)))
		g := createKey(t, ks, newAPIKey("key_g", "globex", twofa.ScopeApp, now0.Add(time.Second)))
		e := createKey(t, ks, newAPIKey("key_e", "acme", twofa.ScopeAdmin, now0))
		b := createKey(t, ks, newAPIKey("key_b", "acme", twofa.ScopeApp, now0))
		f := createKey(t, ks, newAPIKey("key_f", "acme", twofa.ScopeApp, now0.Add(time.Microsecond)))
		a := createKey(t, ks, newAPIKey("key_a", "globex", twofa.ScopeAdmin, now0.Add(-time.Microsecond)))
		// Revoked keys are listed, with the time of revocation.
		revokedAt := now0.Add(time.Hour + time.Microsecond)
		wantNoErr(t, "RevokeAPIKey", ks.RevokeAPIKey(t.Context(), c.ID, revokedAt, nil))
		c.RevokedAt = revokedAt

		wantKeys(t, ks, "acme", b, e, f, c)
		wantKeys(t, ks, "globex", a, g)
		wantKeys(t, ks, "initech")
		wantKeys(t, ks, "", a, b, e, f, g, c)
	})
}

func testRevokeAPIKey(t *testing.T, open Opener) {
	t.Run("OK", func(t *testing.T) {
		o := openStore(t, open)
		ks := keyStore(t, o.Store)
		a := createKey(t, ks, newAPIKey("key_a", "acme", twofa.ScopeAdmin, now0))
		b := createKey(t, ks, newAPIKey("key_b", "acme", twofa.ScopeApp, now0))
		at := now0.Add(time.Hour + time.Microsecond)
		e := keyEvent(twofa.EventAPIKeyRevoked, "", a.ID)
		wantNoErr(t, "RevokeAPIKey", ks.RevokeAPIKey(t.Context(), a.ID, at, e))
		a.RevokedAt = at
		wantKeys(t, ks, "acme", a, b)
		wantNoKeyByHash(t, ks, a.Hash)
		wantNoKeyByHash(t, keyStore(t, o.second(t)), a.Hash) // in every process, at once
		wantKeyByHash(t, ks, b)
		// The Service knows the key's ID only: the store names its tenant.
		if e.Tenant != "acme" {
			t.Errorf("event passed to RevokeAPIKey: Tenant = %q, want %q", e.Tenant, "acme")
		}
		log := wantLog(t, o, twofa.EventAPIKeyRevoked) // and it verifies with it
		if len(log) == 1 && (log[0].Detail != e.Detail || log[0].Tenant != "acme") {
			t.Errorf("audit event Tenant, Detail = %q, %q; want %q, %q", log[0].Tenant, log[0].Detail, "acme", e.Detail)
		}
	})

	t.Run("ErrNotFound", func(t *testing.T) {
		s := openStore(t, open)
		ks := keyStore(t, s.Store)
		a := createKey(t, ks, newAPIKey("key_a", "acme", twofa.ScopeApp, now0))
		err := ks.RevokeAPIKey(t.Context(), "key_nope", now0, keyEvent(twofa.EventAPIKeyRevoked, "", "key_nope"))
		wantErr(t, "RevokeAPIKey(unknown ID)", err, twofa.ErrNotFound)
		wantLog(t, s)

		first := now0.Add(time.Hour)
		wantNoErr(t, "RevokeAPIKey", ks.RevokeAPIKey(t.Context(), a.ID, first, keyEvent(twofa.EventAPIKeyRevoked, "", a.ID)))
		err = ks.RevokeAPIKey(t.Context(), a.ID, first.Add(time.Hour), keyEvent(twofa.EventAPIKeyRevoked, "", a.ID))
		wantErr(t, "RevokeAPIKey(revoked key)", err, twofa.ErrNotFound)
		a.RevokedAt = first // the first revocation's time stays
		wantKeys(t, ks, "", a)
		wantLog(t, s, twofa.EventAPIKeyRevoked)
	})

	t.Run("Unprepared", func(t *testing.T) {
		s := openStore(t, open)
		ks := keyStore(t, s.Store)
		a := createKey(t, ks, newAPIKey("key_a", "acme", twofa.ScopeApp, now0))
		err := ks.RevokeAPIKey(t.Context(), a.ID, now0.Add(time.Hour), rawKeyEvent(twofa.EventAPIKeyRevoked))
		wantErr(t, "RevokeAPIKey with an unprepared event", err, twofa.ErrUnprepared)
		wantKeyByHash(t, ks, a)
		wantKeys(t, ks, "", a)
		wantLog(t, s)
	})

	t.Run("RaceAcrossHandles", func(t *testing.T) {
		// Of revocations of one key at once, exactly one succeeds and
		// appends its event; the others find no unrevoked key.
		o := openStore(t, open)
		a := createKey(t, keyStore(t, o.Store), newAPIKey("key_a", "acme", twofa.ScopeApp, now0))
		errs := race(t, o, 8, true, func(ctx context.Context, i int, s twofa.Store) error {
			return s.(twofa.APIKeyStore).RevokeAPIKey(ctx, a.ID, now0.Add(time.Duration(i+1)*time.Second), keyEvent(twofa.EventAPIKeyRevoked, "", a.ID))
		})
		won := -1
		for i, err := range errs {
			switch {
			case err == nil && won >= 0:
				t.Errorf("RevokeAPIKey #%d and #%d both succeeded", won, i)
			case err == nil:
				won = i
			case !errors.Is(err, twofa.ErrNotFound):
				t.Errorf("RevokeAPIKey #%d = %v, want nil or ErrNotFound", i, err)
			}
		}
		if won < 0 {
			t.Fatalf("no RevokeAPIKey succeeded: %v", errs)
		}
		a.RevokedAt = now0.Add(time.Duration(won+1) * time.Second)
		wantKeys(t, keyStore(t, o.Store), "", a)
		wantLog(t, o, twofa.EventAPIKeyRevoked)
	})
}

// mustNotRehash is a rehash function for calls that must rehash nothing.
func mustNotRehash(t *testing.T) func([]byte) []byte {
	return func(plain []byte) []byte {
		t.Errorf("rehash(%x) called, want no call", plain)
		return keyHash("rehashed")
	}
}

func testUpgradeKeyHashes(t *testing.T, open Opener) {
	t.Run("NothingAfterMigration", func(t *testing.T) {
		// The handle migrated a new database, so it found no plain row:
		// keys stored since are never rehashed, by it or by another
		// handle, whatever their hashes.
		o := openStore(t, open)
		ks := keyStore(t, o.Store)
		k := createKey(t, ks, newAPIKey("key_a", "acme", twofa.ScopeApp, now0))
		for i, s := range []twofa.APIKeyStore{ks, keyStore(t, o.second(t)), ks} {
			n, err := s.UpgradeKeyHashes(t.Context(), mustNotRehash(t))
			if n != 0 || err != nil {
				t.Errorf("UpgradeKeyHashes #%d = %d, %v; want 0, nil", i+1, n, err)
			}
		}
		wantKeyByHash(t, ks, k)
	})
}

// tokenKeyring is the master keyring of the suite's Services.
func tokenKeyring(t *testing.T) *seal.Keyring {
	t.Helper()
	key := sha256.Sum256([]byte("storetest master key of Services"))
	kr, err := seal.NewKeyring(1, map[uint32][]byte{1: key[:]})
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

// newService starts a Service on s at the suite's time.
func newService(t *testing.T, s twofa.Store) *twofa.Service {
	t.Helper()
	svc, err := twofa.NewService(t.Context(), s, tokenKeyring(t), twofa.Options{Now: func() time.Time { return now0 }})
	if err != nil {
		t.Fatalf("NewService = %v", err)
	}
	return svc
}

// Tokens an attacker chose, of the form of an API key and of a link token.
const (
	chosenKey  = "tfa_chosenbyanattackerwhocanwritethedatabase0000000000"
	chosenLink = "tfl_chosenbyanattackerwhocanwritethedatabase0000000000"
)

// plainHash is the plain SHA-256 of a token, the stored form before
// schema version 5.
func plainHash(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// writePlainTokens stores, as someone who can write the database would, an
// admin key and a link whose hashes are plain SHA-256s of chosenKey+suffix
// and chosenLink+suffix.
func writePlainTokens(t *testing.T, s twofa.Store, suffix string) {
	t.Helper()
	createKey(t, keyStore(t, s), &twofa.APIKey{ID: "key_plain" + suffix, Tenant: "acme", Name: "plain",
		Scope: twofa.ScopeAdmin, Hash: plainHash(chosenKey + suffix), CreatedAt: now0})
	createLink(t, pageStore(t, s), &twofa.Link{ID: "lnk_plain" + suffix, Hash: plainHash(chosenLink + suffix),
		Tenant: alice.Tenant, User: alice.User, Kind: twofa.LinkEnroll, CreatedAt: now0, ExpiresAt: now0.Add(twofa.LinkTTL)})
}

// wantRefused checks that the Service takes neither the key nor the link
// token.
func wantRefused(t *testing.T, svc *twofa.Service, what, key, link string) {
	t.Helper()
	if k, err := svc.Authenticate(t.Context(), key); twofa.ErrorCode(err) != twofa.EUNAUTHORIZED {
		t.Errorf("Authenticate(%s) = %+v, %v; want EUNAUTHORIZED", what, k, err)
	}
	if l, err := svc.OpenLink(t.Context(), link); !errors.Is(err, twofa.ErrNotFound) {
		t.Errorf("OpenLink(%s) = %+v, %v; want ErrNotFound", what, l, err)
	}
}

// wantKeyWorks checks that the Service takes the key as the given one.
func wantKeyWorks(t *testing.T, svc *twofa.Service, what, key, id string) {
	t.Helper()
	k, err := svc.Authenticate(t.Context(), key)
	if err != nil || k.ID != id {
		t.Errorf("Authenticate(%s) = %+v, %v; want key %s", what, k, err, id)
	}
}

func testTokenHashes(t *testing.T, open Opener) {
	t.Run("PlainRefused", func(t *testing.T) {
		// Whoever can write the database but lacks the master key cannot
		// store a key or a link token of their choosing: a plain SHA-256
		// matches nothing, now or after a restart.
		o := openStore(t, open)
		svc := newService(t, o.Store)
		secret, k, err := svc.CreateAPIKey(t.Context(), "acme", "app", twofa.ScopeApp)
		wantNoErr(t, "CreateAPIKey", err)
		if bytes.Equal(k.Hash, plainHash(secret)) {
			t.Errorf("CreateAPIKey stored the key's plain SHA-256")
		}
		token, l, err := svc.CreateLink(t.Context(), alice, twofa.LinkEnroll)
		wantNoErr(t, "CreateLink", err)
		if bytes.Equal(l.Hash, plainHash(token)) {
			t.Errorf("CreateLink stored the token's plain SHA-256")
		}

		writePlainTokens(t, o.Store, "")
		wantRefused(t, svc, "a key stored as a plain hash", chosenKey, chosenLink)
		restarted := newService(t, o.second(t))
		wantRefused(t, restarted, "a key stored as a plain hash, after a restart", chosenKey, chosenLink)
		wantRefused(t, svc, "a key stored as a plain hash, after a restart", chosenKey, chosenLink)

		// The Service's own key and link work, in every process.
		wantKeyWorks(t, restarted, "the Service's key", secret, k.ID)
		wantKeyWorks(t, svc, "the Service's key", secret, k.ID) // and again, from the cache
		if got, err := restarted.OpenLink(t.Context(), token); err != nil || got.ID != l.ID {
			t.Errorf("OpenLink(the Service's link) = %+v, %v; want link %s", got, err, l.ID)
		}
	})
}

// VersionOpener opens a handle on one test's database, with its schema
// brought to version (0: the newest), and registers its cleanup with t.
// The first call creates the database; later calls open the same one.
type VersionOpener func(t *testing.T, version int) twofa.Store

// RunUpgrade checks the upgrade to keyed hashes of API keys and link
// tokens (schema version 5): keys and unused links that version 4 stored,
// as plain SHA-256 hashes, keep working once the Service starts on the
// handle that migrated the database; plain rows written after the
// migration never do, not even those written before that Service started.
func RunUpgrade(t *testing.T, open VersionOpener) {
	ctx := t.Context()
	v4 := open(t, 4)
	oldKey := "tfa_storedbyversion4" + strings.Repeat("k", 32)
	revokedKey := "tfa_revokedunderversion4" + strings.Repeat("r", 28)
	oldLink := "tfl_storedbyversion4" + strings.Repeat("l", 32)
	usedLink := "tfl_usedunderversion4" + strings.Repeat("u", 31)
	ks, ps := keyStore(t, v4), pageStore(t, v4)
	createKey(t, ks, &twofa.APIKey{ID: "key_old", Tenant: "acme", Name: "old", Scope: twofa.ScopeApp, Hash: plainHash(oldKey), CreatedAt: now0})
	createKey(t, ks, &twofa.APIKey{ID: "key_revoked", Tenant: "acme", Name: "revoked", Scope: twofa.ScopeApp, Hash: plainHash(revokedKey), CreatedAt: now0})
	wantNoErr(t, "RevokeAPIKey", ks.RevokeAPIKey(ctx, "key_revoked", now0, nil))
	for _, l := range []struct{ id, token string }{{"lnk_old", oldLink}, {"lnk_used", usedLink}} {
		createLink(t, ps, &twofa.Link{ID: l.id, Hash: plainHash(l.token), Tenant: alice.Tenant, User: alice.User,
			Kind: twofa.LinkManage, CreatedAt: now0, ExpiresAt: now0.Add(twofa.LinkTTL)})
	}
	if _, err := ps.UseLink(ctx, plainHash(usedLink), now0, nil); err != nil {
		t.Fatalf("UseLink = %v", err)
	}

	writtenLater := []struct{ suffix, when string }{
		{"-between", "after the migration, before its Service started"},
		{"-after", "after the Service started"},
	}
	migrated := open(t, 0)
	writePlainTokens(t, migrated, "-between")
	bystander := open(t, 0)
	early := newService(t, bystander) // a Service on a handle that found the migration done rehashes nothing
	svc := newService(t, migrated)
	writePlainTokens(t, migrated, "-after")

	for _, s := range []struct {
		name string
		svc  *twofa.Service
	}{{"the migrating process", svc}, {"another process", early}} {
		wantKeyWorks(t, s.svc, "a key of version 4, in "+s.name, oldKey, "key_old")
		if k, err := s.svc.Authenticate(ctx, revokedKey); twofa.ErrorCode(err) != twofa.EUNAUTHORIZED {
			t.Errorf("Authenticate(a key revoked under version 4, in %s) = %+v, %v; want EUNAUTHORIZED", s.name, k, err)
		}
		for _, w := range writtenLater {
			wantRefused(t, s.svc, "a plain hash written "+w.when+", in "+s.name, chosenKey+w.suffix, chosenLink+w.suffix)
		}
	}
	if l, err := early.OpenLink(ctx, oldLink); err != nil || l.ID != "lnk_old" {
		t.Errorf("OpenLink(a link of version 4) = %+v, %v; want lnk_old", l, err)
	}
	if l, err := svc.OpenLink(ctx, oldLink); !errors.Is(err, twofa.ErrNotFound) {
		t.Errorf("OpenLink(a link of version 4, again) = %+v, %v; want ErrNotFound", l, err)
	}
	if l, err := svc.OpenLink(ctx, usedLink); !errors.Is(err, twofa.ErrNotFound) {
		t.Errorf("OpenLink(a link used under version 4) = %+v, %v; want ErrNotFound", l, err)
	}

	// Later starts rehash nothing more.
	restarted := newService(t, open(t, 0))
	wantKeyWorks(t, restarted, "a key of version 4, after a restart", oldKey, "key_old")
	for _, w := range writtenLater {
		wantRefused(t, restarted, "a plain hash written "+w.when+", after a restart", chosenKey+w.suffix, chosenLink+w.suffix)
	}
}

// pinger is a store with a readiness check, which the twofa binary needs.
type pinger interface {
	Ping(ctx context.Context) error
}

func testPing(t *testing.T, open Opener) {
	s := openStore(t, open)
	p, ok := s.Store.(pinger)
	if !ok {
		t.Fatalf("%T has no method Ping(context.Context) error", s.Store)
	}
	t.Run("OK", func(t *testing.T) {
		wantNoErr(t, "Ping", p.Ping(t.Context()))
	})
	t.Run("Canceled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if err := p.Ping(ctx); err == nil {
			t.Errorf("Ping(a canceled context) = nil, want an error")
		}
	})
}
