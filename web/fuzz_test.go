package web

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twofa/twofa"
	"github.com/twofa/twofa/internal/twofatest"
	"github.com/twofa/twofa/otp"
	"github.com/twofa/twofa/sqlite"
)

// FuzzDecode: decode never panics, and either returns a value that is
// valid or an *apiError with a 4xx status, for any body and content type.
// Seeds: testdata/fuzz/FuzzDecode.
func FuzzDecode(f *testing.F) {
	for _, s := range []struct{ body, ctype string }{
		{`{"code":"123456"}`, "application/json"},
		{`{"code1":"123456","code2":"654321"}`, "application/json; charset=utf-8"},
		{`{"name":"Phone","digits":8,"period":60,"algorithm":"SHA256"}`, ""},
		{`{"code":123456}`, "application/json"},
		{`{} {}`, "application/json"},
		{"", "text/plain"},
		{`null`, ";;;"},
	} {
		f.Add([]byte(s.body), s.ctype, false)
	}
	f.Fuzz(func(t *testing.T, body []byte, ctype string, optional bool) {
		blank := strings.TrimSpace(string(body)) == ""
		check := func(name string, valid func() map[string]string, err error) {
			if optional && blank {
				// The empty request of an optional body: the zero value,
				// which the routes that take one accept as it is.
				if err != nil {
					t.Fatalf("%s: an optional empty body gave %v", name, err)
				}
				return
			}
			if err == nil {
				if p := valid(); len(p) > 0 {
					t.Fatalf("%s: decode accepted an invalid value: %v", name, p)
				}
				return
			}
			var ae *apiError
			if !errors.As(err, &ae) {
				t.Fatalf("%s: error %T %v, want *apiError", name, err, err)
			}
			if st := ae.status(); st < 400 || st > 499 || ae.Code == "" || ae.Message == "" {
				t.Fatalf("%s: error %+v, want a 4xx with a code and a message", name, ae)
			}
		}
		req := func() (*httptest.ResponseRecorder, *http.Request) {
			r := httptest.NewRequest("POST", "/", strings.NewReader(string(body)))
			if ctype != "" {
				r.Header.Set("Content-Type", ctype)
			}
			return httptest.NewRecorder(), r
		}
		w, r := req()
		c, err := decode[codeRequest](w, r, optional)
		check("codeRequest", c.Valid, err)
		w, r = req()
		q, err := decode[resyncRequest](w, r, optional)
		check("resyncRequest", q.Valid, err)
		w, r = req()
		e, err := decode[enrollRequest](w, r, optional)
		check("enrollRequest", e.Valid, err)
		w, r = req()
		l, err := decode[noBody](w, r, optional)
		check("noBody", l.Valid, err)
	})
}

// fuzzVerify is one handler over a real Service on SQLite, shared by the
// inputs of a fuzzing process: alice has a device and backup codes.
var fuzzVerify struct {
	once sync.Once
	h    http.Handler
	svc  *twofa.Service
	key  string
	st   *sqlite.Store
	now  *fuzzClock
	err  error
}

type fuzzClock = twofatest.Clock

func setupFuzzVerify(dir string) error {
	ctx := context.Background()
	c := twofatest.NewClock()
	svc, st, err := twofatest.Open(ctx, filepath.Join(dir, "twofa.db"), c)
	if err != nil {
		return err
	}
	fuzzVerify.st = st
	appKey, _, err := svc.CreateAPIKey(ctx, "acme", "app", twofa.ScopeApp)
	if err != nil {
		return err
	}
	ref := twofa.UserRef{Tenant: "acme", User: "alice"}
	en, err := svc.BeginEnrollment(ctx, ref, twofa.EnrollRequest{})
	if err != nil {
		return err
	}
	k, err := otp.NewKey(en.Secret, en.Device.Params)
	if err != nil {
		return err
	}
	if _, err := svc.ConfirmEnrollment(ctx, ref, en.Device.ID, k.TOTP(c.Now())); err != nil {
		return err
	}
	fuzzVerify.h, fuzzVerify.svc, fuzzVerify.key, fuzzVerify.now = NewHandler(svc, Options{Now: c.Now}), svc, appKey, c
	return nil
}

// FuzzHandlerVerify: POST /v1/users/alice/verify through the real handler
// over SQLite never answers 5xx, whatever the body. The clock moves a
// minute per input so that the malformed-code limit and lockouts (which
// are 4xx, and fine) do not hide the deeper paths for long.
// Seeds: testdata/fuzz/FuzzHandlerVerify.
func FuzzHandlerVerify(f *testing.F) {
	for _, s := range []string{`{"code":"123456"}`, `{"code":"k7m2q-xp4d9-3hn8w"}`, `{"code":"12"}`, `{"code":"١٢٣٤٥٦"}`, `{"code":null}`, `[]`, ``} {
		f.Add(s)
	}
	dir := f.TempDir()
	f.Cleanup(func() {
		if fuzzVerify.st != nil {
			fuzzVerify.st.Close()
		}
	})
	f.Fuzz(func(t *testing.T, body string) {
		fuzzVerify.once.Do(func() { fuzzVerify.err = setupFuzzVerify(dir) })
		if fuzzVerify.err != nil {
			t.Fatal(fuzzVerify.err)
		}
		fuzzVerify.now.Add(time.Minute)
		r := httptest.NewRequest("POST", "/v1/users/alice/verify", strings.NewReader(body))
		r.Header.Set("Authorization", "Bearer "+fuzzVerify.key)
		r.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		fuzzVerify.h.ServeHTTP(w, r)
		if w.Code >= 500 {
			t.Fatalf("body %q: %d %s", body, w.Code, w.Body)
		}
		if w.Code == http.StatusTooManyRequests {
			fuzzVerify.svc.Unlock(context.Background(), twofa.UserRef{Tenant: "acme", User: "alice"})
		}
		if w.Code == 200 && !strings.Contains(w.Body.String(), `"valid":`) {
			t.Fatalf("body %q: 200 without a verdict: %s", body, w.Body)
		}
	})
}
