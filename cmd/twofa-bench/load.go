package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// lane is what one worker records; lanes are merged at the end, so the
// hot path takes no lock.
type lane struct {
	wire       *wire // the worker's connection
	rng        *mrand.Rand
	hist       histogram
	sent       [numOps]int64
	skipped    [numOps]int64
	answers    [numAnswers]int64
	status     map[int]int64
	unexpected int64
	samples    []string
}

func newLane() *lane {
	var seed [16]byte
	rand.Read(seed[:])
	return &lane{
		rng:    mrand.New(mrand.NewPCG(leUint64(seed[:8]), leUint64(seed[8:]))),
		status: map[int]int64{},
	}
}

func leUint64(b []byte) uint64 {
	var v uint64
	for i := range 8 {
		v |= uint64(b[i]) << (8 * i)
	}
	return v
}

// post sends a JSON body on the lane's connection and decodes the reply
// into out.
func (l *lane) post(ctx context.Context, path string, body []byte, out any, header ...byte) (int, error) {
	status, raw, err := l.wire.post(ctx, path, body, header...)
	if err != nil {
		return status, err
	}
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			return status, fmt.Errorf("reply is not JSON: %.100q", raw)
		}
	}
	return status, nil
}

func (l *lane) unexpectedf(format string, args ...any) {
	l.unexpected++
	if len(l.samples) < 10 {
		l.samples = append(l.samples, fmt.Sprintf(format, args...))
	}
}

func (l *lane) merge(o *lane) {
	l.hist.merge(&o.hist)
	for i := range l.sent {
		l.sent[i] += o.sent[i]
		l.skipped[i] += o.skipped[i]
	}
	for i := range l.answers {
		l.answers[i] += o.answers[i]
	}
	for k, v := range o.status {
		l.status[k] += v
	}
	l.unexpected += o.unexpected
	l.samples = append(l.samples, o.samples...)
}

// budget bounds a run by time and by requests.
type budget struct {
	deadline time.Time // zero: none
	limit    int64     // 0: none
	issued   atomic.Int64
}

func (bg *budget) over() bool { return !bg.deadline.IsZero() && !time.Now().Before(bg.deadline) }

// take admits one more request.
func (bg *budget) take() bool {
	if bg.over() {
		return false
	}
	n := bg.issued.Add(1)
	return bg.limit == 0 || n <= bg.limit
}

// drive runs cfg.concurrency copies of work until the budget runs out or
// ctx is done, and returns the merged lanes and the time taken.
func (b *bencher) drive(ctx context.Context, stderr io.Writer, name string, work func(context.Context, *budget, *lane)) (*lane, time.Duration) {
	return b.driveFor(ctx, stderr, name, b.cfg.duration, b.cfg.requests, work)
}

func (b *bencher) driveFor(ctx context.Context, stderr io.Writer, name string, d time.Duration, limit int64, work func(context.Context, *budget, *lane)) (*lane, time.Duration) {
	bg := &budget{limit: limit}
	start := time.Now()
	if d > 0 {
		bg.deadline = start.Add(d)
	}
	stopProgress := progress(stderr, func(d time.Duration) string {
		n := bg.issued.Load()
		return fmt.Sprintf("%s: %.0fs, %d requests (%.0f/s)", name, d.Seconds(), n, float64(n)/d.Seconds())
	})
	lanes := make([]*lane, b.cfg.concurrency)
	for i := range lanes {
		lanes[i] = newLane()
		w, err := newWire(b.cfg.url, b.cfg.key)
		if err != nil {
			panic(err) // runBench checked the URL
		}
		lanes[i].wire = w
	}
	// An interrupt ends the requests in flight at once.
	stop := context.AfterFunc(ctx, func() {
		for _, l := range lanes {
			l.wire.interrupt()
		}
	})
	var wg sync.WaitGroup
	for _, l := range lanes {
		wg.Go(func() { work(ctx, bg, l) })
	}
	wg.Wait()
	stop()
	for _, l := range lanes {
		l.wire.Close()
	}
	elapsed := time.Since(start)
	stopProgress()
	total := newLane()
	for _, l := range lanes {
		total.merge(l)
	}
	return total, elapsed
}

// loader is phase 2: verifications against the enrolled users.
type loader struct {
	*bencher
	step        func(time.Time) uint64
	validNext   atomic.Uint64 // round-robin cursors over users
	invalidNext atomic.Uint64

	mu      sync.Mutex
	recent  [256]acceptedCode // ring of codes just accepted, for replays
	nrecent uint64
}

type acceptedCode struct {
	u    *user
	step uint64
	code string
}

// opResult is what became of one op.
type opResult int

const (
	opDone opResult = iota
	opSkipped
	opStop
)

func (ld *loader) work(ctx context.Context, bg *budget, l *lane) {
	for ctx.Err() == nil && !bg.over() {
		op := ld.cfg.mix.pick(l.rng)
		var r opResult
		switch op {
		case opValid:
			r = ld.valid(ctx, bg, l)
		case opInvalid:
			r = ld.invalid(ctx, bg, l)
		case opReplayed:
			r = ld.replay(ctx, bg, l)
		}
		switch r {
		case opStop:
			return
		case opSkipped:
			l.skipped[op]++
			if op == opValid {
				// Every user has used this step: wait for the next.
				s := ld.step(time.Now())
				wait := time.Until(time.Unix(int64(s+1)*int64(ld.cfg.period), 0))
				if !bg.deadline.IsZero() {
					wait = min(wait, time.Until(bg.deadline))
				}
				sleepCtx(ctx, wait)
			}
		}
	}
}

// valid sends the current code of the next user who has not used this
// step yet.
func (ld *loader) valid(ctx context.Context, bg *budget, l *lane) opResult {
	s := ld.step(time.Now())
	n := uint64(len(ld.users))
	for range n {
		u := ld.users[ld.validNext.Add(1)%n]
		if !u.tryLock() {
			continue
		}
		if u.last >= s {
			u.unlock()
			continue
		}
		code, ok := freshCode(u.key, s)
		if !ok {
			u.unlock()
			continue
		}
		if !bg.take() {
			u.unlock()
			return opStop
		}
		ld.send(ctx, l, opValid, u, code, s)
		u.unlock()
		return opDone
	}
	return opSkipped
}

// invalid sends a wrong code to the next user with room for a failure.
func (ld *loader) invalid(ctx context.Context, bg *budget, l *lane) opResult {
	n := uint64(len(ld.users))
	for range n {
		u := ld.users[ld.invalidNext.Add(1)%n]
		if !u.tryLock() {
			continue
		}
		if u.fails >= failLimit {
			u.unlock()
			continue
		}
		now := time.Now()
		code := wrongCode(u.key, l.rng, now)
		if !bg.take() {
			u.unlock()
			return opStop
		}
		ld.send(ctx, l, opInvalid, u, code, ld.step(now))
		u.unlock()
		return opDone
	}
	return opSkipped
}

// replay resends a code accepted in the current step, which the server
// still has in its window.
func (ld *loader) replay(ctx context.Context, bg *budget, l *lane) opResult {
	s := ld.step(time.Now())
	var a acceptedCode
	ld.mu.Lock()
	for i := uint64(0); i < min(ld.nrecent, uint64(len(ld.recent))); i++ {
		r := &ld.recent[(ld.nrecent-1-i)%uint64(len(ld.recent))]
		if r.u == nil {
			continue
		}
		if r.step < s {
			break // older ones are older still
		}
		if !r.u.tryLock() {
			continue
		}
		if r.u.fails >= failLimit || r.u.last != r.step {
			r.u.unlock()
			continue
		}
		a, r.u = *r, nil
		break
	}
	ld.mu.Unlock()
	if a.u == nil {
		return opSkipped
	}
	if !bg.take() {
		a.u.unlock()
		return opStop
	}
	ld.send(ctx, l, opReplayed, a.u, a.code, a.step)
	a.u.unlock()
	return opDone
}

// send verifies code for u (locked by the caller), records the latency and
// the answer, checks the answer against the op, and keeps u's state.
func (ld *loader) send(ctx context.Context, l *lane, op int, u *user, code string, step uint64) {
	var r apiReply
	start := time.Now()
	status, err := l.post(ctx, u.path, codeBody(code), &r, u.ipHdr...)
	end := time.Now()
	if err != nil && ctx.Err() != nil {
		return // interrupted: neither a sample nor an error
	}
	l.hist.record(end.Sub(start))
	l.sent[op]++
	l.status[status]++
	late := ld.step(end) >= step+2

	var ans int
	switch {
	case err != nil:
		ans = ansError
		l.unexpectedf("%s op for %s: %v", opNames[op], u.id, err)
	case status == http.StatusTooManyRequests:
		ans = ansRateLimited
	case status != http.StatusOK:
		ans = ansError
		l.unexpectedf("%s op for %s: HTTP %d %s", opNames[op], u.id, status, replyError(r))
	case r.Valid:
		ans = ansValid
	case r.Reason == "replayed":
		ans = ansReplayed
	case r.Reason == "invalid_code" && late && op != opInvalid:
		ans = ansLate
	case r.Reason == "invalid_code":
		ans = ansInvalidCode
	default:
		ans = ansError
		l.unexpectedf("%s op for %s: refused with reason %q", opNames[op], u.id, r.Reason)
	}
	l.answers[ans]++

	want := [numOps]int{opValid: ansValid, opInvalid: ansInvalidCode, opReplayed: ansReplayed}[op]
	if ans != want && ans != ansError && ans != ansRateLimited && ans != ansLate {
		switch {
		case op == opValid:
			l.unexpectedf("VALID CODE REFUSED: %s step %d answered %s", u.id, step, answerNames[ans])
		case ans == ansValid:
			l.unexpectedf("%s CODE ACCEPTED: %s step %d", strings.ToUpper(opNames[op]), u.id, step)
		default:
			l.unexpectedf("%s code for %s answered %s", opNames[op], u.id, answerNames[ans])
		}
	}

	switch {
	case ans == ansValid:
		u.last, u.fails = max(u.last, step), 0
		if op == opValid {
			ld.mu.Lock()
			ld.recent[ld.nrecent%uint64(len(ld.recent))] = acceptedCode{u: u, step: step, code: code}
			ld.nrecent++
			ld.mu.Unlock()
		}
	case status == http.StatusOK:
		u.fails++
	case ans == ansError:
		// Whatever the server did, assume the worst: the step may be
		// burnt and failures counted.
		u.last, u.fails = max(u.last, step), failLimit
	}
}
