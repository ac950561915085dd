package prove

import (
	"context"
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/twofa/twofa/otp"
)

// device is an enrolled, confirmed TOTP device as a test holds it.
type device struct {
	user    string
	id      string
	key     *otp.Key
	backup  []string
	confirm uint64 // the step the confirmation burnt
}

func (d *device) step(t time.Time) uint64 { return d.key.Params().Step(t) }
func (d *device) code(step uint64) string { return d.key.HOTP(step) }

// collides reports whether the code of step is also the code of another
// step near it, so that a server taking the newest match could see it as
// a different step.
func (d *device) collides(step uint64) bool {
	c := d.code(step)
	for s := step - 3; s <= step+3; s++ {
		if s != step && d.code(s) == c {
			return true
		}
	}
	return false
}

// wrongCode returns a code no step near now matches.
func (d *device) wrongCode(n int) string {
	now := d.step(time.Now())
	for ; ; n++ {
		c := fmt.Sprintf("%06d", (n*104729+7)%1000000)
		ok := true
		for s := now - 6; s <= now+6; s++ {
			if d.code(s) == c {
				ok = false
			}
		}
		if ok {
			return c
		}
	}
}

func userPath(base, user string) string { return base + "/v1/users/" + url.PathEscape(user) }

// beginEnroll starts an enrollment; the reply is returned whatever it is.
func beginEnroll(ctx context.Context, a *api, base, user string, period int) (*device, reply, error) {
	body := map[string]any{"name": "prove"}
	if period != 0 {
		body["period"] = period
	}
	r, err := a.do(ctx, "POST", userPath(base, user)+"/totp", body)
	if err != nil || r.status != 201 {
		return nil, r, err
	}
	secret, err := otp.DecodeSecret(r.str("secret"))
	if err != nil {
		return nil, r, err
	}
	k, err := otp.NewKey(secret, otp.Params{Period: period})
	if err != nil {
		return nil, r, err
	}
	return &device{user: user, id: r.str("device_id"), key: k}, r, nil
}

// confirmAt confirms d with the code of step; on success it keeps the
// backup codes and the step.
func confirmAt(ctx context.Context, a *api, base string, d *device, step uint64) (reply, error) {
	r, err := a.do(ctx, "POST", userPath(base, d.user)+"/totp/"+url.PathEscape(d.id)+"/confirm", map[string]string{"code": d.code(step)})
	if err == nil && r.valid() {
		d.confirm = step
		codes, _ := r.body["backup_codes"].([]any)
		for _, c := range codes {
			s, _ := c.(string)
			d.backup = append(d.backup, s)
		}
	}
	return r, err
}

// enrollConfirmed enrolls and confirms a device with the code of the
// previous step, so the current and next steps are left for verifying.
func enrollConfirmed(t testing.TB, a *api, base, user string) *device {
	t.Helper()
	for try := 0; try < 3; try++ {
		d, r, err := beginEnroll(context.Background(), a, base, user, 0)
		if err != nil || d == nil {
			t.Fatalf("enroll %s: %v %v", user, err, r)
		}
		s := d.step(time.Now())
		if d.collides(s - 1) {
			continue // try another secret
		}
		r, err = confirmAt(context.Background(), a, base, d, s-1)
		if err != nil {
			t.Fatalf("confirm %s: %v", user, err)
		}
		if r.valid() && len(d.backup) > 0 {
			return d
		}
		if d.step(time.Now()) == s {
			t.Fatalf("confirm %s with a valid code: %v", user, r)
		}
	}
	t.Fatalf("enroll %s: no confirmation in 3 tries", user)
	return nil
}

func verify(ctx context.Context, a *api, base, user, code string) (reply, error) {
	return a.do(ctx, "POST", userPath(base, user)+"/verify", map[string]string{"code": code})
}
