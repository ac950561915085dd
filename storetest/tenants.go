package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twofa/twofa"
)

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
