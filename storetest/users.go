package storetest

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/twofa/twofa"
)

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
