package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twofa/twofa/otp"
)

// enrollStats is phase 1 of the report.
type enrollStats struct {
	Users     int      `json:"users"`
	Errors    int      `json:"errors"`
	Seconds   float64  `json:"seconds"`
	PerSecond float64  `json:"per_second"`
	Samples   []string `json:"error_samples,omitempty"`
}

// enroll enrolls and confirms cfg.users users with cfg.concurrency workers.
func (b *bencher) enroll(ctx context.Context, stderr io.Writer, st *enrollStats) error {
	n := b.cfg.users
	users := make([]*user, n)
	var next, done atomic.Int64
	var mu sync.Mutex
	fail := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		st.Errors++
		if len(st.Samples) < 5 {
			st.Samples = append(st.Samples, "enroll: "+fmt.Sprintf(format, args...))
		}
	}
	start := time.Now()
	stopProgress := progress(stderr, func(d time.Duration) string {
		k := done.Load()
		return fmt.Sprintf("enroll: %d/%d users (%.0f/s)", k, n, float64(k)/d.Seconds())
	})
	var wg sync.WaitGroup
	for range min(b.cfg.concurrency, n) {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				u, err := b.enrollOne(ctx, fmt.Sprintf("%s-%d", b.cfg.prefix, i))
				if err != nil {
					if ctx.Err() == nil {
						fail("%v", err)
					}
					continue
				}
				users[i] = u
				done.Add(1)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	stopProgress()
	for _, u := range users {
		if u != nil {
			b.users = append(b.users, u)
		}
	}
	st.Users, st.Seconds = len(b.users), elapsed.Seconds()
	st.PerSecond = float64(len(b.users)) / elapsed.Seconds()
	fmt.Fprintf(stderr, "enroll: %d users in %.1fs (%.0f/s), %d errors\n", st.Users, st.Seconds, st.PerSecond, st.Errors)
	if len(b.users) == 0 && ctx.Err() == nil {
		for _, s := range st.Samples {
			fmt.Fprintln(stderr, "  ", s)
		}
		return errors.New("no user could be enrolled")
	}
	return nil
}

// enrollOne begins a TOTP enrollment and confirms it with the code of the
// current step, which the server then holds as the last accepted step.
func (b *bencher) enrollOne(ctx context.Context, id string) (*user, error) {
	base := "/v1/users/" + url.PathEscape(id)
	var en struct {
		DeviceID string `json:"device_id"`
		Secret   string `json:"secret"`
		apiReply
	}
	status, err := b.post(ctx, base+"/totp", fmt.Appendf(nil, `{"name":"bench","period":%d}`, b.cfg.period), &en)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", id, err)
	}
	if status != http.StatusCreated {
		return nil, fmt.Errorf("%s: begin: %d %s", id, status, replyError(en.apiReply))
	}
	secret, err := otp.DecodeSecret(en.Secret)
	if err != nil {
		return nil, fmt.Errorf("%s: secret: %w", id, err)
	}
	k, err := otp.NewKey(secret, otp.Params{Period: b.cfg.period})
	clear(secret)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", id, err)
	}
	// A code that is also a neighbouring step's, or one that went stale
	// in flight, is retried with the next step (an enrollment takes 10).
	for try := 0; try < 5; try++ {
		s := b.step(time.Now())
		code, ok := freshCode(k, s)
		if !ok {
			sleepCtx(ctx, time.Until(time.Unix(int64(s+1)*int64(b.cfg.period), 0)))
			continue
		}
		var r apiReply
		status, err := b.post(ctx, base+"/totp/"+url.PathEscape(en.DeviceID)+"/confirm", codeBody(code), &r)
		if err != nil {
			return nil, fmt.Errorf("%s: confirm: %w", id, err)
		}
		if status != http.StatusOK {
			return nil, fmt.Errorf("%s: confirm: %d %s", id, status, replyError(r))
		}
		if r.Valid {
			u := &user{id: id, path: base + "/verify", key: k, last: s}
			if b.cfg.usersFile != "" {
				u.secret = en.Secret
			}
			return u, nil
		}
		if b.step(time.Now()) < s+2 {
			return nil, fmt.Errorf("%s: confirm: a valid code refused: %s", id, r.Reason)
		}
	}
	return nil, fmt.Errorf("%s: confirm: no code accepted in 5 tries", id)
}

// savedUser is a line of --users-file.
type savedUser struct {
	ID     string `json:"id"`
	Secret string `json:"secret"`
	Period int    `json:"period"`
	Last   uint64 `json:"last"`
	Fails  int    `json:"fails"`
}

// loadUsers reads --users-file, if given and present, into b.users.
func (b *bencher) loadUsers() (bool, error) {
	if b.cfg.usersFile == "" {
		return false, nil
	}
	f, err := os.Open(b.cfg.usersFile)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	} else if err != nil {
		return false, err
	}
	defer f.Close()
	now := b.step(time.Now())
	dec := json.NewDecoder(f)
	for {
		var su savedUser
		if err := dec.Decode(&su); err == io.EOF {
			break
		} else if err != nil {
			return false, fmt.Errorf("%s: %w", b.cfg.usersFile, err)
		}
		if su.Period != b.cfg.period {
			return false, fmt.Errorf("%s: user %s has period %d, not --period %d", b.cfg.usersFile, su.ID, su.Period, b.cfg.period)
		}
		secret, err := otp.DecodeSecret(su.Secret)
		if err != nil {
			return false, fmt.Errorf("%s: user %s: %w", b.cfg.usersFile, su.ID, err)
		}
		k, err := otp.NewKey(secret, otp.Params{Period: b.cfg.period})
		clear(secret)
		if err != nil {
			return false, fmt.Errorf("%s: user %s: %w", b.cfg.usersFile, su.ID, err)
		}
		b.users = append(b.users, &user{id: su.ID, path: "/v1/users/" + url.PathEscape(su.ID) + "/verify",
			key: k, secret: su.Secret, last: max(su.Last, now), fails: su.Fails})
	}
	if len(b.users) == 0 {
		return false, fmt.Errorf("%s: no users", b.cfg.usersFile)
	}
	return true, nil
}

// saveUsers writes b.users to --users-file, if given, with mode 0600.
func (b *bencher) saveUsers() error {
	if b.cfg.usersFile == "" {
		return nil
	}
	tmp := b.cfg.usersFile + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	enc := json.NewEncoder(w)
	for _, u := range b.users {
		if err := enc.Encode(savedUser{ID: u.id, Secret: u.secret, Period: b.cfg.period, Last: u.last, Fails: u.fails}); err != nil {
			f.Close()
			return err
		}
	}
	if err := errors.Join(w.Flush(), f.Close()); err != nil {
		return err
	}
	return os.Rename(tmp, b.cfg.usersFile)
}
