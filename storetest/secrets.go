package storetest

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twofa/twofa"
)

func testInitSetting(t *testing.T, open Opener) {
	t.Run("FirstWins", func(t *testing.T) {
		s := openStore(t, open)
		first, second := sealed(1, "audit chain key"), sealed(1, "another audit chain key")
		for i, v := range [][]byte{first, second, first} {
			got, err := s.InitSetting(t.Context(), "audit_key", v)
			if err != nil || !bytes.Equal(got, first) {
				t.Errorf("InitSetting #%d = %x, %v; want the first value %x", i+1, got, err, first)
			}
		}
		other := []byte{0, 1, 0xFF, 0}
		if got, err := s.InitSetting(t.Context(), "other", other); err != nil || !bytes.Equal(got, other) {
			t.Errorf("InitSetting(other name) = %x, %v; want %x", got, err, other)
		}
	})

	t.Run("RaceFirstWins", func(t *testing.T) {
		// Processes starting at once all end up with the same value.
		o := openStore(t, open)
		type result struct {
			v   []byte
			err error
		}
		results := race(t, o, 16, true, func(ctx context.Context, i int, s twofa.Store) result {
			v, err := s.InitSetting(ctx, "audit_key", sealed(1, fmt.Sprint("value ", i)))
			return result{v, err}
		})
		for i, r := range results {
			if r.err != nil {
				t.Fatalf("InitSetting #%d = %v", i, r.err)
			}
			if !bytes.Equal(r.v, results[0].v) {
				t.Errorf("InitSetting #%d = %x, but #0 = %x", i, r.v, results[0].v)
			}
		}
		got, err := o.InitSetting(t.Context(), "audit_key", []byte("late"))
		if err != nil || !bytes.Equal(got, results[0].v) {
			t.Errorf("InitSetting afterwards = %x, %v; want %x", got, err, results[0].v)
		}
	})
}

// sealedFixture stores five sealed values, in Ref order: alice's devices
// dev_a under key 1 and dev_b under key 2, bob's pending dev_c under key 1,
// and the settings audit_key and webhook_secret, sealed under key 1.
func sealedFixture(t *testing.T, s twofa.Store) (devices map[string]*twofa.Device, settings map[string][]byte) {
	t.Helper()
	devices = map[string]*twofa.Device{
		"dev_a": enroll(t, s, alice, "dev_a", now0),
		"dev_c": create(t, s, bob, "dev_c", now0),
	}
	b := newDevice(alice, "dev_b", now0.Add(time.Second))
	b.Secret, b.KeyID = sealed(2, "secret of dev_b"), 2
	_, err := s.CreateDevice(t.Context(), b, 5, now0.Add(time.Second), nil)
	wantNoErr(t, "CreateDevice(dev_b)", err)
	devices["dev_b"] = b
	settings = map[string][]byte{"audit_key": sealed(1, "audit"), "webhook_secret": sealed(1, "webhook")}
	for name, v := range settings {
		_, err := s.InitSetting(t.Context(), name, v)
		wantNoErr(t, "InitSetting("+name+")", err)
	}
	return devices, settings
}

// wantSealed checks a page of SealedSecrets against the refs it should
// hold and the values of the fixture. The key ID of a setting is checked
// only when settingKeyIDs is set.
func wantSealed(t *testing.T, call string, got []twofa.SealedSecret, refs []string, devices map[string]*twofa.Device, settings map[string][]byte, settingKeyIDs bool) {
	t.Helper()
	var gotRefs []string
	for _, s := range got {
		gotRefs = append(gotRefs, s.Ref)
	}
	if !slices.Equal(gotRefs, refs) {
		t.Errorf("%s = %q, want %q", call, gotRefs, refs)
		return
	}
	for _, s := range got {
		if id, ok := strings.CutPrefix(s.Ref, "device:"); ok {
			d := devices[id]
			if s.Device == nil || s.Device.ID != d.ID || s.Device.Tenant != d.Tenant || s.Device.User != d.User || s.Setting != "" {
				t.Errorf("%s: %s: Device, Setting = %+v, %q; want device %s of %s", call, s.Ref, s.Device, s.Setting, d.ID, d.Ref())
			}
			if !bytes.Equal(s.Blob, d.Secret) || s.KeyID != d.KeyID {
				t.Errorf("%s: %s: Blob, KeyID = %x, %d; want %x, %d", call, s.Ref, s.Blob, s.KeyID, d.Secret, d.KeyID)
			}
			continue
		}
		name := strings.TrimPrefix(s.Ref, "setting:")
		if s.Setting != name || s.Device != nil || !bytes.Equal(s.Blob, settings[name]) {
			t.Errorf("%s: %s: Setting, Device, Blob = %q, %v, %x; want %q, nil, %x", call, s.Ref, s.Setting, s.Device, s.Blob, name, settings[name])
		}
		if settingKeyIDs && s.KeyID != 1 {
			t.Errorf("%s: %s: KeyID = %d, want 1, the key its blob names", call, s.Ref, s.KeyID)
		}
	}
}

func testSealedSecrets(t *testing.T, open Opener) {
	all := []string{"device:dev_a", "device:dev_b", "device:dev_c", "setting:audit_key", "setting:webhook_secret"}

	t.Run("All", func(t *testing.T) {
		s := openStore(t, open)
		devices, settings := sealedFixture(t, s)
		got, err := s.SealedSecrets(t.Context(), 3, "", 100)
		wantNoErr(t, "SealedSecrets", err)
		wantSealed(t, "SealedSecrets(3)", got, all, devices, settings, false)
	})

	t.Run("KeyFilter", func(t *testing.T) {
		s := openStore(t, open)
		devices, settings := sealedFixture(t, s)
		got, err := s.SealedSecrets(t.Context(), 2, "", 100)
		wantNoErr(t, "SealedSecrets", err)
		want := []string{"device:dev_a", "device:dev_c", "setting:audit_key", "setting:webhook_secret"}
		wantSealed(t, "SealedSecrets(2)", got, want, devices, settings, false)
	})

	t.Run("SettingKeyIDFromBlob", func(t *testing.T) {
		// InitSetting is given no key ID: a setting is under the key its
		// sealed blob names (seal's header), so a rotation to that key
		// finds nothing to do.
		s := openStore(t, open)
		devices, settings := sealedFixture(t, s)
		got, err := s.SealedSecrets(t.Context(), 1, "", 100)
		wantNoErr(t, "SealedSecrets", err)
		wantSealed(t, "SealedSecrets(1)", got, []string{"device:dev_b"}, devices, settings, true)
		got, err = s.SealedSecrets(t.Context(), 3, "device:dev_c", 100)
		wantNoErr(t, "SealedSecrets", err)
		wantSealed(t, "SealedSecrets(3, after dev_c)", got, all[3:], devices, settings, true)
		total, stale, err := s.CountSealed(t.Context(), 1)
		if total != 5 || stale != 1 || err != nil {
			t.Errorf("CountSealed(1) = %d, %d, %v; want 5, 1, nil", total, stale, err)
		}
	})

	t.Run("Paged", func(t *testing.T) {
		s := openStore(t, open)
		devices, settings := sealedFixture(t, s)
		for _, tt := range []struct {
			after string
			limit int
			want  []string
		}{
			{"", 2, all[:2]},
			{"device:dev_b", 2, all[2:4]},
			{"setting:audit_key", 2, all[4:]},
			{"setting:webhook_secret", 2, nil},
			{"device:dev_a", 100, all[1:]},
			{"device:dev_bb", 1, all[2:3]}, // after a Ref that does not exist
		} {
			got, err := s.SealedSecrets(t.Context(), 3, tt.after, tt.limit)
			wantNoErr(t, "SealedSecrets", err)
			wantSealed(t, fmt.Sprintf("SealedSecrets(3, %q, %d)", tt.after, tt.limit), got, tt.want, devices, settings, false)
		}
	})

	t.Run("Empty", func(t *testing.T) {
		s := openStore(t, open)
		got, err := s.SealedSecrets(t.Context(), 1, "", 100)
		if err != nil || len(got) != 0 {
			t.Errorf("SealedSecrets(empty store) = %v, %v; want none", got, err)
		}
	})
}

func testReplaceSealed(t *testing.T, open Opener) {
	t.Run("Device", func(t *testing.T) {
		s := openStore(t, open)
		devices, _ := sealedFixture(t, s)
		old := findSealed(t, s, "device:dev_a")
		blob := sealed(2, "secret of dev_a")
		if ok, err := s.ReplaceSealed(t.Context(), old, blob, 2); !ok || err != nil {
			t.Fatalf("ReplaceSealed = %t, %v; want true, nil", ok, err)
		}
		w := *devices["dev_a"]
		w.Secret, w.KeyID = blob, 2
		wantDevice(t, "device after ReplaceSealed", mustDevice(t, s, alice, "dev_a"), &w)

		// A second rotation that read the old value loses.
		if ok, err := s.ReplaceSealed(t.Context(), old, sealed(3, "secret of dev_a"), 3); ok || err != nil {
			t.Errorf("ReplaceSealed(stale) = %t, %v; want false, nil", ok, err)
		}
		wantDevice(t, "device after a stale ReplaceSealed", mustDevice(t, s, alice, "dev_a"), &w)
		got, err := s.SealedSecrets(t.Context(), 2, "", 100)
		wantNoErr(t, "SealedSecrets", err)
		for _, x := range got {
			if x.Ref == "device:dev_a" {
				t.Errorf("SealedSecrets(2) still lists device:dev_a after it moved to key 2")
			}
		}
	})

	t.Run("Setting", func(t *testing.T) {
		s := openStore(t, open)
		sealedFixture(t, s)
		old := findSealed(t, s, "setting:audit_key")
		blob := sealed(2, "audit")
		if ok, err := s.ReplaceSealed(t.Context(), old, blob, 2); !ok || err != nil {
			t.Fatalf("ReplaceSealed = %t, %v; want true, nil", ok, err)
		}
		if got, err := s.InitSetting(t.Context(), "audit_key", []byte("late")); err != nil || !bytes.Equal(got, blob) {
			t.Errorf("InitSetting after ReplaceSealed = %x, %v; want %x", got, err, blob)
		}
		if ok, err := s.ReplaceSealed(t.Context(), old, sealed(3, "audit"), 3); ok || err != nil {
			t.Errorf("ReplaceSealed(stale) = %t, %v; want false, nil", ok, err)
		}
		if x := findSealed(t, s, "setting:audit_key"); !bytes.Equal(x.Blob, blob) || x.KeyID != 2 {
			t.Errorf("setting: Blob, KeyID = %x, %d; want %x, 2", x.Blob, x.KeyID, blob)
		}
	})

	t.Run("Deleted", func(t *testing.T) {
		s := openStore(t, open)
		sealedFixture(t, s)
		old := findSealed(t, s, "device:dev_c")
		wantNoErr(t, "DeleteDevice", s.DeleteDevice(t.Context(), bob, "dev_c", nil))
		if ok, err := s.ReplaceSealed(t.Context(), old, sealed(2, "x"), 2); ok || err != nil {
			t.Errorf("ReplaceSealed(deleted device) = %t, %v; want false, nil", ok, err)
		}
		if _, err := s.User(t.Context(), bob); err != nil {
			t.Errorf("User(bob) = %v", err)
		} else {
			noDevice(t, s, bob, "dev_c")
		}
		unknown := twofa.SealedSecret{Ref: "setting:unknown", Setting: "unknown", Blob: sealed(1, "x"), KeyID: 1}
		if ok, err := s.ReplaceSealed(t.Context(), unknown, sealed(2, "x"), 2); ok || err != nil {
			t.Errorf("ReplaceSealed(unknown setting) = %t, %v; want false, nil", ok, err)
		}
	})
}

// findSealed returns the sealed value with ref, listed with a key ID that
// nothing is sealed under.
func findSealed(t *testing.T, s twofa.Store, ref string) twofa.SealedSecret {
	t.Helper()
	all, err := s.SealedSecrets(t.Context(), 99, "", 100)
	wantNoErr(t, "SealedSecrets", err)
	for _, x := range all {
		if x.Ref == ref {
			return x
		}
	}
	t.Fatalf("SealedSecrets does not list %s", ref)
	return twofa.SealedSecret{}
}

func testCountSealed(t *testing.T, open Opener) {
	s := openStore(t, open)
	if total, stale, err := s.CountSealed(t.Context(), 1); total != 0 || stale != 0 || err != nil {
		t.Errorf("CountSealed(empty store) = %d, %d, %v; want 0, 0, nil", total, stale, err)
	}
	sealedFixture(t, s)
	for _, tt := range []struct {
		keyID        uint32
		total, stale int
	}{
		{3, 5, 5},
		{2, 5, 4},
	} {
		if total, stale, err := s.CountSealed(t.Context(), tt.keyID); total != tt.total || stale != tt.stale || err != nil {
			t.Errorf("CountSealed(%d) = %d, %d, %v; want %d, %d, nil", tt.keyID, total, stale, err, tt.total, tt.stale)
		}
	}
	for _, ref := range []string{"device:dev_a", "setting:webhook_secret"} {
		if ok, err := s.ReplaceSealed(t.Context(), findSealed(t, s, ref), sealed(2, ref), 2); !ok || err != nil {
			t.Fatalf("ReplaceSealed(%s) = %t, %v", ref, ok, err)
		}
	}
	if total, stale, err := s.CountSealed(t.Context(), 2); total != 5 || stale != 2 || err != nil {
		t.Errorf("CountSealed(2) after moving two values to key 2 = %d, %d, %v; want 5, 2, nil", total, stale, err)
	}
}
