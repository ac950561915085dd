package storetest

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twofa/twofa"
)

func testClaimMessages(t *testing.T, open Opener) {
	t.Run("DueOldestFirst", func(t *testing.T) {
		s := openStore(t, open)
		var ms []*twofa.Message
		for i, due := range []time.Duration{2 * time.Second, 0, time.Second, time.Hour, time.Second} {
			m := newMessage(alice, fmt.Sprintf("msg_%d", i), twofa.ChannelEmail, now0)
			m.NextAt = now0.Add(due)
			ms = append(ms, m)
		}
		queue(t, s, ms...)
		got, err := s.ClaimMessages(t.Context(), email, now0.Add(5*time.Second), 3*time.Hour, tokenA, 10)
		// Equal due times in the order they were added.
		wantIDs(t, "ClaimMessages", got, err, "msg_1", "msg_2", "msg_4", "msg_0")
		for _, m := range got {
			if m.Attempts != 1 || m.Status != twofa.MessageQueued || !bytes.Equal(m.Payload, message(t, s, m.ID).Payload) {
				t.Errorf("claimed %s: Attempts, Status = %d, %s, payload %x; want 1, queued, the stored payload", m.ID, m.Attempts, m.Status, m.Payload)
			}
		}
		got, err = s.ClaimMessages(t.Context(), email, now0.Add(time.Hour-time.Microsecond), lease, tokenB, 10)
		wantIDs(t, "ClaimMessages(before msg_3 is due)", got, err)
		got, err = s.ClaimMessages(t.Context(), email, now0.Add(time.Hour), lease, tokenB, 10)
		wantIDs(t, "ClaimMessages(when msg_3 is due)", got, err, "msg_3")
	})

	t.Run("Channels", func(t *testing.T) {
		s := openStore(t, open)
		queue(t, s, newMessage(alice, "msg_mail", twofa.ChannelEmail, now0), newMessage(alice, "msg_hook", twofa.ChannelWebhook, now0))
		got, err := s.ClaimMessages(t.Context(), nil, now0, lease, tokenA, 10)
		wantIDs(t, "ClaimMessages(no channel)", got, err)
		got, err = s.ClaimMessages(t.Context(), []twofa.Channel{"sms"}, now0, lease, tokenA, 10)
		wantIDs(t, "ClaimMessages(sms)", got, err)
		got, err = s.ClaimMessages(t.Context(), []twofa.Channel{twofa.ChannelWebhook}, now0, lease, tokenA, 10)
		wantIDs(t, "ClaimMessages(webhook)", got, err, "msg_hook")
		got, err = s.ClaimMessages(t.Context(), both, now0, lease, tokenB, 10)
		wantIDs(t, "ClaimMessages(email, webhook)", got, err, "msg_mail")
	})

	t.Run("Limit", func(t *testing.T) {
		s := openStore(t, open)
		for i := range 5 {
			queue(t, s, newMessage(alice, fmt.Sprintf("msg_%d", i), twofa.ChannelEmail, now0.Add(time.Duration(i)*time.Second)))
		}
		at := now0.Add(time.Minute)
		for i, want := range [][]string{{"msg_0", "msg_1"}, {"msg_2", "msg_3"}, {"msg_4"}, nil} {
			got, err := s.ClaimMessages(t.Context(), email, at, lease, fmt.Sprint("lease_", i), 2)
			wantIDs(t, fmt.Sprintf("ClaimMessages #%d", i+1), got, err, want...)
		}
		got, err := s.ClaimMessages(t.Context(), email, at, lease, tokenA, 0)
		wantIDs(t, "ClaimMessages(limit 0)", got, err)
	})

	t.Run("Lease", func(t *testing.T) {
		// A claimed message is the claimer's until its lease runs out;
		// then it is due again, as after a worker died.
		s := openStore(t, open)
		queue(t, s, newMessage(alice, "msg_a", twofa.ChannelEmail, now0))
		claimOne(t, s, now0, tokenA)
		got, err := s.ClaimMessages(t.Context(), email, now0.Add(lease-time.Microsecond), lease, tokenB, 10)
		wantIDs(t, "ClaimMessages(while leased)", got, err)
		m := claimOne(t, s, now0.Add(lease), tokenB)
		if m.ID != "msg_a" || m.Attempts != 2 {
			t.Errorf("ClaimMessages(lease run out) = %s with Attempts %d, want msg_a with 2", m.ID, m.Attempts)
		}
	})

	t.Run("OnlyQueued", func(t *testing.T) {
		s := openStore(t, open)
		queue(t, s, newMessage(alice, "msg_sent", twofa.ChannelEmail, now0), newMessage(alice, "msg_failed", twofa.ChannelEmail, now0))
		for _, st := range []twofa.MessageStatus{twofa.MessageSent, twofa.MessageFailed} {
			m := claimOne(t, s, now0, "lease_"+string(st))
			ok, err := s.FinishMessage(t.Context(), m.ID, "lease_"+string(st), st, time.Time{}, "", now0, nil)
			if !ok || err != nil {
				t.Fatalf("FinishMessage(%s) = %t, %v", st, ok, err)
			}
		}
		got, err := s.ClaimMessages(t.Context(), email, now0.Add(1000*time.Hour), lease, tokenA, 10)
		wantIDs(t, "ClaimMessages(sent and failed only)", got, err)
	})

	t.Run("RaceAcrossHandles", func(t *testing.T) {
		// 32 workers in two processes claim at once: none gets a
		// message another got, and none is lost.
		o := openStore(t, open)
		const n = 40
		for i := range n {
			queue(t, o, newMessage(alice, fmt.Sprintf("msg_%02d", i), twofa.ChannelEmail, now0))
		}
		type result struct {
			ms  []*twofa.Message
			err error
		}
		results := race(t, o, 32, true, func(ctx context.Context, i int, s twofa.Store) result {
			ms, err := s.ClaimMessages(ctx, email, now0, lease, fmt.Sprint("lease_", i), 2)
			return result{ms, err}
		})
		seen := map[string]int{}
		for i, r := range results {
			if r.err != nil {
				t.Fatalf("ClaimMessages #%d = %v", i, r.err)
			}
			for _, m := range r.ms {
				if prev, ok := seen[m.ID]; ok {
					t.Errorf("%s claimed by #%d and #%d", m.ID, prev, i)
				}
				seen[m.ID] = i
			}
		}
		rest, err := o.ClaimMessages(t.Context(), email, now0, lease, "lease_rest", n)
		wantNoErr(t, "ClaimMessages(the rest)", err)
		for _, m := range rest {
			if prev, ok := seen[m.ID]; ok {
				t.Errorf("%s claimed by #%d and again afterwards", m.ID, prev)
			}
			seen[m.ID] = -1
		}
		if len(seen) != n {
			t.Errorf("%d messages claimed in all, want %d", len(seen), n)
		}
	})
}

func testFinishMessage(t *testing.T, open Opener) {
	at := now0.Add(10 * time.Second)

	t.Run("Sent", func(t *testing.T) {
		s := openStore(t, open)
		m := newMessage(alice, "msg_a", twofa.ChannelEmail, now0)
		queue(t, s, m)
		claimOne(t, s, now0, tokenA)
		ok, err := s.FinishMessage(t.Context(), m.ID, tokenA, twofa.MessageSent, time.Time{}, "", at,
			newEvent(twofa.EventMessageSent, alice, ""))
		if !ok || err != nil {
			t.Fatalf("FinishMessage(sent) = %t, %v; want true, nil", ok, err)
		}
		w := *m
		w.Status, w.Attempts, w.SentAt, w.Payload, w.KeyID = twofa.MessageSent, 1, at, nil, 0
		wantMessage(t, "sent message", s, &w)
		wantLog(t, s, twofa.EventEnrollStarted, twofa.EventMessageSent)
		// The payload is gone, so rotation has nothing to re-seal.
		if total, _, err := s.CountSealed(t.Context(), 1); total != 0 || err != nil {
			t.Errorf("CountSealed after the only message was sent = %d, %v; want 0", total, err)
		}
		// Final: never claimed or finished again.
		got, err := s.ClaimMessages(t.Context(), email, at.Add(time.Hour), lease, tokenB, 10)
		wantIDs(t, "ClaimMessages(after sent)", got, err)
		if ok, err := s.FinishMessage(t.Context(), m.ID, tokenA, twofa.MessageFailed, time.Time{}, "x", at, nil); ok || err != nil {
			t.Errorf("FinishMessage(sent again) = %t, %v; want false, nil", ok, err)
		}
	})

	t.Run("Failed", func(t *testing.T) {
		s := openStore(t, open)
		m := newMessage(alice, "msg_a", twofa.ChannelEmail, now0)
		queue(t, s, m)
		claimOne(t, s, now0, tokenA)
		ok, err := s.FinishMessage(t.Context(), m.ID, tokenA, twofa.MessageFailed, time.Time{}, "550 5.1.1 mailbox unknown", at,
			newEvent(twofa.EventMessageFailed, alice, ""))
		if !ok || err != nil {
			t.Fatalf("FinishMessage(failed) = %t, %v; want true, nil", ok, err)
		}
		w := *m
		w.Status, w.Attempts, w.SentAt, w.LastError = twofa.MessageFailed, 1, at, "550 5.1.1 mailbox unknown"
		wantMessage(t, "failed message (payload kept, for a retry)", s, &w)
		wantLog(t, s, twofa.EventEnrollStarted, twofa.EventMessageFailed)
		got, err := s.ClaimMessages(t.Context(), email, at.Add(time.Hour), lease, tokenB, 10)
		wantIDs(t, "ClaimMessages(after failed)", got, err)
	})

	t.Run("QueuedAgain", func(t *testing.T) {
		s := openStore(t, open)
		m := newMessage(alice, "msg_a", twofa.ChannelEmail, now0)
		queue(t, s, m)
		claimOne(t, s, now0, tokenA)
		next := at.Add(30 * time.Second)
		ok, err := s.FinishMessage(t.Context(), m.ID, tokenA, twofa.MessageQueued, next, "421 try later", at, nil)
		if !ok || err != nil {
			t.Fatalf("FinishMessage(queued) = %t, %v; want true, nil", ok, err)
		}
		w := *m
		w.Attempts, w.NextAt, w.LastError = 1, next, "421 try later"
		wantMessage(t, "message queued again", s, &w)
		got, err := s.ClaimMessages(t.Context(), email, next.Add(-time.Microsecond), lease, tokenB, 10)
		wantIDs(t, "ClaimMessages(before next)", got, err)
		// The lease was released: due at next, not when it runs out.
		if m := claimOne(t, s, next, tokenB); m.Attempts != 2 || m.LastError != "421 try later" {
			t.Errorf("claimed again: Attempts, LastError = %d, %q; want 2, the last error", m.Attempts, m.LastError)
		}
	})

	t.Run("StaleToken", func(t *testing.T) {
		// A worker whose lease ran out and was claimed by another
		// changes nothing.
		s := openStore(t, open)
		m := newMessage(alice, "msg_a", twofa.ChannelEmail, now0)
		queue(t, s, m)
		claimOne(t, s, now0, tokenA)
		for _, tok := range []string{tokenB, ""} {
			if ok, err := s.FinishMessage(t.Context(), m.ID, tok, twofa.MessageSent, time.Time{}, "", at, newEvent(twofa.EventMessageSent, alice, "")); ok || err != nil {
				t.Errorf("FinishMessage(token %q) = %t, %v; want false, nil", tok, ok, err)
			}
		}
		claimOne(t, s, now0.Add(lease), tokenB)
		if ok, err := s.FinishMessage(t.Context(), m.ID, tokenA, twofa.MessageSent, time.Time{}, "", at, newEvent(twofa.EventMessageSent, alice, "")); ok || err != nil {
			t.Errorf("FinishMessage(lease taken over) = %t, %v; want false, nil", ok, err)
		}
		w := *m
		w.Attempts = 2
		wantMessage(t, "message after stale finishes", s, &w)
		wantLog(t, s, twofa.EventEnrollStarted)
		if ok, err := s.FinishMessage(t.Context(), m.ID, tokenB, twofa.MessageSent, time.Time{}, "", at, nil); !ok || err != nil {
			t.Errorf("FinishMessage(the current token) = %t, %v; want true, nil", ok, err)
		}
		if ok, err := s.FinishMessage(t.Context(), "msg_unknown", tokenB, twofa.MessageSent, time.Time{}, "", at, nil); ok || err != nil {
			t.Errorf("FinishMessage(unknown message) = %t, %v; want false, nil", ok, err)
		}
	})

	t.Run("LeaseRanOutUnclaimed", func(t *testing.T) {
		// A slow worker whose lease ran out, with no one else claiming
		// the message, still records that it sent it.
		s := openStore(t, open)
		queue(t, s, newMessage(alice, "msg_a", twofa.ChannelEmail, now0))
		claimOne(t, s, now0, tokenA)
		if ok, err := s.FinishMessage(t.Context(), "msg_a", tokenA, twofa.MessageSent, time.Time{}, "", now0.Add(2*lease), nil); !ok || err != nil {
			t.Errorf("FinishMessage(after the lease) = %t, %v; want true, nil", ok, err)
		}
	})

	t.Run("BadStatus", func(t *testing.T) {
		s := openStore(t, open)
		m := newMessage(alice, "msg_a", twofa.ChannelEmail, now0)
		queue(t, s, m)
		claimOne(t, s, now0, tokenA)
		ok, err := s.FinishMessage(t.Context(), m.ID, tokenA, "delivered", time.Time{}, "", at, nil)
		if ok || twofa.ErrorCode(err) != twofa.EINVALID {
			t.Errorf("FinishMessage(status delivered) = %t, %v; want false, invalid", ok, err)
		}
		w := *m
		w.Attempts = 1
		wantMessage(t, "message after a bad status", s, &w)
	})
}
