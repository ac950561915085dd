package storetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
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
