package storetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twofa/twofa"
	"github.com/twofa/twofa/otp"
)

func testUser(t *testing.T, open Opener) {
	t.Run("ErrNotFound", func(t *testing.T) {
		s := openStore(t, open)
		u, err := s.User(t.Context(), nobody)
		if !errors.Is(err, twofa.ErrNotFound) {
			t.Errorf("User(unknown) = %v, %v; want ErrNotFound", u, err)
		}
	})

	t.Run("RoundTrip", func(t *testing.T) {
		// Every field of a device comes back as it went in: bytes with NUL
		// and 0xFF, a key ID above MaxInt32, non-default parameters, a name
		// and IDs beyond ASCII, times with microseconds in another zone.
		s := openStore(t, open)
		ref := twofa.UserRef{Tenant: "acme", User: strings.Repeat("é", twofa.MaxIDLen/2)}
		zone := time.FixedZone("UTC+5:30", 5*3600+1800)
		created := now0.In(zone)
		d := newDevice(ref, "dev_roundtrip", created)
		d.Name = "Zoë's iPhone 📱 東京"
		d.Secret = append([]byte{0, 0xFF, 0x80, 0}, sealed(4_000_000_001, "round trip")...)
		d.KeyID = 4_000_000_001
		d.Params = otp.Params{Algorithm: otp.SHA512, Digits: 8, Period: 60, T0: 1_234_567_890}
		d.ExpiresAt = created.Add(enrollTTL + 123456*time.Microsecond)
		expired, err := s.CreateDevice(t.Context(), d, 5, now0, nil)
		wantNoErr(t, "CreateDevice", err)
		if len(expired) != 0 {
			t.Errorf("CreateDevice of a new user returned expired devices %v", expired)
		}

		u := mustUser(t, s, ref)
		if u.Tenant != ref.Tenant || u.ID != ref.User {
			t.Errorf("User: Tenant, ID = %q, %q; want %q, %q", u.Tenant, u.ID, ref.Tenant, ref.User)
		}
		if u.Failures != 0 || !u.LockedUntil.IsZero() || u.BackupCodes != 0 {
			t.Errorf("new user: Failures, LockedUntil, BackupCodes = %d, %v, %d; want 0, zero, 0", u.Failures, u.LockedUntil, u.BackupCodes)
		}
		if !u.CreatedAt.Equal(now0) {
			t.Errorf("User.CreatedAt = %v, want %v (the now of its first CreateDevice)", u.CreatedAt, now0)
		}
		if len(u.Devices) != 1 {
			t.Fatalf("User has %d devices, want 1", len(u.Devices))
		}
		// A pending device's ConfirmedAt and LastUsedAt are zero
		// and must stay zero, not become the Unix epoch.
		wantDevice(t, "pending device", u.Devices[0], d)

		const step = 1<<40 + 7 // beyond 32 bits
		at := now0.Add(time.Minute + 999999*time.Microsecond).In(zone)
		_, err = s.ActivateDevice(t.Context(), twofa.Activation{Ref: ref, DeviceID: d.ID, Step: step, Now: at})
		wantNoErr(t, "ActivateDevice", err)
		got := mustDevice(t, s, ref, d.ID)
		wantDevice(t, "activated device", got, activated(d, step, at, got))

		err = acceptStep(t.Context(), s, ref, d.ID, step+3, -2, at.Add(time.Second), nil)
		wantNoErr(t, "accepting a step", err)
		got = mustDevice(t, s, ref, d.ID)
		w := activated(d, step+3, at, got)
		w.Drift, w.LastUsedAt = -2, at.Add(time.Second)
		wantDevice(t, "device after AcceptStep", got, w)
	})

	t.Run("DevicesOldestFirst", func(t *testing.T) {
		// IDs sort against age, so that ordering by ID fails.
		s := openStore(t, open)
		for i, id := range []string{"dev_c", "dev_b", "dev_a"} {
			create(t, s, alice, id, now0.Add(time.Duration(i)*time.Second))
		}
		enroll(t, s, alice, "dev_0", now0.Add(time.Minute))
		var got []string
		for _, d := range mustUser(t, s, alice).Devices {
			got = append(got, d.ID)
		}
		if want := "dev_c dev_b dev_a dev_0"; strings.Join(got, " ") != want {
			t.Errorf("device order = %v, want %s", got, want)
		}
	})

	t.Run("BackupCodes", func(t *testing.T) {
		s := openStore(t, open)
		enroll(t, s, alice, "dev_a", now0)
		wantCodes(t, s, alice, 0)
		hs := withCodes(t, s, alice, "a", 10)
		wantCodes(t, s, alice, 10)
		_, err := spendCode(t.Context(), s, alice, hs[3], now0, nil)
		wantNoErr(t, "spending a code", err)
		wantCodes(t, s, alice, 9)
	})
}

func testCreateDevice(t *testing.T, open Opener) {
	t.Run("OK", func(t *testing.T) {
		s := openStore(t, open)
		d := newDevice(alice, "dev_a", now0)
		_, err := s.CreateDevice(t.Context(), d, 5, now0, newEvent(twofa.EventEnrollStarted, alice, d.ID))
		wantNoErr(t, "CreateDevice", err)
		u := mustUser(t, s, alice)
		if len(u.Devices) != 1 || u.Devices[0].Status != twofa.StatusPending {
			t.Errorf("after CreateDevice, devices = %v, want one pending", u.Devices)
		}
		wantLog(t, s, twofa.EventEnrollStarted)

		// A second device of an existing user, without an event.
		d2 := newDevice(alice, "dev_b", now0.Add(time.Second))
		_, err = s.CreateDevice(t.Context(), d2, 5, now0.Add(time.Second), nil)
		wantNoErr(t, "CreateDevice(second)", err)
		u = mustUser(t, s, alice)
		if len(u.Devices) != 2 || !u.CreatedAt.Equal(now0) {
			t.Errorf("after a second CreateDevice: %d devices, CreatedAt %v; want 2, %v", len(u.Devices), u.CreatedAt, now0)
		}
		wantLog(t, s, twofa.EventEnrollStarted)
	})

	t.Run("ErrDeviceLimit", func(t *testing.T) {
		// Active and unexpired pending devices both count, including an
		// active device whose old enrollment deadline has passed.
		s := openStore(t, open)
		enroll(t, s, alice, "dev_a", now0)
		create(t, s, alice, "dev_b", now0.Add(time.Second))
		later := now0.Add(enrollTTL) // dev_a's ExpiresAt has passed; dev_b's has not
		d := newDevice(alice, "dev_c", later)
		expired, err := s.CreateDevice(t.Context(), d, 2, later, newEvent(twofa.EventEnrollStarted, alice, d.ID))
		if !errors.Is(err, twofa.ErrDeviceLimit) {
			t.Errorf("CreateDevice over the limit = %v, %v; want ErrDeviceLimit", expired, err)
		}
		u := mustUser(t, s, alice)
		if len(u.Devices) != 2 || u.Device("dev_c") != nil {
			t.Errorf("after ErrDeviceLimit, devices = %v, want dev_a and dev_b", u.Devices)
		}
		wantLog(t, s)

		// Under a higher limit it goes in.
		_, err = s.CreateDevice(t.Context(), d, 3, later, nil)
		wantNoErr(t, "CreateDevice under a higher limit", err)
	})

	t.Run("ExpiredDeleted", func(t *testing.T) {
		// Expired pending devices (ExpiresAt <= now) are deleted, returned
		// and not counted; the unexpired one and the active one stay.
		s := openStore(t, open)
		enroll(t, s, alice, "dev_a", now0)
		old1 := create(t, s, alice, "dev_b", now0.Add(time.Second))
		old2 := create(t, s, alice, "dev_c", now0.Add(2*time.Second))
		fresh := create(t, s, alice, "dev_d", now0.Add(3*time.Second))
		create(t, s, bob, "dev_bob", now0) // another user's expired device is not touched
		now := old2.ExpiresAt              // dev_b and dev_c have expired, dev_c exactly now

		d := newDevice(alice, "dev_e", now)
		expired, err := s.CreateDevice(t.Context(), d, 3, now, newEvent(twofa.EventEnrollStarted, alice, d.ID))
		wantNoErr(t, "CreateDevice", err)
		sortDevices(expired)
		if len(expired) != 2 {
			t.Fatalf("CreateDevice returned %d expired devices, want dev_b and dev_c: %v", len(expired), expired)
		}
		wantDevice(t, "expired[0]", expired[0], old1)
		wantDevice(t, "expired[1]", expired[1], old2)
		u := mustUser(t, s, alice)
		var ids []string
		for _, d := range u.Devices {
			ids = append(ids, d.ID)
		}
		if want := "dev_a " + fresh.ID + " dev_e"; strings.Join(ids, " ") != want {
			t.Errorf("devices after CreateDevice = %v, want %s", ids, want)
		}
		if mustUser(t, s, bob).Device("dev_bob") == nil {
			t.Error("CreateDevice for alice deleted bob's expired device")
		}
		wantLog(t, s, twofa.EventEnrollStarted)
	})

	t.Run("RaceDeviceLimit", func(t *testing.T) {
		// Ten enrollments of a new user at once from two handles, under a
		// limit of five: five succeed, five get ErrDeviceLimit.
		o := openStore(t, open)
		errs := race(t, o, 10, true, func(ctx context.Context, i int, s twofa.Store) error {
			d := newDevice(alice, fmt.Sprintf("dev_%02d", i), now0)
			_, err := s.CreateDevice(ctx, d, 5, now0, newEvent(twofa.EventEnrollStarted, alice, d.ID))
			return err
		})
		ok, limited := 0, 0
		for i, err := range errs {
			switch {
			case err == nil:
				ok++
			case errors.Is(err, twofa.ErrDeviceLimit):
				limited++
			default:
				t.Errorf("CreateDevice #%d = %v", i, err)
			}
		}
		if ok != 5 || limited != 5 {
			t.Errorf("%d succeeded and %d got ErrDeviceLimit, want 5 and 5", ok, limited)
		}
		if n := len(mustUser(t, o, alice).Devices); n != 5 {
			t.Errorf("user has %d devices, want 5", n)
		}
		if n := len(allEvents(t, o)); n != 5 {
			t.Errorf("audit log has %d events, want 5", n)
		}
	})
}

func testActivateDevice(t *testing.T, open Opener) {
	at := now0.Add(time.Minute)
	activate := func(t *testing.T, s twofa.Store, ref twofa.UserRef, id string, codes [][]byte) (bool, error) {
		return s.ActivateDevice(t.Context(), twofa.Activation{
			Ref: ref, DeviceID: id, Step: firstStep, Now: at, BackupCodes: codes,
			Event:      newEvent(twofa.EventEnrollConfirmed, ref, id),
			IssueEvent: newEvent(twofa.EventBackupCodesIssued, ref, id),
		})
	}

	t.Run("OK", func(t *testing.T) {
		s := openStore(t, open)
		d := create(t, s, alice, "dev_a", now0)
		codes := codeHashes("first", 10)
		issued, err := activate(t, s, alice, d.ID, codes)
		if err != nil || !issued {
			t.Fatalf("ActivateDevice = %t, %v; want true, nil", issued, err)
		}
		got := mustDevice(t, s, alice, d.ID)
		wantDevice(t, "activated device", got, activated(d, firstStep, at, got))
		wantCodes(t, s, alice, 10)
		// The contract does not order the two events of one call.
		log := allEvents(t, s)
		if len(log) != 2 || log[0].Type == log[1].Type ||
			(log[0].Type != twofa.EventEnrollConfirmed && log[0].Type != twofa.EventBackupCodesIssued) ||
			(log[1].Type != twofa.EventEnrollConfirmed && log[1].Type != twofa.EventBackupCodesIssued) {
			t.Errorf("audit log = %v, want enrollment_confirmed and backup_codes_issued", eventTypes(log))
		}
		_, err = spendCode(t.Context(), s, alice, codes[9], at, nil)
		wantNoErr(t, "spending an issued code", err)
	})

	t.Run("CodesKept", func(t *testing.T) {
		// A user with unused codes keeps them: the new set is not stored
		// and no IssueEvent is appended.
		s := openStore(t, open)
		enroll(t, s, alice, "dev_a", now0)
		old := withCodes(t, s, alice, "old", 3)
		create(t, s, alice, "dev_b", now0)
		issued, err := activate(t, s, alice, "dev_b", codeHashes("new", 10))
		if err != nil || issued {
			t.Fatalf("ActivateDevice = %t, %v; want false, nil", issued, err)
		}
		wantCodes(t, s, alice, 3)
		_, err = spendCode(t.Context(), s, alice, codeHashes("new", 10)[0], at, nil)
		wantErr(t, "spending a code not issued", err, twofa.ErrNotFound)
		_, err = spendCode(t.Context(), s, alice, old[0], at, nil)
		wantNoErr(t, "spending an old code", err)
		wantLog(t, s, twofa.EventEnrollConfirmed)
	})

	t.Run("CodesAllUsed", func(t *testing.T) {
		// Used codes are not unused codes: a new set is issued.
		s := openStore(t, open)
		enroll(t, s, alice, "dev_a", now0)
		old := withCodes(t, s, alice, "old", 1)
		_, err := spendCode(t.Context(), s, alice, old[0], now0, nil)
		wantNoErr(t, "spending a code", err)
		create(t, s, alice, "dev_b", now0)
		issued, err := activate(t, s, alice, "dev_b", codeHashes("new", 4))
		if err != nil || !issued {
			t.Fatalf("ActivateDevice = %t, %v; want true, nil", issued, err)
		}
		wantCodes(t, s, alice, 4)
	})

	t.Run("ErrNotFound", func(t *testing.T) {
		s := openStore(t, open)
		create(t, s, alice, "dev_pending", now0)
		enroll(t, s, alice, "dev_active", now0)
		create(t, s, bob, "dev_bob", now0)
		for _, tt := range []struct {
			name string
			ref  twofa.UserRef
			id   string
		}{
			{"UnknownDevice", alice, "dev_unknown"},
			{"AlreadyActive", alice, "dev_active"},
			{"OtherUsersDevice", alice, "dev_bob"},
			{"OtherTenant", otherAlice, "dev_pending"},
			{"UnknownUser", nobody, "dev_pending"},
		} {
			issued, err := activate(t, s, tt.ref, tt.id, codeHashes("x", 2))
			if !errors.Is(err, twofa.ErrNotFound) || issued {
				t.Errorf("%s: ActivateDevice(%s, %s) = %t, %v; want false, ErrNotFound", tt.name, tt.ref, tt.id, issued, err)
			}
		}
		if d := mustDevice(t, s, bob, "dev_bob"); d.Status != twofa.StatusPending {
			t.Errorf("bob's device is %s, want pending", d.Status)
		}
		if d := mustDevice(t, s, alice, "dev_pending"); d.Status != twofa.StatusPending {
			t.Errorf("alice's pending device is %s, want pending", d.Status)
		}
		wantCodes(t, s, alice, 0)
		wantLog(t, s)
	})

	t.Run("ErrExpired", func(t *testing.T) {
		// At ExpiresAt exactly the enrollment has expired: the device is
		// deleted, the codes not stored, and no event appended.
		s := openStore(t, open)
		enroll(t, s, alice, "dev_a", now0)
		d := create(t, s, alice, "dev_b", now0)
		issued, err := s.ActivateDevice(t.Context(), twofa.Activation{
			Ref: alice, DeviceID: d.ID, Step: firstStep, Now: d.ExpiresAt, BackupCodes: codeHashes("x", 3),
			Event:      newEvent(twofa.EventEnrollConfirmed, alice, d.ID),
			IssueEvent: newEvent(twofa.EventBackupCodesIssued, alice, d.ID),
		})
		if !errors.Is(err, twofa.ErrExpired) || issued {
			t.Errorf("ActivateDevice(expired) = %t, %v; want false, ErrExpired", issued, err)
		}
		noDevice(t, s, alice, d.ID)
		wantCodes(t, s, alice, 0)
		wantLog(t, s)
		_, err = activate(t, s, alice, d.ID, nil)
		wantErr(t, "ActivateDevice(deleted)", err, twofa.ErrNotFound)
	})
	t.Run("RaceOneWinner", func(t *testing.T) {
		// Two tabs confirm one enrollment at once: one activates it and
		// issues the codes, the others find no pending device.
		o := openStore(t, open)
		create(t, o, alice, "dev_a", now0)
		type result struct {
			issued bool
			err    error
		}
		results := race(t, o, 8, true, func(ctx context.Context, i int, s twofa.Store) result {
			issued, err := s.ActivateDevice(ctx, twofa.Activation{
				Ref: alice, DeviceID: "dev_a", Step: firstStep + uint64(i), Now: at, BackupCodes: codeHashes(fmt.Sprint(i), 3),
				Event:      newEvent(twofa.EventEnrollConfirmed, alice, "dev_a"),
				IssueEvent: newEvent(twofa.EventBackupCodesIssued, alice, "dev_a"),
			})
			return result{issued, err}
		})
		winner := -1
		for i, r := range results {
			switch {
			case r.err == nil && r.issued && winner < 0:
				winner = i
			case errors.Is(r.err, twofa.ErrNotFound) && !r.issued:
			default:
				t.Errorf("ActivateDevice #%d = %t, %v", i, r.issued, r.err)
			}
		}
		if winner < 0 {
			t.Fatal("no ActivateDevice succeeded")
		}
		if d := mustDevice(t, o, alice, "dev_a"); d.Status != twofa.StatusActive || d.LastStep != firstStep+uint64(winner) {
			t.Errorf("device %s at LastStep %d, want active at %d", d.Status, d.LastStep, firstStep+winner)
		}
		wantCodes(t, o, alice, 3)
		_, err := spendCode(t.Context(), o, alice, codeHashes(fmt.Sprint(winner), 3)[0], at, nil)
		wantNoErr(t, "spending the winner's code", err)
		if n := len(allEvents(t, o)); n != 2 {
			t.Errorf("audit log has %d events, want 2", n)
		}
	})
}

func testDeleteDevice(t *testing.T, open Opener) {
	t.Run("OK", func(t *testing.T) {
		s := openStore(t, open)
		enroll(t, s, alice, "dev_a", now0)
		create(t, s, alice, "dev_b", now0.Add(time.Second))
		enroll(t, s, alice, "dev_c", now0.Add(2*time.Second))
		for _, id := range []string{"dev_a", "dev_b"} { // active and pending
			wantNoErr(t, "DeleteDevice("+id+")", s.DeleteDevice(t.Context(), alice, id, newEvent(twofa.EventDeviceRevoked, alice, id)))
			noDevice(t, s, alice, id)
		}
		mustDevice(t, s, alice, "dev_c")
		wantNoErr(t, "DeleteDevice(dev_c)", s.DeleteDevice(t.Context(), alice, "dev_c", nil))
		// The user is still known, with no devices.
		if u := mustUser(t, s, alice); len(u.Devices) != 0 {
			t.Errorf("after deleting every device, devices = %v", u.Devices)
		}
		wantLog(t, s, twofa.EventDeviceRevoked, twofa.EventDeviceRevoked)
	})

	t.Run("ErrNotFound", func(t *testing.T) {
		s := openStore(t, open)
		enroll(t, s, alice, "dev_a", now0)
		enroll(t, s, bob, "dev_bob", now0)
		for _, tt := range []struct {
			name string
			ref  twofa.UserRef
			id   string
		}{
			{"UnknownDevice", alice, "dev_unknown"},
			{"OtherUsersDevice", alice, "dev_bob"},
			{"OtherTenant", otherAlice, "dev_a"},
			{"UnknownUser", nobody, "dev_a"},
		} {
			err := s.DeleteDevice(t.Context(), tt.ref, tt.id, newEvent(twofa.EventDeviceRevoked, tt.ref, tt.id))
			wantErr(t, fmt.Sprintf("%s: DeleteDevice(%s, %s)", tt.name, tt.ref, tt.id), err, twofa.ErrNotFound)
		}
		mustDevice(t, s, alice, "dev_a")
		mustDevice(t, s, bob, "dev_bob")
		wantLog(t, s)
	})
}

func testDeleteFactors(t *testing.T, open Opener) {
	t.Run("OK", func(t *testing.T) {
		s := openStore(t, open)
		enroll(t, s, alice, "dev_a", now0)
		create(t, s, alice, "dev_b", now0)
		codes := withCodes(t, s, alice, "a", 5)
		enroll(t, s, bob, "dev_bob", now0)
		bobCodes := withCodes(t, s, bob, "a", 5)
		failN(t, s, alice, 5, now0)
		lock := now0.Add(30 * time.Second)

		wantNoErr(t, "DeleteFactors", s.DeleteFactors(t.Context(), alice, newEvent(twofa.EventDisabled, alice, "")))
		u := mustUser(t, s, alice)
		if len(u.Devices) != 0 || u.BackupCodes != 0 {
			t.Errorf("after DeleteFactors: devices %v, %d backup codes; want none", u.Devices, u.BackupCodes)
		}
		wantFailures(t, s, alice, 5, lock)
		_, err := spendCode(t.Context(), s, alice, codes[0], now0, nil)
		wantErr(t, "spending a deleted code", err, twofa.ErrNotFound)
		// Bob's factors are untouched, even his codes with the same hashes.
		mustDevice(t, s, bob, "dev_bob")
		_, err = spendCode(t.Context(), s, bob, bobCodes[0], now0, nil)
		wantNoErr(t, "spending bob's code", err)
		wantLog(t, s, twofa.EventDisabled)

		// Again, on a user with nothing left to delete.
		wantNoErr(t, "DeleteFactors(again)", s.DeleteFactors(t.Context(), alice, nil))
	})

	t.Run("ErrNotFound", func(t *testing.T) {
		s := openStore(t, open)
		enroll(t, s, alice, "dev_a", now0)
		err := s.DeleteFactors(t.Context(), nobody, newEvent(twofa.EventDisabled, nobody, ""))
		wantErr(t, "DeleteFactors(unknown)", err, twofa.ErrNotFound)
		err = s.DeleteFactors(t.Context(), otherAlice, newEvent(twofa.EventDisabled, otherAlice, ""))
		wantErr(t, "DeleteFactors(other tenant)", err, twofa.ErrNotFound)
		mustDevice(t, s, alice, "dev_a")
		wantLog(t, s)
	})
}

func testDeleteExpired(t *testing.T, open Opener) {
	t.Run("OK", func(t *testing.T) {
		s := openStore(t, open)
		a := create(t, s, alice, "dev_a", now0)
		enroll(t, s, alice, "dev_active", now0) // its deadline passes too, but it is active
		create(t, s, alice, "dev_fresh", now0.Add(time.Microsecond))
		b := create(t, s, otherAlice, "dev_b", now0.Add(-time.Hour))
		now := now0.Add(enrollTTL) // dev_a expires exactly now; dev_fresh a microsecond later

		got, err := s.DeleteExpired(t.Context(), now)
		wantNoErr(t, "DeleteExpired", err)
		sortDevices(got)
		if len(got) != 2 {
			t.Fatalf("DeleteExpired returned %d devices, want dev_a and dev_b: %v", len(got), got)
		}
		wantDevice(t, "expired[0]", got[0], a)
		wantDevice(t, "expired[1]", got[1], b)
		noDevice(t, s, alice, "dev_a")
		noDevice(t, s, otherAlice, "dev_b")
		mustDevice(t, s, alice, "dev_active")
		mustDevice(t, s, alice, "dev_fresh")

		got, err = s.DeleteExpired(t.Context(), now)
		if err != nil || len(got) != 0 {
			t.Errorf("DeleteExpired(again) = %v, %v; want none", got, err)
		}
	})

	t.Run("Empty", func(t *testing.T) {
		s := openStore(t, open)
		got, err := s.DeleteExpired(t.Context(), now0)
		if err != nil || len(got) != 0 {
			t.Errorf("DeleteExpired(empty store) = %v, %v; want none", got, err)
		}
	})
}

// testTenantIsolation checks that alice in one tenant is another user than
// alice in another, and that no method reaches a device or code through
// the other tenant's ref.
func testTenantIsolation(t *testing.T, open Opener) {
	s := openStore(t, open)
	ctx := t.Context()
	enroll(t, s, alice, "dev_a", now0)
	create(t, s, alice, "dev_pending", now0)
	codes := withCodes(t, s, alice, "a", 3)
	if _, err := s.User(ctx, otherAlice); !errors.Is(err, twofa.ErrNotFound) {
		t.Fatalf("User(%s) = %v, want ErrNotFound while only %s exists", otherAlice, err, alice)
	}
	enroll(t, s, otherAlice, "dev_other", now0)
	failN(t, s, alice, 2, now0)

	_, err := s.ActivateDevice(ctx, twofa.Activation{Ref: otherAlice, DeviceID: "dev_pending", Step: firstStep + 1, Now: now0})
	wantErr(t, "ActivateDevice", err, twofa.ErrNotFound)
	// An effect on another tenant's device fails its condition.
	err = acceptStep(ctx, s, otherAlice, "dev_a", firstStep+1, 0, now0, nil)
	wantErr(t, "accepting a step", err, twofa.ErrReplayed)
	err = s.DeleteDevice(ctx, otherAlice, "dev_a", nil)
	wantErr(t, "DeleteDevice", err, twofa.ErrNotFound)
	_, err = spendCode(ctx, s, otherAlice, codes[0], now0, nil)
	wantErr(t, "spending a code", err, twofa.ErrNotFound)

	// Changes to the other alice leave this one alone.
	failN(t, s, otherAlice, 1, now0)
	wantNoErr(t, "Unlock", s.Unlock(ctx, otherAlice, nil))
	wantNoErr(t, "ReplaceBackupCodes", s.ReplaceBackupCodes(ctx, otherAlice, codeHashes("other", 1), now0, nil))
	wantNoErr(t, "DeleteFactors", s.DeleteFactors(ctx, otherAlice, nil))

	wantFailures(t, s, alice, 2, time.Time{})
	wantCodes(t, s, alice, 3)
	u := mustUser(t, s, alice)
	if len(u.Devices) != 2 || u.Device("dev_a").LastStep != firstStep ||
		u.Device("dev_pending").Status != twofa.StatusPending {
		t.Errorf("alice's devices changed through %s: %v", otherAlice, u.Devices)
	}
	if u := mustUser(t, s, otherAlice); u.Tenant != otherAlice.Tenant || len(u.Devices) != 0 {
		t.Errorf("User(%s) = tenant %q with %d devices, want %q with none", otherAlice, u.Tenant, len(u.Devices), otherAlice.Tenant)
	}
}

func eventTypes(es []*twofa.AuditEvent) []twofa.EventType {
	ts := make([]twofa.EventType, len(es))
	for i, e := range es {
		ts[i] = e.Type
	}
	return ts
}
