package storetest

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twofa/twofa"
)

// The outbox: messages added with the events of the changes that cause
// them, claimed under leases, finished under the claim's token.

// newMessage returns a notice to the user by channel ch, created and due
// at created, with a payload sealed under key 1.
func newMessage(ref twofa.UserRef, id string, ch twofa.Channel, created time.Time) *twofa.Message {
	return &twofa.Message{
		ID: id, Tenant: ref.Tenant, User: ref.User, Channel: ch, Kind: twofa.KindNotice,
		Payload: sealed(1, "body of "+id), KeyID: 1, Status: twofa.MessageQueued,
		NextAt: created, CreatedAt: created,
	}
}

// carrying returns an event of the user that carries the messages.
func carrying(typ twofa.EventType, ref twofa.UserRef, ms ...*twofa.Message) *twofa.AuditEvent {
	e := newEvent(typ, ref, "")
	e.Messages = ms
	return e
}

// queue adds the messages with one event, as a change would.
func queue(t *testing.T, s twofa.Store, ms ...*twofa.Message) {
	t.Helper()
	wantNoErr(t, "AppendAudit(messages)", s.AppendAudit(t.Context(), carrying(twofa.EventEnrollStarted, alice, ms...)))
}

// message returns the stored message with id, or nil.
func message(t *testing.T, s twofa.Store, id string) *twofa.Message {
	t.Helper()
	ms, err := s.Messages(t.Context(), twofa.MessageFilter{ID: id})
	wantNoErr(t, "Messages(ID: "+id+")", err)
	switch len(ms) {
	case 0:
		return nil
	case 1:
		return ms[0]
	}
	t.Fatalf("Messages(ID: %s) = %d messages, want at most 1", id, len(ms))
	return nil
}

// messageDiff lists the fields in which got differs from want; times
// compare as instants.
func messageDiff(got, want *twofa.Message) []string {
	if got == nil || want == nil {
		if got != want {
			return []string{fmt.Sprintf("message = %v, want %v", got, want)}
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
	field("User", got.User == want.User, got.User, want.User)
	field("Channel", got.Channel == want.Channel, got.Channel, want.Channel)
	field("Kind", got.Kind == want.Kind, got.Kind, want.Kind)
	field("Payload", bytes.Equal(got.Payload, want.Payload), got.Payload, want.Payload)
	field("KeyID", got.KeyID == want.KeyID, got.KeyID, want.KeyID)
	field("Status", got.Status == want.Status, got.Status, want.Status)
	field("Attempts", got.Attempts == want.Attempts, got.Attempts, want.Attempts)
	field("LastError", got.LastError == want.LastError, got.LastError, want.LastError)
	field("NextAt", got.NextAt.Equal(want.NextAt), got.NextAt, want.NextAt)
	field("CreatedAt", got.CreatedAt.Equal(want.CreatedAt), got.CreatedAt, want.CreatedAt)
	field("SentAt", got.SentAt.Equal(want.SentAt), got.SentAt, want.SentAt)
	return diffs
}

// wantMessage checks every field of the stored message with want's ID.
func wantMessage(t *testing.T, what string, s twofa.Store, want *twofa.Message) {
	t.Helper()
	if diffs := messageDiff(message(t, s, want.ID), want); len(diffs) > 0 {
		t.Errorf("%s:\n\t%s", what, strings.Join(diffs, "\n\t"))
	}
}

// ids returns the messages' IDs, in order.
func ids(ms []*twofa.Message) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.ID
	}
	return out
}

// wantIDs checks the IDs of messages a call returned, in order.
func wantIDs(t *testing.T, call string, ms []*twofa.Message, err error, want ...string) {
	t.Helper()
	if err != nil {
		t.Errorf("%s = %v", call, err)
		return
	}
	if got := ids(ms); !slices.Equal(got, want) {
		t.Errorf("%s = %q, want %q", call, got, want)
	}
}

var (
	email  = []twofa.Channel{twofa.ChannelEmail}
	both   = []twofa.Channel{twofa.ChannelEmail, twofa.ChannelWebhook}
	lease  = 2 * time.Minute
	tokenA = "lease_a"
	tokenB = "lease_b"
)

// claimOne claims the one due message of email at now under token.
func claimOne(t *testing.T, s twofa.Store, now time.Time, token string) *twofa.Message {
	t.Helper()
	ms, err := s.ClaimMessages(t.Context(), email, now, lease, token, 1)
	if err != nil || len(ms) != 1 {
		t.Fatalf("ClaimMessages at %v = %q, %v; want one message", now, ids(ms), err)
	}
	return ms[0]
}

func testOutboxAppend(t *testing.T, open Opener) {
	t.Run("WithEvents", func(t *testing.T) {
		// Every field comes back as it went in; the store's own start
		// as a new queued message's do.
		s := openStore(t, open)
		zone := time.FixedZone("UTC+5:30", 5*3600+1800)
		a := newMessage(alice, "msg_a", twofa.ChannelEmail, now0.In(zone))
		a.Kind, a.NextAt = twofa.KindCode, now0.Add(time.Second)
		a.Payload, a.KeyID = append([]byte{0, 0xFF, 0}, sealed(4_000_000_001, "code")...), 4_000_000_001
		b := newMessage(twofa.UserRef{Tenant: "acme"}, "msg_b", twofa.ChannelWebhook, now0)
		b.Kind = twofa.KindEvent
		c := newMessage(bob, "msg_c", twofa.ChannelEmail, now0)
		// Fields that are the store's, set otherwise, are not taken.
		c.Status, c.Attempts, c.LastError, c.SentAt = twofa.MessageSent, 7, "x", now0
		wantNoErr(t, "AppendAudit", s.AppendAudit(t.Context(),
			carrying(twofa.EventEnrollStarted, alice, a, b), nil, carrying(twofa.EventDeviceRevoked, bob, c)))
		wantLog(t, s, twofa.EventEnrollStarted, twofa.EventDeviceRevoked)
		ms, err := s.Messages(t.Context(), twofa.MessageFilter{})
		wantIDs(t, "Messages", ms, err, "msg_c", "msg_b", "msg_a")
		wantMessage(t, "msg_a", s, a)
		wantMessage(t, "msg_b", s, b)
		wc := *c
		wc.Status, wc.Attempts, wc.LastError, wc.SentAt = twofa.MessageQueued, 0, "", time.Time{}
		wantMessage(t, "msg_c", s, &wc)
	})

	t.Run("TimesFromTheEvent", func(t *testing.T) {
		// A message without times is created at its event's time and due
		// at once.
		s := openStore(t, open)
		m := &twofa.Message{ID: "msg_a", Tenant: "acme", User: "alice", Channel: twofa.ChannelEmail, Kind: twofa.KindCode,
			Payload: sealed(1, "code"), KeyID: 1}
		e := carrying(twofa.EventEnrollStarted, alice, m)
		e.Time = now0.Add(time.Minute)
		wantNoErr(t, "AppendAudit", s.AppendAudit(t.Context(), e))
		w := *m
		w.Status, w.CreatedAt, w.NextAt = twofa.MessageQueued, now0.Add(time.Minute), now0.Add(time.Minute)
		wantMessage(t, "message without times", s, &w)
		claimOne(t, s, now0.Add(time.Minute), tokenA)
	})

	t.Run("Refused", func(t *testing.T) {
		// A message no worker could send is refused, with its event.
		s := openStore(t, open)
		for _, m := range []*twofa.Message{
			{Tenant: "acme", Channel: twofa.ChannelEmail, Kind: twofa.KindCode, CreatedAt: now0},
			{ID: "msg_a", Channel: twofa.ChannelEmail, Kind: twofa.KindCode, CreatedAt: now0},
			{ID: "msg_a", Tenant: "acme", Kind: twofa.KindCode, CreatedAt: now0},
			{ID: "msg_a", Tenant: "acme", Channel: twofa.ChannelEmail, CreatedAt: now0},
		} {
			if err := s.AppendAudit(t.Context(), carrying(twofa.EventEnrollStarted, alice, m)); err == nil {
				t.Errorf("AppendAudit(message %+v) = nil, want an error", m)
			}
		}
		wantLog(t, s)
		ms, err := s.Messages(t.Context(), twofa.MessageFilter{})
		wantIDs(t, "Messages", ms, err)
	})

	t.Run("WithChanges", func(t *testing.T) {
		// Every change that appends an event adds its messages.
		s := openStore(t, open)
		ctx := t.Context()
		n := 0
		with := func(typ twofa.EventType, ref twofa.UserRef) (*twofa.AuditEvent, string) {
			n++
			id := fmt.Sprintf("msg_%02d", n)
			return carrying(typ, ref, newMessage(ref, id, twofa.ChannelEmail, now0)), id
		}
		var want []string
		check := func(call string, err error, id string) {
			t.Helper()
			wantNoErr(t, call, err)
			want = append(want, id)
		}
		e, id := with(twofa.EventEnrollStarted, alice)
		_, err := s.CreateDevice(ctx, newDevice(alice, "dev_a", now0), 5, now0, e)
		check("CreateDevice", err, id)
		e, id = with(twofa.EventEnrollConfirmed, alice)
		ie, iid := with(twofa.EventBackupCodesIssued, alice)
		_, err = s.ActivateDevice(ctx, twofa.Activation{Ref: alice, DeviceID: "dev_a", Step: firstStep, Now: now0,
			BackupCodes: codeHashes("a", 3), Event: e, IssueEvent: ie})
		check("ActivateDevice", err, id)
		want = append(want, iid)
		e, id = with(twofa.EventVerifySucceeded, alice)
		check("Attempt", acceptStep(ctx, s, alice, "dev_a", firstStep+1, 0, now0, e), id)
		e, id = with(twofa.EventBackupCodesIssued, alice)
		check("ReplaceBackupCodes", s.ReplaceBackupCodes(ctx, alice, codeHashes("b", 3), now0, e), id)
		e, id = with(twofa.EventUnlocked, alice)
		check("Unlock", s.Unlock(ctx, alice, e), id)
		e, id = with(twofa.EventDeviceRenamed, alice)
		check("RenameDevice", s.RenameDevice(ctx, alice, "dev_a", "Work phone", e), id)
		e, id = with(twofa.EventDeviceRevoked, alice)
		check("DeleteDevice", s.DeleteDevice(ctx, alice, "dev_a", e), id)
		e, id = with(twofa.EventDisabled, alice)
		check("DeleteFactors", s.DeleteFactors(ctx, alice, e), id)

		ms, err := s.Messages(ctx, twofa.MessageFilter{})
		wantNoErr(t, "Messages", err)
		got := ids(ms)
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("outbox = %q, want %q", got, want)
		}
	})

	t.Run("NotWhenTheChangeFails", func(t *testing.T) {
		// A change that fails adds none of its messages.
		s := openStore(t, open)
		ctx := t.Context()
		d := enroll(t, s, alice, "dev_a", now0)
		queue(t, s, newMessage(alice, "msg_before", twofa.ChannelEmail, now0))
		before := len(allEvents(t, s))
		msg := func(id string) *twofa.AuditEvent {
			return carrying(twofa.EventVerifySucceeded, alice, newMessage(alice, id, twofa.ChannelEmail, now0))
		}

		// An effect whose condition fails: the step is not newer.
		err := acceptStep(ctx, s, alice, d.ID, d.LastStep, 0, now0, msg("msg_replayed"))
		wantErr(t, "Attempt(old step)", err, twofa.ErrReplayed)
		// A check that refuses.
		err = s.Attempt(ctx, twofa.AttemptRequest{Ref: alice, Now: now0, Hits: []twofa.LimitHit{{Key: "k", Window: time.Minute}}},
			func(*twofa.AttemptState) (*twofa.Outcome, error) { return nil, twofa.ErrNotEnrolled })
		wantErr(t, "Attempt(refused)", err, twofa.ErrNotEnrolled)
		// An unknown user.
		wantErr(t, "Unlock(unknown)", s.Unlock(ctx, nobody, msg("msg_unlock")), twofa.ErrNotFound)
		// The device limit.
		_, err = s.CreateDevice(ctx, newDevice(alice, "dev_b", now0), 1, now0, msg("msg_limit"))
		wantErr(t, "CreateDevice(over the limit)", err, twofa.ErrDeviceLimit)
		// A message that cannot be added undoes its event too.
		err = s.AppendAudit(ctx, msg("msg_ok"), msg("msg_before"))
		if err == nil {
			t.Errorf("AppendAudit(a message ID already in the outbox) = nil, want an error")
		}

		ms, err := s.Messages(ctx, twofa.MessageFilter{})
		wantIDs(t, "Messages", ms, err, "msg_before")
		if after := len(allEvents(t, s)); after != before {
			t.Errorf("the failed changes appended %d events, want none", after-before)
		}
	})
}
func testRetryMessage(t *testing.T, open Opener) {
	at := now0.Add(time.Hour)

	t.Run("Failed", func(t *testing.T) {
		s := openStore(t, open)
		m := newMessage(alice, "msg_a", twofa.ChannelEmail, now0)
		queue(t, s, m)
		claimOne(t, s, now0, tokenA)
		_, err := s.FinishMessage(t.Context(), m.ID, tokenA, twofa.MessageFailed, time.Time{}, "bad credentials", now0, nil)
		wantNoErr(t, "FinishMessage", err)
		wantNoErr(t, "RetryMessage", s.RetryMessage(t.Context(), m.ID, at, newEvent(twofa.EventMessageRetried, alice, "")))
		w := *m
		w.Attempts, w.NextAt, w.LastError = 1, at, "bad credentials"
		wantMessage(t, "retried message", s, &w)
		wantLog(t, s, twofa.EventEnrollStarted, twofa.EventMessageRetried)
		if m := claimOne(t, s, at, tokenB); m.Attempts != 2 {
			t.Errorf("claimed after retry: Attempts = %d, want 2", m.Attempts)
		}
	})

	t.Run("QueuedLater", func(t *testing.T) {
		s := openStore(t, open)
		m := newMessage(alice, "msg_a", twofa.ChannelEmail, now0)
		m.NextAt = now0.Add(24 * time.Hour)
		queue(t, s, m)
		wantNoErr(t, "RetryMessage", s.RetryMessage(t.Context(), m.ID, at, nil))
		claimOne(t, s, at, tokenA)
	})

	t.Run("Leased", func(t *testing.T) {
		// A message a worker is sending stays that worker's.
		s := openStore(t, open)
		m := newMessage(alice, "msg_a", twofa.ChannelEmail, now0)
		queue(t, s, m)
		claimOne(t, s, now0, tokenA)
		wantNoErr(t, "RetryMessage", s.RetryMessage(t.Context(), m.ID, now0.Add(time.Second), nil))
		got, err := s.ClaimMessages(t.Context(), email, now0.Add(time.Second), lease, tokenB, 10)
		wantIDs(t, "ClaimMessages(leased, retried)", got, err)
		if ok, err := s.FinishMessage(t.Context(), m.ID, tokenA, twofa.MessageSent, time.Time{}, "", now0.Add(time.Second), nil); !ok || err != nil {
			t.Errorf("FinishMessage(leased, retried) = %t, %v; want true, nil", ok, err)
		}
	})

	t.Run("ErrNotFound", func(t *testing.T) {
		s := openStore(t, open)
		m := newMessage(alice, "msg_a", twofa.ChannelEmail, now0)
		queue(t, s, m)
		claimOne(t, s, now0, tokenA)
		_, err := s.FinishMessage(t.Context(), m.ID, tokenA, twofa.MessageSent, time.Time{}, "", now0, nil)
		wantNoErr(t, "FinishMessage", err)
		for _, id := range []string{m.ID, "msg_unknown"} {
			err := s.RetryMessage(t.Context(), id, at, newEvent(twofa.EventMessageRetried, alice, ""))
			wantErr(t, "RetryMessage("+id+")", err, twofa.ErrNotFound)
		}
		wantLog(t, s, twofa.EventEnrollStarted)
		if got := message(t, s, m.ID); got.Status != twofa.MessageSent {
			t.Errorf("sent message after RetryMessage: Status = %s, want sent", got.Status)
		}
	})
}

func testMessages(t *testing.T, open Opener) {
	s := openStore(t, open)
	// Added in this order; IDs sort otherwise, so that ordering by ID fails.
	fixture := []struct {
		id     string
		ref    twofa.UserRef
		status twofa.MessageStatus
	}{
		{"msg_e", alice, twofa.MessageFailed},
		{"msg_d", otherAlice, twofa.MessageQueued},
		{"msg_c", bob, twofa.MessageSent},
		{"msg_b", alice, twofa.MessageQueued},
		{"msg_a", otherAlice, twofa.MessageFailed},
	}
	for i, f := range fixture {
		queue(t, s, newMessage(f.ref, f.id, twofa.ChannelEmail, now0.Add(-time.Duration(i)*time.Second)))
	}
	for _, f := range fixture {
		if f.status == twofa.MessageQueued {
			continue
		}
		tok := "lease_" + f.id
		ms, err := s.ClaimMessages(t.Context(), email, now0, lease, tok, 100)
		wantNoErr(t, "ClaimMessages", err)
		for _, m := range ms {
			st := twofa.MessageQueued
			if m.ID == f.id {
				st = f.status
			}
			_, err := s.FinishMessage(t.Context(), m.ID, tok, st, now0, "", now0, nil)
			wantNoErr(t, "FinishMessage", err)
		}
	}

	for _, tt := range []struct {
		name string
		f    twofa.MessageFilter
		want []string
	}{
		{"All", twofa.MessageFilter{}, []string{"msg_a", "msg_b", "msg_c", "msg_d", "msg_e"}},
		{"Tenant", twofa.MessageFilter{Tenant: "acme"}, []string{"msg_b", "msg_c", "msg_e"}},
		{"Status", twofa.MessageFilter{Status: twofa.MessageFailed}, []string{"msg_a", "msg_e"}},
		{"TenantAndStatus", twofa.MessageFilter{Tenant: "globex", Status: twofa.MessageQueued}, []string{"msg_d"}},
		{"ID", twofa.MessageFilter{ID: "msg_c"}, []string{"msg_c"}},
		{"IDOfAnotherTenant", twofa.MessageFilter{Tenant: "acme", ID: "msg_d"}, nil},
		{"Limit", twofa.MessageFilter{Limit: 2}, []string{"msg_a", "msg_b"}},
		{"Before", twofa.MessageFilter{Before: "msg_b", Limit: 2}, []string{"msg_c", "msg_d"}},
		{"BeforeWithFilters", twofa.MessageFilter{Tenant: "acme", Before: "msg_b"}, []string{"msg_c", "msg_e"}},
		{"BeforeTheFirst", twofa.MessageFilter{Before: "msg_e"}, nil},
		{"BeforeUnknown", twofa.MessageFilter{Before: "msg_zzz"}, nil},
		{"Unknown", twofa.MessageFilter{Status: "delivered"}, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ms, err := s.Messages(t.Context(), tt.f)
			wantIDs(t, fmt.Sprintf("Messages(%+v)", tt.f), ms, err, tt.want...)
		})
	}
}

func testOutboxStats(t *testing.T, open Opener) {
	s := openStore(t, open)
	if st, err := s.OutboxStats(t.Context()); err != nil || st != (twofa.OutboxStats{}) {
		t.Errorf("OutboxStats(empty) = %+v, %v; want zeros", st, err)
	}
	for i := range 5 {
		queue(t, s, newMessage(alice, fmt.Sprintf("msg_%d", i), twofa.ChannelEmail, now0.Add(time.Duration(i)*time.Second)))
	}
	for _, st := range []twofa.MessageStatus{twofa.MessageSent, twofa.MessageFailed, twofa.MessageFailed} {
		m := claimOne(t, s, now0.Add(time.Minute), tokenA)
		_, err := s.FinishMessage(t.Context(), m.ID, tokenA, st, time.Time{}, "", now0, nil)
		wantNoErr(t, "FinishMessage", err)
	}
	want := twofa.OutboxStats{Queued: 2, Sent: 1, Failed: 2, OldestQueued: now0.Add(3 * time.Second)}
	st, err := s.OutboxStats(t.Context())
	if err != nil || st.Queued != want.Queued || st.Sent != want.Sent || st.Failed != want.Failed || !st.OldestQueued.Equal(want.OldestQueued) {
		t.Errorf("OutboxStats = %+v, %v; want %+v", st, err, want)
	}
}

func testDeleteMessages(t *testing.T, open Opener) {
	// Messages done before the cut-off go, sent or failed; queued ones and
	// later ones stay.
	s := openStore(t, open)
	for i := range 5 {
		queue(t, s, newMessage(alice, fmt.Sprintf("msg_%d", i), twofa.ChannelEmail, now0.Add(time.Duration(i)*time.Second)))
	}
	for i, st := range []twofa.MessageStatus{twofa.MessageSent, twofa.MessageFailed, twofa.MessageSent} {
		m := claimOne(t, s, now0.Add(time.Minute), tokenA)
		_, err := s.FinishMessage(t.Context(), m.ID, tokenA, st, time.Time{}, "", now0.Add(time.Duration(i)*time.Hour), nil)
		wantNoErr(t, "FinishMessage", err)
	}
	n, err := s.DeleteMessages(t.Context(), now0.Add(90*time.Minute))
	if err != nil || n != 2 {
		t.Errorf("DeleteMessages = %d, %v; want 2", n, err)
	}
	ms, err := s.Messages(t.Context(), twofa.MessageFilter{Limit: 10})
	wantIDs(t, "Messages after DeleteMessages", ms, err, "msg_4", "msg_3", "msg_2")
	if n, err := s.DeleteMessages(t.Context(), now0.Add(90*time.Minute)); err != nil || n != 0 {
		t.Errorf("DeleteMessages again = %d, %v; want 0", n, err)
	}
}

func testOutboxSealed(t *testing.T, open Opener) {
	// Payloads not yet sent are sealed values like any other: listed
	// between devices and settings, re-sealed by compare-and-set, counted.
	s := openStore(t, open)
	sealedFixture(t, s)
	a := newMessage(alice, "msg_a", twofa.ChannelEmail, now0)
	b := newMessage(twofa.UserRef{Tenant: "globex"}, "msg_b", twofa.ChannelWebhook, now0)
	b.Kind, b.Payload, b.KeyID = twofa.KindEvent, sealed(2, "body of msg_b"), 2
	c := newMessage(alice, "msg_c", twofa.ChannelEmail, now0)
	queue(t, s, c, b, a)
	claimOne(t, s, now0, tokenA) // msg_c, added first
	ok, err := s.FinishMessage(t.Context(), "msg_c", tokenA, twofa.MessageSent, time.Time{}, "", now0, nil)
	if !ok || err != nil {
		t.Fatalf("FinishMessage(msg_c) = %t, %v", ok, err)
	}

	got, err := s.SealedSecrets(t.Context(), 3, "", 100)
	wantNoErr(t, "SealedSecrets", err)
	var refs []string
	for _, x := range got {
		refs = append(refs, x.Ref)
	}
	want := []string{"device:dev_a", "device:dev_b", "device:dev_c", "message:msg_a", "message:msg_b", "setting:audit_key", "setting:webhook_secret"}
	if !slices.Equal(refs, want) {
		t.Fatalf("SealedSecrets = %q, want %q", refs, want)
	}
	for _, x := range got {
		m := map[string]*twofa.Message{"message:msg_a": a, "message:msg_b": b}[x.Ref]
		if m == nil {
			continue
		}
		if x.Message == nil || x.Device != nil || x.Setting != "" {
			t.Errorf("%s: Message, Device, Setting = %v, %v, %q; want the message alone", x.Ref, x.Message, x.Device, x.Setting)
			continue
		}
		if x.Message.ID != m.ID || x.Message.Tenant != m.Tenant || x.Message.User != m.User || x.Message.Channel != m.Channel || x.Message.Kind != m.Kind ||
			!bytes.Equal(twofa.MessageAD(x.Message), twofa.MessageAD(m)) {
			t.Errorf("%s: Message = %+v, want the fields of %s's associated data", x.Ref, x.Message, m.ID)
		}
		if !bytes.Equal(x.Blob, m.Payload) || x.KeyID != m.KeyID {
			t.Errorf("%s: Blob, KeyID = %x, %d; want %x, %d", x.Ref, x.Blob, x.KeyID, m.Payload, m.KeyID)
		}
	}
	// Paging through the messages' range.
	for _, tt := range []struct {
		after string
		limit int
		want  []string
	}{
		{"device:dev_c", 1, want[3:4]},
		{"message:msg_a", 2, want[4:6]},
		{"message:msg_b", 100, want[5:]},
		{"message:", 1, want[3:4]},
	} {
		page, err := s.SealedSecrets(t.Context(), 3, tt.after, tt.limit)
		wantNoErr(t, "SealedSecrets", err)
		var refs []string
		for _, x := range page {
			refs = append(refs, x.Ref)
		}
		if !slices.Equal(refs, tt.want) {
			t.Errorf("SealedSecrets(3, %q, %d) = %q, want %q", tt.after, tt.limit, refs, tt.want)
		}
	}

	if total, stale, err := s.CountSealed(t.Context(), 2); total != 7 || stale != 5 || err != nil {
		t.Errorf("CountSealed(2) = %d, %d, %v; want 7, 5, nil (two messages, one under key 2)", total, stale, err)
	}
	old := findSealed(t, s, "message:msg_a")
	blob := sealed(2, "body of msg_a")
	if ok, err := s.ReplaceSealed(t.Context(), old, blob, 2); !ok || err != nil {
		t.Fatalf("ReplaceSealed(message) = %t, %v; want true, nil", ok, err)
	}
	w := *a
	w.Payload, w.KeyID = blob, 2
	wantMessage(t, "message after ReplaceSealed", s, &w)
	if ok, err := s.ReplaceSealed(t.Context(), old, sealed(3, "x"), 3); ok || err != nil {
		t.Errorf("ReplaceSealed(stale) = %t, %v; want false, nil", ok, err)
	}
	// A message sent meanwhile is left alone.
	m := claimOne(t, s, now0, tokenB)
	oldB := findSealed(t, s, "message:"+m.ID)
	_, err = s.FinishMessage(t.Context(), m.ID, tokenB, twofa.MessageSent, time.Time{}, "", now0, nil)
	wantNoErr(t, "FinishMessage", err)
	if ok, err := s.ReplaceSealed(t.Context(), oldB, sealed(3, "x"), 3); ok || err != nil {
		t.Errorf("ReplaceSealed(message sent meanwhile) = %t, %v; want false, nil", ok, err)
	}
	if got := message(t, s, m.ID); got.Payload != nil {
		t.Errorf("sent message's payload after ReplaceSealed = %x, want none", got.Payload)
	}
	if total, stale, err := s.CountSealed(t.Context(), 2); total != 6 || stale != 4 || err != nil {
		t.Errorf("CountSealed(2) at the end = %d, %d, %v; want 6, 4, nil", total, stale, err)
	}
}
