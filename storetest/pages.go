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
)

// pageStore returns the store's twofa.PageStore, which the hosted pages
// need: every store must implement it.
func pageStore(t *testing.T, s twofa.Store) twofa.PageStore {
	t.Helper()
	if o, ok := s.(opened); ok {
		s = o.Store
	}
	ps, ok := s.(twofa.PageStore)
	if !ok {
		t.Fatalf("store %T does not implement twofa.PageStore", s)
	}
	return ps
}

// linkHash returns the hash of the suite's link token named name; it
// starts with a NUL byte, which text columns mangle.
func linkHash(name string) []byte {
	h := sha256.Sum256([]byte("storetest link " + name))
	h[0] = 0
	return h[:]
}

// newLink returns an unused link of the user made at created, expiring
// twofa.LinkTTL later, whose hash is linkHash(id).
func newLink(id string, ref twofa.UserRef, kind twofa.LinkKind, created time.Time) *twofa.Link {
	return &twofa.Link{
		ID:        id,
		Hash:      linkHash(id),
		Tenant:    ref.Tenant,
		User:      ref.User,
		Kind:      kind,
		CreatedAt: created,
		ExpiresAt: created.Add(twofa.LinkTTL),
	}
}

// createLink stores l with no event.
func createLink(t *testing.T, ps twofa.PageStore, l *twofa.Link) *twofa.Link {
	t.Helper()
	if err := ps.CreateLink(t.Context(), l, nil); err != nil {
		t.Fatalf("CreateLink(%s) = %v", l.ID, err)
	}
	return l
}

// useEvent returns a link_used event as the Service makes it: it does not
// know the link yet.
func useEvent() *twofa.AuditEvent {
	return newEvent(twofa.EventLinkUsed, twofa.UserRef{}, "")
}

// rawEvent is an event no chain prepared.
func rawEvent(typ twofa.EventType, ref twofa.UserRef) *twofa.AuditEvent {
	return &twofa.AuditEvent{Time: now0, Type: typ, Tenant: ref.Tenant, User: ref.User, Detail: "unprepared"}
}

// linkDiff lists the fields in which got differs from want; times compare
// as instants.
func linkDiff(got, want *twofa.Link) []string {
	if got == nil || want == nil {
		if got != want {
			return []string{fmt.Sprintf("link = %v, want %v", got, want)}
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
	field("Hash", bytes.Equal(got.Hash, want.Hash), got.Hash, want.Hash)
	field("Tenant", got.Tenant == want.Tenant, got.Tenant, want.Tenant)
	field("User", got.User == want.User, got.User, want.User)
	field("Kind", got.Kind == want.Kind, got.Kind, want.Kind)
	field("CreatedAt", got.CreatedAt.Equal(want.CreatedAt), got.CreatedAt, want.CreatedAt)
	field("ExpiresAt", got.ExpiresAt.Equal(want.ExpiresAt), got.ExpiresAt, want.ExpiresAt)
	field("UsedAt", got.UsedAt.Equal(want.UsedAt), got.UsedAt, want.UsedAt)
	return diffs
}

// wantUse checks that UseLink(hash, now) spends the link and returns it
// as want has it, with UsedAt = now.
func wantUse(t *testing.T, ps twofa.PageStore, hash []byte, now time.Time, e *twofa.AuditEvent, want *twofa.Link) {
	t.Helper()
	got, err := ps.UseLink(t.Context(), hash, now, e)
	if err != nil {
		t.Errorf("UseLink(%s's hash) = %v", want.ID, err)
		return
	}
	w := *want
	w.UsedAt = now
	if diffs := linkDiff(got, &w); len(diffs) > 0 {
		t.Errorf("UseLink(%s's hash):\n\t%s", want.ID, strings.Join(diffs, "\n\t"))
	}
}

// wantUseErr checks that UseLink(hash, now) fails with target.
func wantUseErr(t *testing.T, ps twofa.PageStore, what string, hash []byte, now time.Time, target error) {
	t.Helper()
	l, err := ps.UseLink(t.Context(), hash, now, useEvent())
	if !errors.Is(err, target) {
		t.Errorf("UseLink(%s) = %+v, %v; want %v", what, l, err, target)
	}
}

func testCreateLink(t *testing.T, open Opener) {
	t.Run("OK", func(t *testing.T) {
		o := openStore(t, open)
		ps := pageStore(t, o.Store)
		// Times with microseconds, in a zone other than UTC: the instants
		// are what must survive.
		l := newLink("lnk_a", alice, twofa.LinkManage, now0.In(time.FixedZone("UTC-3", -3*3600)))
		e := newEvent(twofa.EventLinkCreated, alice, "")
		e.Detail = "manage link lnk_a"
		wantNoErr(t, "CreateLink", ps.CreateLink(t.Context(), l, e))
		// Every field round-trips, seen from another process too.
		wantUse(t, pageStore(t, o.second(t)), l.Hash, now0.Add(time.Minute+time.Microsecond), nil, l)

		log := wantLog(t, o, twofa.EventLinkCreated)
		if len(log) == 1 {
			g := log[0]
			if g.Tenant != alice.Tenant || g.User != alice.User || g.Detail != e.Detail || !g.Time.Equal(now0) {
				t.Errorf("audit event = %+v, want the one passed to CreateLink", g)
			}
		}

		// A nil event appends nothing; an enroll link of another tenant.
		l2 := createLink(t, ps, newLink("lnk_b", otherAlice, twofa.LinkEnroll, now0))
		wantUse(t, ps, l2.Hash, now0, nil, l2)
		wantLog(t, o, twofa.EventLinkCreated)
	})

	t.Run("DuplicateHash", func(t *testing.T) {
		s := openStore(t, open)
		ps := pageStore(t, s.Store)
		l := createLink(t, ps, newLink("lnk_a", alice, twofa.LinkManage, now0))
		dup := newLink("lnk_b", bob, twofa.LinkEnroll, now0.Add(time.Second))
		dup.Hash = l.Hash
		if err := ps.CreateLink(t.Context(), dup, newEvent(twofa.EventLinkCreated, bob, "")); err == nil {
			t.Errorf("CreateLink(a link with a taken hash) = nil, want an error")
		}
		wantUse(t, ps, l.Hash, now0.Add(time.Minute), nil, l)
		wantLog(t, s)
	})

	t.Run("DuplicateID", func(t *testing.T) {
		s := openStore(t, open)
		ps := pageStore(t, s.Store)
		l := createLink(t, ps, newLink("lnk_a", alice, twofa.LinkManage, now0))
		dup := newLink("lnk_a", bob, twofa.LinkEnroll, now0)
		dup.Hash = linkHash("another")
		if err := ps.CreateLink(t.Context(), dup, newEvent(twofa.EventLinkCreated, bob, "")); err == nil {
			t.Errorf("CreateLink(a link with a taken ID) = nil, want an error")
		}
		wantUseErr(t, ps, "the refused link's hash", dup.Hash, now0, twofa.ErrNotFound)
		wantUse(t, ps, l.Hash, now0, nil, l)
		wantLog(t, s)
	})

	t.Run("Unprepared", func(t *testing.T) {
		s := openStore(t, open)
		ps := pageStore(t, s.Store)
		l := newLink("lnk_a", alice, twofa.LinkManage, now0)
		err := ps.CreateLink(t.Context(), l, rawEvent(twofa.EventLinkCreated, alice))
		wantErr(t, "CreateLink with an unprepared event", err, twofa.ErrUnprepared)
		wantUseErr(t, ps, "the refused link's hash", l.Hash, now0, twofa.ErrNotFound)
		wantLog(t, s)
	})
}

func testUseLink(t *testing.T, open Opener) {
	t.Run("Event", func(t *testing.T) {
		// The Service does not know which link it is: the store fills in
		// the event's tenant and user from the link, and names the link,
		// before linking it.
		o := openStore(t, open)
		ps := pageStore(t, o.Store)
		l := createLink(t, ps, newLink("lnk_a", otherAlice, twofa.LinkEnroll, now0))
		e := useEvent()
		wantUse(t, ps, l.Hash, now0.Add(time.Minute), e, l)
		if e.Tenant != otherAlice.Tenant || e.User != otherAlice.User || e.Detail != "enroll link lnk_a" {
			t.Errorf("event passed to UseLink: Tenant, User, Detail = %q, %q, %q; want %q, %q, %q",
				e.Tenant, e.User, e.Detail, otherAlice.Tenant, otherAlice.User, "enroll link lnk_a")
		}
		log := wantLog(t, o, twofa.EventLinkUsed) // and it verifies with them
		if len(log) == 1 {
			g := log[0]
			if g.Tenant != otherAlice.Tenant || g.User != otherAlice.User || g.Detail != e.Detail {
				t.Errorf("audit event = %+v, want the one passed to UseLink, about %s", g, otherAlice)
			}
		}
		evs, err := o.AuditEvents(t.Context(), twofa.AuditFilter{Tenant: otherAlice.Tenant, User: otherAlice.User})
		if err != nil || len(evs) != 1 {
			t.Errorf("AuditEvents(%s) = %d events, %v; want the link_used event", otherAlice, len(evs), err)
		}
	})

	t.Run("OnceOnly", func(t *testing.T) {
		o := openStore(t, open)
		ps := pageStore(t, o.Store)
		l := createLink(t, ps, newLink("lnk_a", alice, twofa.LinkManage, now0))
		first := now0.Add(time.Minute)
		wantUse(t, ps, l.Hash, first, useEvent(), l)
		wantUseErr(t, ps, "a used link", l.Hash, first, twofa.ErrNotFound)
		wantUseErr(t, ps, "a used link, later", l.Hash, first.Add(time.Minute), twofa.ErrNotFound)
		wantUseErr(t, pageStore(t, o.second(t)), "a used link, in another process", l.Hash, first, twofa.ErrNotFound)
		wantLog(t, o, twofa.EventLinkUsed)
	})

	t.Run("RaceAcrossHandles", func(t *testing.T) {
		// Of 32 uses at once from two processes, exactly one succeeds and
		// appends its event; the others find no unused link.
		o := openStore(t, open)
		l := createLink(t, pageStore(t, o.Store), newLink("lnk_a", alice, twofa.LinkManage, now0))
		type result struct {
			l   *twofa.Link
			err error
		}
		at := func(i int) time.Time { return now0.Add(time.Duration(i+1) * time.Second) }
		results := race(t, o, 32, true, func(ctx context.Context, i int, s twofa.Store) result {
			got, err := s.(twofa.PageStore).UseLink(ctx, l.Hash, at(i), useEvent())
			return result{got, err}
		})
		won := -1
		for i, r := range results {
			switch {
			case r.err == nil && won >= 0:
				t.Errorf("UseLink #%d and #%d both succeeded", won, i)
			case r.err == nil:
				won = i
			case !errors.Is(r.err, twofa.ErrNotFound):
				t.Errorf("UseLink #%d = %v, want nil or ErrNotFound", i, r.err)
			}
		}
		if won < 0 {
			t.Fatalf("no UseLink succeeded: %v", results)
		}
		w := *l
		w.UsedAt = at(won)
		if diffs := linkDiff(results[won].l, &w); len(diffs) > 0 {
			t.Errorf("UseLink #%d:\n\t%s", won, strings.Join(diffs, "\n\t"))
		}
		wantLog(t, o, twofa.EventLinkUsed)
	})

	t.Run("ErrExpired", func(t *testing.T) {
		s := openStore(t, open)
		ps := pageStore(t, s.Store)
		l := createLink(t, ps, newLink("lnk_a", alice, twofa.LinkManage, now0))
		wantUseErr(t, ps, "at ExpiresAt", l.Hash, l.ExpiresAt, twofa.ErrExpired)
		// Whether an expired link is then marked used is up to the store:
		// either way it is never good again.
		_, err := ps.UseLink(t.Context(), l.Hash, l.ExpiresAt.Add(time.Hour), useEvent())
		if !errors.Is(err, twofa.ErrExpired) && !errors.Is(err, twofa.ErrNotFound) {
			t.Errorf("UseLink(an expired link, again) = %v, want ErrExpired or ErrNotFound", err)
		}
		// One microsecond before it expires, another link is good.
		l2 := createLink(t, ps, newLink("lnk_b", alice, twofa.LinkManage, now0))
		wantUse(t, ps, l2.Hash, l2.ExpiresAt.Add(-time.Microsecond), nil, l2)
		wantLog(t, s)
	})

	t.Run("ErrNotFound", func(t *testing.T) {
		s := openStore(t, open)
		ps := pageStore(t, s.Store)
		wantUseErr(t, ps, "in an empty store", linkHash("lnk_a"), now0, twofa.ErrNotFound)
		l := createLink(t, ps, newLink("lnk_a", alice, twofa.LinkManage, now0))
		wantUseErr(t, ps, "an unknown hash", linkHash("lnk_b"), now0, twofa.ErrNotFound)
		wantUseErr(t, ps, "a prefix of the hash", l.Hash[:len(l.Hash)-1], now0, twofa.ErrNotFound)
		wantUseErr(t, ps, "nil", nil, now0, twofa.ErrNotFound)
		wantUseErr(t, ps, "an empty hash", []byte{}, now0, twofa.ErrNotFound)
		wantUse(t, ps, l.Hash, now0, nil, l) // still unused
		wantLog(t, s)
	})

	t.Run("Unprepared", func(t *testing.T) {
		s := openStore(t, open)
		ps := pageStore(t, s.Store)
		l := createLink(t, ps, newLink("lnk_a", alice, twofa.LinkManage, now0))
		_, err := ps.UseLink(t.Context(), l.Hash, now0, rawEvent(twofa.EventLinkUsed, twofa.UserRef{}))
		wantErr(t, "UseLink with an unprepared event", err, twofa.ErrUnprepared)
		wantUse(t, ps, l.Hash, now0.Add(time.Second), nil, l) // not spent
		wantLog(t, s)
	})
}

func testDeleteStaleLinks(t *testing.T, open Opener) {
	t.Run("OK", func(t *testing.T) {
		o := openStore(t, open)
		ps := pageStore(t, o.Store)
		now := now0.Add(time.Hour)
		used := createLink(t, ps, newLink("lnk_used", alice, twofa.LinkEnroll, now.Add(-time.Minute)))
		wantUse(t, ps, used.Hash, now.Add(-time.Second), nil, used) // used, not expired
		expired := createLink(t, ps, newLink("lnk_expired", alice, twofa.LinkManage, now.Add(-twofa.LinkTTL)))
		past := createLink(t, ps, newLink("lnk_past", bob, twofa.LinkManage, now0))
		never := newLink("lnk_never", bob, twofa.LinkManage, now0)
		never.ExpiresAt = time.Time{} // no expiry counts as long past
		createLink(t, ps, never)
		live := createLink(t, ps, newLink("lnk_live", otherAlice, twofa.LinkEnroll, now.Add(time.Microsecond-twofa.LinkTTL)))

		n, err := ps.DeleteStaleLinks(t.Context(), now)
		if n != 4 || err != nil {
			t.Errorf("DeleteStaleLinks = %d, %v; want 4, nil", n, err)
		}
		// The stale ones are gone: their hashes are unknown, in every
		// process; the live one is as it was.
		other := pageStore(t, o.second(t))
		for _, l := range []*twofa.Link{used, expired, past, never} {
			wantUseErr(t, other, l.ID, l.Hash, now.Add(-time.Hour), twofa.ErrNotFound)
		}
		n, err = ps.DeleteStaleLinks(t.Context(), now)
		if n != 0 || err != nil {
			t.Errorf("DeleteStaleLinks again = %d, %v; want 0, nil", n, err)
		}
		wantUse(t, other, live.Hash, now, nil, live)
		wantLog(t, o) // a sweep records nothing: each use is in the log
	})

	t.Run("Many", func(t *testing.T) {
		// More stale links than a store may delete at once go all the same.
		o := openStore(t, open)
		const n = 1100
		errs := race(t, o, 8, false, func(ctx context.Context, i int, s twofa.Store) error {
			for j := i; j < n; j += 8 {
				l := newLink(fmt.Sprintf("lnk_%04d", j), alice, twofa.LinkEnroll, now0)
				if err := s.(twofa.PageStore).CreateLink(ctx, l, nil); err != nil {
					return err
				}
			}
			return nil
		})
		if err := errors.Join(errs...); err != nil {
			t.Fatalf("CreateLink = %v", err)
		}
		live := createLink(t, pageStore(t, o.Store), newLink("lnk_live", bob, twofa.LinkEnroll, now0.Add(time.Hour)))
		got, err := pageStore(t, o.Store).DeleteStaleLinks(t.Context(), now0.Add(time.Hour))
		if got != n || err != nil {
			t.Errorf("DeleteStaleLinks = %d, %v; want %d, nil", got, err, n)
		}
		wantUseErr(t, pageStore(t, o.Store), "a swept link", linkHash("lnk_0000"), now0, twofa.ErrNotFound)
		wantUse(t, pageStore(t, o.Store), live.Hash, now0.Add(time.Hour), nil, live)
	})
}

func testUpgradeLinkHashes(t *testing.T, open Opener) {
	t.Run("NothingAfterMigration", func(t *testing.T) {
		// The handle migrated a new database, so it found no plain row:
		// links stored since are never rehashed, by it or by another
		// handle, whatever their hashes.
		o := openStore(t, open)
		ps := pageStore(t, o.Store)
		l := createLink(t, ps, newLink("lnk_a", alice, twofa.LinkEnroll, now0))
		for i, s := range []twofa.PageStore{ps, pageStore(t, o.second(t)), ps} {
			n, err := s.UpgradeLinkHashes(t.Context(), mustNotRehash(t))
			if n != 0 || err != nil {
				t.Errorf("UpgradeLinkHashes #%d = %d, %v; want 0, nil", i+1, n, err)
			}
		}
		wantUse(t, ps, l.Hash, now0, nil, l)
	})
}

// tenantDiff lists the fields in which got differs from want; times
// compare as instants, and nil and empty alike.
func tenantDiff(got, want *twofa.Tenant) []string {
	if got == nil || want == nil {
		if got != want {
			return []string{fmt.Sprintf("tenant = %v, want %v", got, want)}
		}
		return nil
	}
	var diffs []string
	field := func(name string, same bool, g, w any) {
		if !same {
			diffs = append(diffs, fmt.Sprintf("%s = %#v, want %#v", name, g, w))
		}
	}
	field("ID", got.ID == want.ID, got.ID, want.ID)
	field("PromptKey", bytes.Equal(got.PromptKey, want.PromptKey), got.PromptKey, want.PromptKey)
	field("KeyID", got.KeyID == want.KeyID, got.KeyID, want.KeyID)
	field("ReturnURLs", slices.Equal(got.ReturnURLs, want.ReturnURLs), got.ReturnURLs, want.ReturnURLs)
	field("CreatedAt", got.CreatedAt.Equal(want.CreatedAt), got.CreatedAt, want.CreatedAt)
	field("UpdatedAt", got.UpdatedAt.Equal(want.UpdatedAt), got.UpdatedAt, want.UpdatedAt)
	return diffs
}

// wantTenant checks that Tenant(want.ID) returns the tenant as want has it.
func wantTenant(t *testing.T, ps twofa.PageStore, want *twofa.Tenant) {
	t.Helper()
	got, err := ps.Tenant(t.Context(), want.ID)
	if err != nil {
		t.Errorf("Tenant(%s) = %v", want.ID, err)
		return
	}
	if diffs := tenantDiff(got, want); len(diffs) > 0 {
		t.Errorf("Tenant(%s):\n\t%s", want.ID, strings.Join(diffs, "\n\t"))
	}
}

func wantNoTenant(t *testing.T, ps twofa.PageStore, id string) {
	t.Helper()
	if got, err := ps.Tenant(t.Context(), id); !errors.Is(err, twofa.ErrNotFound) {
		t.Errorf("Tenant(%s) = %+v, %v; want ErrNotFound", id, got, err)
	}
}

// newTenant returns a tenant with a prompt key sealed under keyID and two
// return URLs, made at at.
func newTenant(id string, keyID uint32, at time.Time) *twofa.Tenant {
	return &twofa.Tenant{
		ID:         id,
		PromptKey:  sealed(keyID, "prompt key of "+id),
		KeyID:      keyID,
		ReturnURLs: []string{"https://" + id + ".example/2fa", "http://localhost:8080/"},
		CreatedAt:  at,
		UpdatedAt:  at,
	}
}

// putTenant gives the tenant tn's return URLs, then its prompt key if it
// has one, both at tn.UpdatedAt and with no event, and returns tn. The
// store keeps its own CreatedAt for a tenant it has: tn.CreatedAt must be
// it, or tn.UpdatedAt for a new tenant.
func putTenant(t *testing.T, ps twofa.PageStore, tn *twofa.Tenant) *twofa.Tenant {
	t.Helper()
	if err := ps.SetReturnURLs(t.Context(), tn.ID, tn.ReturnURLs, tn.UpdatedAt, nil); err != nil {
		t.Fatalf("SetReturnURLs(%s) = %v", tn.ID, err)
	}
	if len(tn.PromptKey) > 0 {
		if err := ps.SetPromptKey(t.Context(), tn.ID, tn.PromptKey, tn.KeyID, tn.UpdatedAt, nil); err != nil {
			t.Fatalf("SetPromptKey(%s) = %v", tn.ID, err)
		}
	}
	return tn
}

func tenantEvent(id, detail string) *twofa.AuditEvent {
	e := newEvent(twofa.EventTenantUpdated, twofa.UserRef{Tenant: id}, "")
	e.Detail = detail
	return e
}

// wantTenantLog checks that the audit log holds n tenant_updated events,
// about the tenant and no user, with these details.
func wantTenantLog(t *testing.T, s twofa.Store, tenant string, details ...string) {
	t.Helper()
	types := make([]twofa.EventType, len(details))
	for i := range types {
		types[i] = twofa.EventTenantUpdated
	}
	log := wantLog(t, s, types...)
	if len(log) != len(details) {
		return
	}
	for i, e := range log {
		if e.Tenant != tenant || e.User != "" || e.Detail != details[i] || !e.Time.Equal(now0) {
			t.Errorf("audit event %d: Tenant, User, Detail, Time = %q, %q, %q, %v; want %q, none, %q, %v",
				e.Seq, e.Tenant, e.User, e.Detail, e.Time, tenant, details[i], now0)
		}
	}
}

// wantNoSealed checks that the store keeps no sealed value at all.
func wantNoSealed(t *testing.T, s twofa.Store) {
	t.Helper()
	if total, stale, err := s.CountSealed(t.Context(), 1); total != 0 || stale != 0 || err != nil {
		t.Errorf("CountSealed(1) = %d, %d, %v; want 0, 0, nil", total, stale, err)
	}
	if got, err := s.SealedSecrets(t.Context(), 1, "", 100); len(got) != 0 || err != nil {
		t.Errorf("SealedSecrets(1) = %+v, %v; want none", got, err)
	}
}

func testTenant(t *testing.T, open Opener) {
	t.Run("ErrNotFound", func(t *testing.T) {
		s := openStore(t, open)
		ps := pageStore(t, s.Store)
		wantNoTenant(t, ps, "acme")
		putTenant(t, ps, newTenant("acme", 1, now0))
		wantNoTenant(t, ps, "globex")
		wantNoTenant(t, ps, "ACME")
		wantNoTenant(t, ps, "acm")
	})
}

func testSetPromptKey(t *testing.T, open Opener) {
	t.Run("Create", func(t *testing.T) {
		// A new tenant, with no return URLs, made at now; the instant is
		// what must survive.
		o := openStore(t, open)
		ps := pageStore(t, o.Store)
		at := now0.In(time.FixedZone("UTC+1", 3600))
		blob := sealed(1, "prompt key of acme")
		wantNoErr(t, "SetPromptKey", ps.SetPromptKey(t.Context(), "acme", blob, 1, at, tenantEvent("acme", "new prompt key")))
		a := &twofa.Tenant{ID: "acme", PromptKey: blob, KeyID: 1, CreatedAt: at, UpdatedAt: at}
		wantTenant(t, ps, a)
		wantTenant(t, pageStore(t, o.second(t)), a) // in every process, at once
		wantNoTenant(t, ps, "globex")
		wantTenantLog(t, o, "acme", "new prompt key")
	})

	t.Run("Replace", func(t *testing.T) {
		// The key and its key ID are replaced and UpdatedAt moves;
		// CreatedAt stays, and other tenants are untouched.
		o := openStore(t, open)
		ps := pageStore(t, o.Store)
		a := putTenant(t, ps, newTenant("acme", 1, now0))
		g := putTenant(t, ps, newTenant("globex", 2, now0))
		later := now0.Add(time.Hour + time.Microsecond)
		blob := sealed(4_000_000_001, "another prompt key of acme")
		wantNoErr(t, "SetPromptKey(replace)", ps.SetPromptKey(t.Context(), "acme", blob, 4_000_000_001, later, tenantEvent("acme", "new prompt key")))
		w := *a
		w.PromptKey, w.KeyID, w.UpdatedAt = blob, 4_000_000_001, later
		wantTenant(t, ps, &w)
		wantTenant(t, pageStore(t, o.second(t)), &w)
		wantTenant(t, ps, g)
		wantTenantLog(t, o, "acme", "new prompt key")
	})

	t.Run("KeepsReturnURLs", func(t *testing.T) {
		// Set the key, then the URLs, then the key again: the URLs stay.
		s := openStore(t, open)
		ps := pageStore(t, s.Store)
		wantNoErr(t, "SetPromptKey", ps.SetPromptKey(t.Context(), "acme", sealed(1, "k1"), 1, now0, nil))
		urls := []string{"https://acme.example/2fa", "https://acme.example/other"}
		wantNoErr(t, "SetReturnURLs", ps.SetReturnURLs(t.Context(), "acme", urls, now0.Add(time.Minute), nil))
		blob := sealed(2, "k2")
		wantNoErr(t, "SetPromptKey(again)", ps.SetPromptKey(t.Context(), "acme", blob, 2, now0.Add(2*time.Minute), nil))
		wantTenant(t, ps, &twofa.Tenant{ID: "acme", PromptKey: blob, KeyID: 2, ReturnURLs: urls,
			CreatedAt: now0, UpdatedAt: now0.Add(2 * time.Minute)})
		wantLog(t, s)
	})

	t.Run("Unprepared", func(t *testing.T) {
		s := openStore(t, open)
		ps := pageStore(t, s.Store)
		err := ps.SetPromptKey(t.Context(), "globex", sealed(1, "k"), 1, now0, rawEvent(twofa.EventTenantUpdated, twofa.UserRef{Tenant: "globex"}))
		wantErr(t, "SetPromptKey(new) with an unprepared event", err, twofa.ErrUnprepared)
		wantNoTenant(t, ps, "globex")
		wantNoSealed(t, s)
		a := putTenant(t, ps, newTenant("acme", 1, now0))
		err = ps.SetPromptKey(t.Context(), "acme", sealed(2, "k"), 2, now0.Add(time.Hour), rawEvent(twofa.EventTenantUpdated, twofa.UserRef{Tenant: "acme"}))
		wantErr(t, "SetPromptKey(replace) with an unprepared event", err, twofa.ErrUnprepared)
		wantTenant(t, ps, a)
		wantLog(t, s)
	})
}

func testSetReturnURLs(t *testing.T, open Opener) {
	t.Run("Create", func(t *testing.T) {
		// A new tenant, with no prompt key, which is no sealed value.
		o := openStore(t, open)
		ps := pageStore(t, o.Store)
		at := now0.In(time.FixedZone("UTC-5", -5*3600))
		urls := []string{"https://acme.example/2fa"}
		wantNoErr(t, "SetReturnURLs", ps.SetReturnURLs(t.Context(), "acme", urls, at, tenantEvent("acme", `return URLs ["https://acme.example/2fa"]`)))
		a := &twofa.Tenant{ID: "acme", ReturnURLs: urls, CreatedAt: at, UpdatedAt: at}
		wantTenant(t, ps, a)
		wantTenant(t, pageStore(t, o.second(t)), a)
		wantNoTenant(t, ps, "globex")
		wantNoSealed(t, o)
		wantTenantLog(t, o, "acme", `return URLs ["https://acme.example/2fa"]`)
	})

	t.Run("Replace", func(t *testing.T) {
		o := openStore(t, open)
		ps := pageStore(t, o.Store)
		a := putTenant(t, ps, newTenant("acme", 1, now0))
		g := putTenant(t, ps, newTenant("globex", 2, now0))
		later := now0.Add(time.Hour + time.Microsecond)
		urls := []string{"https://new.acme.example/"}
		wantNoErr(t, "SetReturnURLs(replace)", ps.SetReturnURLs(t.Context(), "acme", urls, later, tenantEvent("acme", "new URLs")))
		w := *a
		w.ReturnURLs, w.UpdatedAt = urls, later
		wantTenant(t, ps, &w)
		wantTenant(t, pageStore(t, o.second(t)), &w)
		wantTenant(t, ps, g)
		wantTenantLog(t, o, "acme", "new URLs")
	})

	t.Run("KeepsPromptKey", func(t *testing.T) {
		// Set the URLs, then the key, then the URLs again: the key, and
		// its key ID, stay.
		s := openStore(t, open)
		ps := pageStore(t, s.Store)
		wantNoErr(t, "SetReturnURLs", ps.SetReturnURLs(t.Context(), "acme", []string{"https://a.example/"}, now0, nil))
		blob := sealed(7, "prompt key of acme")
		wantNoErr(t, "SetPromptKey", ps.SetPromptKey(t.Context(), "acme", blob, 7, now0.Add(time.Minute), nil))
		urls := []string{"https://b.example/", "https://c.example/"}
		wantNoErr(t, "SetReturnURLs(again)", ps.SetReturnURLs(t.Context(), "acme", urls, now0.Add(2*time.Minute), nil))
		wantTenant(t, ps, &twofa.Tenant{ID: "acme", PromptKey: blob, KeyID: 7, ReturnURLs: urls,
			CreatedAt: now0, UpdatedAt: now0.Add(2 * time.Minute)})
		wantLog(t, s)
	})

	t.Run("AfterRotation", func(t *testing.T) {
		// A key rotation re-seals the prompt key between an
		// administrator's read of the tenant and their change of its URLs:
		// the change keeps the re-sealed key.
		s := openStore(t, open)
		ps := pageStore(t, s.Store)
		a := putTenant(t, ps, newTenant("acme", 1, now0))
		read, err := ps.Tenant(t.Context(), "acme")
		wantNoErr(t, "Tenant", err)
		blob := sealed(2, "prompt key of acme")
		if ok, err := s.ReplaceSealed(t.Context(), findSealed(t, s, "tenant:acme"), blob, 2); !ok || err != nil {
			t.Fatalf("ReplaceSealed(tenant:acme) = %t, %v; want true, nil", ok, err)
		}
		urls := append(slices.Clone(read.ReturnURLs), "https://acme.example/more")
		wantNoErr(t, "SetReturnURLs", ps.SetReturnURLs(t.Context(), "acme", urls, now0.Add(time.Hour), nil))
		w := *a
		w.PromptKey, w.KeyID, w.ReturnURLs, w.UpdatedAt = blob, 2, urls, now0.Add(time.Hour)
		wantTenant(t, ps, &w)
		if total, stale, err := s.CountSealed(t.Context(), 2); total != 1 || stale != 0 || err != nil {
			t.Errorf("CountSealed(2) = %d, %d, %v; want 1, 0, nil", total, stale, err)
		}
	})

	t.Run("ReturnURLs", func(t *testing.T) {
		// Exactly as given: order, duplicates and characters that array
		// or list encodings treat specially.
		s := openStore(t, open)
		ps := pageStore(t, s.Store)
		tn := newTenant("acme", 1, now0)
		tn.ReturnURLs = []string{
			"https://b.example/",
			"https://a.example/x?q=1,2&r={3}",
			`https://a.example/"quoted"\back\slash`,
			"NULL",
			"https://b.example/",
			"https://ü.example/päth — «x» ☃",
			"https://a.example/ with space ",
			`["json", "array"]`,
			"",
		}
		putTenant(t, ps, tn)
		wantTenant(t, ps, tn)
		tn.ReturnURLs = tn.ReturnURLs[:1]
		putTenant(t, ps, tn)
		wantTenant(t, ps, tn)
	})

	t.Run("NilAndEmpty", func(t *testing.T) {
		// nil and empty are both no URLs, for a new tenant or an old one.
		s := openStore(t, open)
		ps := pageStore(t, s.Store)
		for i, urls := range [][]string{nil, {}} {
			id := fmt.Sprintf("tenant%d", i)
			wantNoErr(t, "SetReturnURLs(new, none)", ps.SetReturnURLs(t.Context(), id, urls, now0, nil))
			wantTenant(t, ps, &twofa.Tenant{ID: id, CreatedAt: now0, UpdatedAt: now0})
			wantNoErr(t, "SetReturnURLs", ps.SetReturnURLs(t.Context(), id, []string{"https://x.example/"}, now0, nil))
			wantNoErr(t, "SetReturnURLs(none)", ps.SetReturnURLs(t.Context(), id, urls, now0.Add(time.Second), nil))
			wantTenant(t, ps, &twofa.Tenant{ID: id, CreatedAt: now0, UpdatedAt: now0.Add(time.Second)})
		}
	})

	t.Run("Unprepared", func(t *testing.T) {
		s := openStore(t, open)
		ps := pageStore(t, s.Store)
		err := ps.SetReturnURLs(t.Context(), "globex", []string{"https://globex.example/"}, now0, rawEvent(twofa.EventTenantUpdated, twofa.UserRef{Tenant: "globex"}))
		wantErr(t, "SetReturnURLs(new) with an unprepared event", err, twofa.ErrUnprepared)
		wantNoTenant(t, ps, "globex")
		a := putTenant(t, ps, newTenant("acme", 1, now0))
		err = ps.SetReturnURLs(t.Context(), "acme", []string{"https://evil.example/"}, now0.Add(time.Hour), rawEvent(twofa.EventTenantUpdated, twofa.UserRef{Tenant: "acme"}))
		wantErr(t, "SetReturnURLs(replace) with an unprepared event", err, twofa.ErrUnprepared)
		wantTenant(t, ps, a)
		wantLog(t, s)
	})
}

func testRenameDevice(t *testing.T, open Opener) {
	t.Run("OK", func(t *testing.T) {
		o := openStore(t, open)
		ps := pageStore(t, o.Store)
		a := enroll(t, o, alice, "dev_a", now0)
		p := create(t, o, alice, "dev_p", now0.Add(time.Second))
		b := enroll(t, o, bob, "dev_b", now0)
		withCodes(t, o, alice, "a", 3)

		name := "Work phone — «Jürgen's» 📱"
		e := newEvent(twofa.EventDeviceRenamed, alice, "dev_a")
		e.Detail = fmt.Sprintf("to %q", name)
		wantNoErr(t, "RenameDevice", ps.RenameDevice(t.Context(), alice, "dev_a", name, e))
		wa := *a
		wa.Name = name
		wantDevice(t, "dev_a after RenameDevice", mustDevice(t, o.second(t), alice, "dev_a"), &wa)
		wantNoErr(t, "RenameDevice(pending)", ps.RenameDevice(t.Context(), alice, "dev_p", "Tablet", nil))
		wp := *p
		wp.Name = "Tablet"
		u := mustUser(t, o, alice)
		if len(u.Devices) != 2 || u.BackupCodes != 3 {
			t.Errorf("User(alice) has %d devices and %d codes, want 2 and 3", len(u.Devices), u.BackupCodes)
		} else {
			wantDevice(t, "User(alice).Devices[0]", u.Devices[0], &wa)
			wantDevice(t, "User(alice).Devices[1]", u.Devices[1], &wp)
		}
		wantDevice(t, "bob's dev_b", mustDevice(t, o, bob, "dev_b"), b)

		log := wantLog(t, o, twofa.EventDeviceRenamed)
		if len(log) == 1 && (log[0].Device != "dev_a" || log[0].Detail != e.Detail || log[0].User != alice.User) {
			t.Errorf("audit event = %+v, want the one passed to RenameDevice", log[0])
		}
	})

	t.Run("ErrNotFound", func(t *testing.T) {
		s := openStore(t, open)
		ps := pageStore(t, s.Store)
		a := enroll(t, s, alice, "dev_a", now0)
		b := enroll(t, s, bob, "dev_b", now0)
		oa := enroll(t, s, otherAlice, "dev_o", now0)
		for _, tt := range []struct {
			what   string
			ref    twofa.UserRef
			device string
		}{
			{"another user's device", alice, "dev_b"},
			{"another tenant's user's device", alice, "dev_o"},
			{"the device of a user of the same ID in another tenant", otherAlice, "dev_a"},
			{"an unknown device", alice, "dev_nope"},
			{"an unknown user", nobody, "dev_a"},
		} {
			err := ps.RenameDevice(t.Context(), tt.ref, tt.device, "Stolen", newEvent(twofa.EventDeviceRenamed, tt.ref, tt.device))
			wantErr(t, "RenameDevice("+tt.what+")", err, twofa.ErrNotFound)
		}
		wantDevice(t, "dev_a", mustDevice(t, s, alice, "dev_a"), a)
		wantDevice(t, "dev_b", mustDevice(t, s, bob, "dev_b"), b)
		wantDevice(t, "dev_o", mustDevice(t, s, otherAlice, "dev_o"), oa)
		wantLog(t, s)
	})

	t.Run("Unprepared", func(t *testing.T) {
		s := openStore(t, open)
		ps := pageStore(t, s.Store)
		a := enroll(t, s, alice, "dev_a", now0)
		err := ps.RenameDevice(t.Context(), alice, "dev_a", "Renamed", rawEvent(twofa.EventDeviceRenamed, alice))
		wantErr(t, "RenameDevice with an unprepared event", err, twofa.ErrUnprepared)
		wantDevice(t, "dev_a", mustDevice(t, s, alice, "dev_a"), a)
		wantLog(t, s)
	})
}

// wantUsers checks that Users returns exactly the users with these IDs, in
// order, each as User returns them.
func wantUsers(t *testing.T, s twofa.Store, tenant, prefix, after string, limit int, ids ...string) {
	t.Helper()
	call := fmt.Sprintf("Users(%q, %q, %q, %d)", tenant, prefix, after, limit)
	got, err := pageStore(t, s).Users(t.Context(), tenant, prefix, after, limit)
	if err != nil {
		t.Errorf("%s = %v", call, err)
		return
	}
	var gotIDs []string
	for _, u := range got {
		gotIDs = append(gotIDs, u.ID)
	}
	if !slices.Equal(gotIDs, ids) {
		t.Errorf("%s = %q, want %q", call, gotIDs, ids)
		return
	}
	for _, g := range got {
		w := mustUser(t, s, twofa.UserRef{Tenant: tenant, User: g.ID})
		if g.Tenant != tenant || g.Failures != w.Failures || !g.LockedUntil.Equal(w.LockedUntil) ||
			!g.CreatedAt.Equal(w.CreatedAt) || g.BackupCodes != w.BackupCodes {
			t.Errorf("%s: %s: Tenant, Failures, LockedUntil, CreatedAt, BackupCodes = %q, %d, %v, %v, %d; want %q, %d, %v, %v, %d as User has them",
				call, g.ID, g.Tenant, g.Failures, g.LockedUntil, g.CreatedAt, g.BackupCodes,
				tenant, w.Failures, w.LockedUntil, w.CreatedAt, w.BackupCodes)
		}
		if len(g.Devices) != len(w.Devices) {
			t.Errorf("%s: %s has %d devices, want %d", call, g.ID, len(g.Devices), len(w.Devices))
			continue
		}
		for i := range g.Devices {
			wantDevice(t, fmt.Sprintf("%s: %s's device #%d", call, g.ID, i), g.Devices[i], w.Devices[i])
		}
	}
}

// usersFixture gives each user of the tenant acme a device or two and
// some backup codes, and returns their IDs in byte order.
func usersFixture(t *testing.T, s twofa.Store, ids ...string) []string {
	t.Helper()
	for i, id := range ids {
		ref := twofa.UserRef{Tenant: "acme", User: id}
		at := now0.Add(time.Duration(i) * time.Second)
		enroll(t, s, ref, fmt.Sprintf("dev_%d_a", i), at)
		if i%2 == 0 {
			// An older pending device, made later: oldest first is by
			// CreatedAt.
			create(t, s, ref, fmt.Sprintf("dev_%d_0", i), at.Add(-time.Minute))
		}
		withCodes(t, s, ref, id, i%4)
		if i%3 == 0 {
			failN(t, s, ref, 5, now0) // locked
		}
	}
	sorted := slices.Clone(ids)
	slices.Sort(sorted)
	return sorted
}

func testUsers(t *testing.T, open Opener) {
	t.Run("Prefix", func(t *testing.T) {
		s := openStore(t, open)
		pageStore(t, s.Store)
		usersFixture(t, s, "alice", "al%ice", "al_ice", `al\ice`, "alx", "al", "a", "bob", "ál", "éa", "éb", "f",
			"z\U0010FFFF", "z\U0010FFFFx", "z\U0010FFFF\U0010FFFF", "{")
		for _, tt := range []struct {
			prefix string
			ids    []string
		}{
			{"al", []string{"al", "al%ice", `al\ice`, "al_ice", "alice", "alx"}},
			{"al%", []string{"al%ice"}}, // wildcards match themselves only
			{"al_", []string{"al_ice"}},
			{`al\`, []string{`al\ice`}},
			{"al%i%", nil},
			{"%", nil},
			{"_", nil},
			{"alice", []string{"alice"}},
			{"alicex", nil},
			{"a", []string{"a", "al", "al%ice", `al\ice`, "al_ice", "alice", "alx"}},
			{"A", nil}, // case matters
			{"é", []string{"éa", "éb"}},
			{"z\U0010FFFF", []string{"z\U0010FFFF", "z\U0010FFFFx", "z\U0010FFFF\U0010FFFF"}},
			{"z\U0010FFFF\U0010FFFF", []string{"z\U0010FFFF\U0010FFFF"}},
			{"\xff", nil}, // invalid UTF-8: no ID starts with it
			{"a\x00", nil},
			{"zz", nil},
		} {
			wantUsers(t, s, "acme", tt.prefix, "", 100, tt.ids...)
		}
	})

	t.Run("Paging", func(t *testing.T) {
		s := openStore(t, open)
		pageStore(t, s.Store)
		all := usersFixture(t, s, "u7", "u1", "u5", "u3", "u2", "u6", "u4", "v1")
		wantUsers(t, s, "acme", "", "", 100, all...)
		wantUsers(t, s, "acme", "", "", 3, all[:3]...)
		wantUsers(t, s, "acme", "", all[2], 3, all[3:6]...)
		wantUsers(t, s, "acme", "", all[5], 3, all[6:]...)
		wantUsers(t, s, "acme", "", all[7], 3)
		wantUsers(t, s, "acme", "", "u", 2, "u1", "u2")   // after an ID no one has
		wantUsers(t, s, "acme", "", "u3x", 2, "u4", "u5") // after an ID no one has
		wantUsers(t, s, "acme", "u", "u5", 100, "u6", "u7")
		wantUsers(t, s, "acme", "v", "u5", 100, "v1") // after sorts before the prefix
		wantUsers(t, s, "acme", "u", "v", 100)        // after sorts after the prefix
		wantUsers(t, s, "acme", "u", "", 1, "u1")
		// Every page, one by one, walks the whole list.
		var walked []string
		for after := ""; ; {
			page, err := pageStore(t, s).Users(t.Context(), "acme", "", after, 1)
			if err != nil || len(page) > 1 {
				t.Fatalf("Users(after %q, 1) = %d users, %v", after, len(page), err)
			}
			if len(page) == 0 {
				break
			}
			after = page[0].ID
			walked = append(walked, after)
		}
		if !slices.Equal(walked, all) {
			t.Errorf("walking Users one by one = %q, want %q", walked, all)
		}
	})

	t.Run("TenantIsolation", func(t *testing.T) {
		s := openStore(t, open)
		pageStore(t, s.Store)
		enroll(t, s, alice, "dev_a", now0)
		enroll(t, s, bob, "dev_b", now0)
		withCodes(t, s, alice, "a", 3)
		enroll(t, s, otherAlice, "dev_o", now0.Add(time.Second))
		create(t, s, otherAlice, "dev_o2", now0.Add(2*time.Second))
		withCodes(t, s, otherAlice, "o", 5)
		failN(t, s, otherAlice, 2, now0)
		wantUsers(t, s, "acme", "", "", 100, "alice", "bob")
		wantUsers(t, s, "globex", "", "", 100, "alice")
		wantUsers(t, s, "globex", "a", "", 100, "alice")
		wantUsers(t, s, "initech", "", "", 100)
		wantUsers(t, s, "acm", "", "", 100)
		wantUsers(t, s, "", "", "", 100)
	})

	t.Run("UsersWithoutDevices", func(t *testing.T) {
		// A user whose factors were deleted stays, with none.
		s := openStore(t, open)
		pageStore(t, s.Store)
		enroll(t, s, alice, "dev_a", now0)
		withCodes(t, s, alice, "a", 2)
		failN(t, s, alice, 1, now0)
		wantNoErr(t, "DeleteFactors", s.DeleteFactors(t.Context(), alice, nil))
		enroll(t, s, bob, "dev_b", now0)
		wantUsers(t, s, "acme", "", "", 100, "alice", "bob")
		got, err := pageStore(t, s).Users(t.Context(), "acme", "", "", 1)
		if err != nil || len(got) != 1 || len(got[0].Devices) != 0 || got[0].BackupCodes != 0 || got[0].Failures != 1 {
			t.Errorf("Users = %+v, %v; want alice with no devices or codes and 1 failure", got, err)
		}
	})

	t.Run("Empty", func(t *testing.T) {
		s := openStore(t, open)
		pageStore(t, s.Store)
		wantUsers(t, s, "acme", "", "", 100)
		wantUsers(t, s, "acme", "a", "b", 100)
	})
}

// tenantSealedFixture adds to sealedFixture the prompt keys of acme,
// under key 1, and globex, under key 2; initech has no prompt key, which
// is no sealed value.
func tenantSealedFixture(t *testing.T, s twofa.Store) (devices map[string]*twofa.Device, settings map[string][]byte, tenants map[string]*twofa.Tenant) {
	t.Helper()
	ps := pageStore(t, s)
	devices, settings = sealedFixture(t, s)
	tenants = map[string]*twofa.Tenant{
		"acme":   putTenant(t, ps, newTenant("acme", 1, now0)),
		"globex": putTenant(t, ps, newTenant("globex", 2, now0)),
	}
	// A tenant made by SetReturnURLs alone has no prompt key.
	putTenant(t, ps, &twofa.Tenant{ID: "initech", ReturnURLs: []string{"https://initech.example/"}, CreatedAt: now0, UpdatedAt: now0})
	return devices, settings, tenants
}

// wantTenantSealed checks a page of SealedSecrets that may hold tenants'
// prompt keys.
func wantTenantSealed(t *testing.T, call string, got []twofa.SealedSecret, refs []string, devices map[string]*twofa.Device, settings map[string][]byte, tenants map[string]*twofa.Tenant) {
	t.Helper()
	var rest []twofa.SealedSecret
	var gotRefs []string
	for _, s := range got {
		gotRefs = append(gotRefs, s.Ref)
		id, ok := strings.CutPrefix(s.Ref, "tenant:")
		if !ok {
			rest = append(rest, s)
			continue
		}
		tn := tenants[id]
		if tn == nil || s.PromptKeyOf != id || s.Device != nil || s.Setting != "" {
			t.Errorf("%s: %s: PromptKeyOf, Device, Setting = %q, %v, %q; want %q, nil, none", call, s.Ref, s.PromptKeyOf, s.Device, s.Setting, id)
			continue
		}
		if !bytes.Equal(s.Blob, tn.PromptKey) || s.KeyID != tn.KeyID {
			t.Errorf("%s: %s: Blob, KeyID = %x, %d; want %x, %d", call, s.Ref, s.Blob, s.KeyID, tn.PromptKey, tn.KeyID)
		}
	}
	if !slices.Equal(gotRefs, refs) {
		t.Errorf("%s = %q, want %q", call, gotRefs, refs)
		return
	}
	var restRefs []string
	for _, r := range refs {
		if !strings.HasPrefix(r, "tenant:") {
			restRefs = append(restRefs, r)
		}
	}
	for _, s := range rest {
		if s.PromptKeyOf != "" {
			t.Errorf("%s: %s: PromptKeyOf = %q, want none", call, s.Ref, s.PromptKeyOf)
		}
	}
	wantSealed(t, call, rest, restRefs, devices, settings, false)
}

func testTenantSecrets(t *testing.T, open Opener) {
	all := []string{"device:dev_a", "device:dev_b", "device:dev_c", "setting:audit_key", "setting:webhook_secret", "tenant:acme", "tenant:globex"}

	t.Run("SealedSecrets", func(t *testing.T) {
		s := openStore(t, open)
		devices, settings, tenants := tenantSealedFixture(t, s)
		got, err := s.SealedSecrets(t.Context(), 3, "", 100)
		wantNoErr(t, "SealedSecrets", err)
		wantTenantSealed(t, "SealedSecrets(3)", got, all, devices, settings, tenants)
		got, err = s.SealedSecrets(t.Context(), 2, "", 100)
		wantNoErr(t, "SealedSecrets", err)
		want := []string{"device:dev_a", "device:dev_c", "setting:audit_key", "setting:webhook_secret", "tenant:acme"}
		wantTenantSealed(t, "SealedSecrets(2)", got, want, devices, settings, tenants)
		got, err = s.SealedSecrets(t.Context(), 1, "", 100)
		wantNoErr(t, "SealedSecrets", err)
		wantTenantSealed(t, "SealedSecrets(1)", got, []string{"device:dev_b", "tenant:globex"}, devices, settings, tenants)
	})

	t.Run("Paged", func(t *testing.T) {
		s := openStore(t, open)
		devices, settings, tenants := tenantSealedFixture(t, s)
		for _, tt := range []struct {
			after string
			limit int
			want  []string
		}{
			{"", 7, all},
			{"setting:audit_key", 2, all[4:6]}, // across kinds
			{"setting:webhook_secret", 100, all[5:]},
			{"setting:zzz", 100, all[5:]},
			{"tenant:", 1, all[5:6]},
			{"tenant:acme", 100, all[6:]},
			{"tenant:b", 100, all[6:]},
			{"tenant:globex", 100, nil},
			{"u", 100, nil},
			{"device:dev_c", 3, all[3:6]},
		} {
			got, err := s.SealedSecrets(t.Context(), 3, tt.after, tt.limit)
			wantNoErr(t, "SealedSecrets", err)
			wantTenantSealed(t, fmt.Sprintf("SealedSecrets(3, %q, %d)", tt.after, tt.limit), got, tt.want, devices, settings, tenants)
		}
	})

	t.Run("ReplaceSealed", func(t *testing.T) {
		s := openStore(t, open)
		ps := pageStore(t, s.Store)
		_, _, tenants := tenantSealedFixture(t, s)
		old := findSealed(t, s, "tenant:acme")
		blob := sealed(2, "prompt key of acme")
		if ok, err := s.ReplaceSealed(t.Context(), old, blob, 2); !ok || err != nil {
			t.Fatalf("ReplaceSealed = %t, %v; want true, nil", ok, err)
		}
		w := *tenants["acme"]
		w.PromptKey, w.KeyID = blob, 2 // and nothing else changes
		wantTenant(t, ps, &w)

		// A second rotation that read the old value loses.
		if ok, err := s.ReplaceSealed(t.Context(), old, sealed(3, "prompt key of acme"), 3); ok || err != nil {
			t.Errorf("ReplaceSealed(stale) = %t, %v; want false, nil", ok, err)
		}
		wantTenant(t, ps, &w)
		got, err := s.SealedSecrets(t.Context(), 2, "", 100)
		wantNoErr(t, "SealedSecrets", err)
		for _, x := range got {
			if x.Ref == "tenant:acme" {
				t.Errorf("SealedSecrets(2) still lists tenant:acme after it moved to key 2")
			}
		}

		// A prompt key replaced or removed meanwhile is left alone.
		old = findSealed(t, s, "tenant:globex")
		g := *tenants["globex"]
		g.PromptKey, g.UpdatedAt = sealed(2, "new prompt key of globex"), now0.Add(time.Hour)
		wantNoErr(t, "SetPromptKey(globex)", ps.SetPromptKey(t.Context(), "globex", g.PromptKey, 2, g.UpdatedAt, nil))
		if ok, err := s.ReplaceSealed(t.Context(), old, sealed(3, "x"), 3); ok || err != nil {
			t.Errorf("ReplaceSealed(a replaced prompt key) = %t, %v; want false, nil", ok, err)
		}
		wantTenant(t, ps, &g)
		unknown := twofa.SealedSecret{Ref: "tenant:initech", PromptKeyOf: "initech", Blob: sealed(1, "x"), KeyID: 1}
		if ok, err := s.ReplaceSealed(t.Context(), unknown, sealed(2, "x"), 2); ok || err != nil {
			t.Errorf("ReplaceSealed(a tenant without a prompt key) = %t, %v; want false, nil", ok, err)
		}
		unknown = twofa.SealedSecret{Ref: "tenant:nope", PromptKeyOf: "nope", Blob: sealed(1, "x"), KeyID: 1}
		if ok, err := s.ReplaceSealed(t.Context(), unknown, sealed(2, "x"), 2); ok || err != nil {
			t.Errorf("ReplaceSealed(an unknown tenant) = %t, %v; want false, nil", ok, err)
		}
		wantNoTenant(t, ps, "nope")
	})

	t.Run("CountSealed", func(t *testing.T) {
		s := openStore(t, open)
		tenantSealedFixture(t, s)
		for _, tt := range []struct {
			keyID        uint32
			total, stale int
		}{
			{3, 7, 7},
			{2, 7, 5},
			{1, 7, 2},
		} {
			if total, stale, err := s.CountSealed(t.Context(), tt.keyID); total != tt.total || stale != tt.stale || err != nil {
				t.Errorf("CountSealed(%d) = %d, %d, %v; want %d, %d, nil", tt.keyID, total, stale, err, tt.total, tt.stale)
			}
		}
		if ok, err := s.ReplaceSealed(t.Context(), findSealed(t, s, "tenant:acme"), sealed(2, "acme"), 2); !ok || err != nil {
			t.Fatalf("ReplaceSealed(tenant:acme) = %t, %v", ok, err)
		}
		if total, stale, err := s.CountSealed(t.Context(), 2); total != 7 || stale != 4 || err != nil {
			t.Errorf("CountSealed(2) after moving acme's prompt key to key 2 = %d, %d, %v; want 7, 4, nil", total, stale, err)
		}
	})
}
