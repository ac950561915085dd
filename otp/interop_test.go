package otp_test

// Cross-implementation tests: package otp against oathtool, pyotp, otplib
// and github.com/pquerna/otp, and its QR codes against zbarimg.
//
// The outside tools come from scripts/install-test-deps.sh. Without them a
// plain `go test` skips the subtests that need them; TWOFA_TEST_REQUIRE_ALL=1
// (make test, CI) makes their absence a failure (see internal/testenv).
//
// Cases come from a fixed seed, so a failure reproduces; the secrets are test
// secrets and are printed in hex, in failure messages only.

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"image/png"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	potp "github.com/pquerna/otp"
	photp "github.com/pquerna/otp/hotp"
	ptotp "github.com/pquerna/otp/totp"

	"github.com/twofa/twofa/internal/testenv"
	"github.com/twofa/twofa/otp"
)

const (
	interopSeed1, interopSeed2 = 0x7f4a7c15, 0x2fa2fa2f

	numTOTPCases = 1300
	numHOTPCases = 300
	numURICases  = 300
	numQRCases   = 36

	// maxFailures bounds the messages of one comparison, so a systematic
	// disagreement reads as a few examples rather than a thousand lines.
	maxFailures = 15
)

var interopDir = filepath.Join("testdata", "interop")

// codeCase is one TOTP (Counter unused) or HOTP (Period, T0 and Time unused) case.
type codeCase struct {
	Secret  []byte
	Alg     otp.Algorithm
	Digits  int
	Period  int
	T0      int64
	Time    int64 // Unix seconds, >= T0
	Counter uint64
	Want    string // our code: TOTP(Time) or HOTP(Counter)
}

// String describes the case, secret included: for failure messages only.
func (c codeCase) String() string {
	if c.Period == 0 {
		return fmt.Sprintf("HOTP %s, %d digits, counter %d, secret %x", c.Alg, c.Digits, c.Counter, c.Secret)
	}
	return fmt.Sprintf("TOTP %s, %d digits, period %ds, T0 %d, t %d (%s), secret %x",
		c.Alg, c.Digits, c.Period, c.T0, c.Time, time.Unix(c.Time, 0).UTC().Format(time.RFC3339), c.Secret)
}

func (c codeCase) params() otp.Params {
	return otp.Params{Algorithm: c.Alg, Digits: c.Digits, Period: c.Period, T0: c.T0}
}

func (c codeCase) key(tb testing.TB) *otp.Key {
	tb.Helper()
	k, err := otp.NewKey(c.Secret, c.params())
	if err != nil {
		tb.Fatalf("NewKey(%v): %v", c, err)
	}
	return k
}

// jsonCase is a case as the helper scripts read it.
type jsonCase struct {
	Secret  string `json:"secret"`
	Alg     string `json:"alg"`
	Digits  int    `json:"digits"`
	Period  int    `json:"period,omitempty"`
	T0      int64  `json:"t0,omitempty"`
	Time    int64  `json:"time"`
	Counter uint64 `json:"counter"`
}

func (c codeCase) json() jsonCase {
	return jsonCase{otp.EncodeSecret(c.Secret), c.Alg.String(), c.Digits, c.Period, c.T0, c.Time, c.Counter}
}

var (
	interopAlgs    = []otp.Algorithm{otp.SHA1, otp.SHA256, otp.SHA512}
	interopPeriods = []int{1, 7, 13, 15, 30, 30, 30, 30, 45, 60, 60, 90, 120, 300, 3599, 3600}
)

func randSecret(r *rand.Rand) []byte {
	b := make([]byte, 16+r.IntN(64-16+1))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// randTime returns a time from one of the ranges where implementations
// differ most easily: the first minute, now, around 2^31 and 2^32 seconds
// (2038 and 2106), beyond 2^32 (20000000000, in 2603), and step boundaries.
func randTime(r *rand.Rand, period int, now int64) int64 {
	p := int64(period)
	around := func(t int64) int64 { return max(0, t-2*p+r.Int64N(4*p+1)) }
	switch r.IntN(10) {
	case 0:
		return r.Int64N(60)
	case 1:
		return around(now)
	case 2:
		return around(1 << 31)
	case 3:
		return around(1 << 32)
	case 4:
		return around(20000000000)
	case 5, 6: // the last second of a step, or the first
		return max(0, (1+r.Int64N((1<<36)/p))*p-r.Int64N(2))
	default:
		return r.Int64N(1 << 36) // until the year 4147
	}
}

// totpCases returns the TOTP cases: t = 0..59 first, then random ones, about
// one in twelve with a T0 (which pyotp and pquerna cannot express).
func totpCases(tb testing.TB) []codeCase {
	r := rand.New(rand.NewPCG(interopSeed1, interopSeed2))
	now := time.Now().Unix()
	fixed := []int64{1<<31 - 1, 1 << 31, 1<<32 - 1, 1 << 32, 20000000000, now}
	cs := make([]codeCase, numTOTPCases)
	for i := range cs {
		c := codeCase{
			Secret: randSecret(r),
			Alg:    interopAlgs[r.IntN(len(interopAlgs))],
			Digits: 6 + r.IntN(3),
			Period: interopPeriods[r.IntN(len(interopPeriods))],
		}
		switch {
		case i < 60:
			c.Time = int64(i)
		case i < 60+len(fixed):
			c.Time = fixed[i-60]
		case r.IntN(12) == 0:
			c.T0 = 1 + r.Int64N(2000000000)
			c.Time = c.T0 + randTime(r, c.Period, now-c.T0)
		default:
			c.Time = randTime(r, c.Period, now)
		}
		c.Want = c.key(tb).TOTP(time.Unix(c.Time, 0))
		cs[i] = c
	}
	return cs
}

func hotpCases(tb testing.TB) []codeCase {
	r := rand.New(rand.NewPCG(interopSeed1+1, interopSeed2))
	cs := make([]codeCase, numHOTPCases)
	for i := range cs {
		c := codeCase{Secret: randSecret(r), Digits: 6 + r.IntN(3)}
		if r.IntN(2) == 0 { // half SHA1, the only HOTP algorithm of oathtool
			c.Alg = interopAlgs[r.IntN(len(interopAlgs))]
		}
		switch {
		case i < 20:
			c.Counter = uint64(i)
		case i == 20:
			c.Counter = math.MaxUint64
		case i == 21:
			c.Counter = 1<<53 - 1
		default:
			c.Counter = []uint64{r.Uint64N(1 << 16), uint64(r.Uint32()), r.Uint64N(1 << 53), r.Uint64()}[r.IntN(4)]
		}
		c.Want = c.key(tb).HOTP(c.Counter)
		cs[i] = c
	}
	return cs
}

// failures reports the first maxFailures mismatches of one comparison and
// counts the rest, so that a systematic disagreement reads as a few
// examples rather than a thousand lines. Safe for concurrent use.
type failures struct {
	t testing.TB
	n atomic.Int32
}

func newFailures(t testing.TB) *failures {
	f := &failures{t: t}
	t.Cleanup(func() {
		if n := f.n.Load(); n > maxFailures {
			t.Errorf("... and %d more failures", n-maxFailures)
		}
	})
	return f
}

func (f *failures) Errorf(format string, args ...any) {
	f.t.Helper()
	if f.n.Add(1) <= maxFailures {
		f.t.Errorf(format, args...)
	}
}

// runJSON runs a helper script with req as JSON on stdin and decodes its
// JSON output into resp.
func runJSON(tb testing.TB, cmd *exec.Cmd, req, resp any) {
	tb.Helper()
	in, err := json.Marshal(req)
	if err != nil {
		tb.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = bytes.NewReader(in), &stdout, &stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		tb.Fatalf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, stderr.Bytes())
	}
	if err := json.Unmarshal(stdout.Bytes(), resp); err != nil {
		tb.Fatalf("%s: decoding output: %v\n%.500s", strings.Join(cmd.Args, " "), err, stdout.Bytes())
	}
	tb.Logf("%s took %v", filepath.Base(cmd.Args[len(cmd.Args)-1]), time.Since(start).Round(time.Millisecond))
}

// codeResult is a helper script's answer for one case: a code, or an error.
type codeResult struct {
	Code  string
	Error string
}

func (r *codeResult) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		return json.Unmarshal(b, &r.Code)
	}
	var e struct{ Error string }
	if err := json.Unmarshal(b, &e); err != nil {
		return err
	}
	r.Error = e.Error
	if r.Error == "" {
		r.Error = "neither a code nor an error: " + string(b)
	}
	return nil
}

// compareCodes runs cases through a script in mode ("totp" or "hotp") and
// checks its codes against ours.
func compareCodes(t *testing.T, name string, cmd func() *exec.Cmd, mode string, cases []codeCase) {
	t.Helper()
	req := struct {
		Mode  string     `json:"mode"`
		Cases []jsonCase `json:"cases"`
	}{Mode: mode}
	for _, c := range cases {
		req.Cases = append(req.Cases, c.json())
	}
	var got []codeResult
	runJSON(t, cmd(), req, &got)
	if len(got) != len(cases) {
		t.Fatalf("%s gave %d results for %d cases", name, len(got), len(cases))
	}
	f := newFailures(t)
	for i, c := range cases {
		switch {
		case got[i].Error != "":
			f.Errorf("%v: %s failed: %s", c, name, got[i].Error)
		case c.Want != got[i].Code:
			f.Errorf("%v: got %s, want %s from %s", c, c.Want, got[i].Code, name)
		}
	}
}

func filterCases(cs []codeCase, keep func(codeCase) bool) []codeCase {
	var out []codeCase
	for _, c := range cs {
		if keep(c) {
			out = append(out, c)
		}
	}
	return out
}

// pythonWithPyotp returns a Python that can import pyotp: Debian's
// /usr/bin/python3 (python3-pyotp), or else python3 on PATH, which may be
// another Python without it.
func pythonWithPyotp(tb testing.TB) string {
	tb.Helper()
	cands := []string{"/usr/bin/python3"}
	if p, err := exec.LookPath("python3"); err == nil {
		cands = append(cands, p)
	}
	for _, p := range cands {
		if exec.Command(p, "-c", "import pyotp").Run() == nil {
			return p
		}
	}
	testenv.Missing(tb, "no python3 with pyotp (apt-get install python3-pyotp)")
	return ""
}

// nodeWithOtplib returns node, with otplib installed by install-test-deps.sh.
func nodeWithOtplib(tb testing.TB) string {
	tb.Helper()
	node := testenv.LookPath(tb, "node")
	for _, pkg := range []string{"otplib", "@otplib/uri"} {
		if _, err := os.Stat(filepath.Join(interopDir, "node", "node_modules", pkg, "package.json")); err != nil {
			testenv.Missing(tb, "%s is not installed in %s (scripts/install-test-deps.sh installs it)", pkg, filepath.Join(interopDir, "node"))
		}
	}
	return node
}

func pyotpCmd(py string) func() *exec.Cmd {
	return func() *exec.Cmd {
		cmd := exec.Command(py, filepath.Join(interopDir, "pyotp_interop.py"))
		cmd.Env = append(os.Environ(), "PYTHONIOENCODING=utf-8", "TZ=UTC")
		return cmd
	}
}

func otplibCmd(node string) func() *exec.Cmd {
	return func() *exec.Cmd { return exec.Command(node, filepath.Join(interopDir, "node", "otplib_interop.mjs")) }
}

// parallelDo runs f(i) for i in [0, n) on a few goroutines.
func parallelDo(n int, f func(i int)) {
	next := atomic.Int64{}
	var wg sync.WaitGroup
	for range 2 * runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				f(i)
			}
		}()
	}
	wg.Wait()
}

func TestInterop_Codes(t *testing.T) {
	totps, hotps := totpCases(t), hotpCases(t)

	t.Run("oathtool", func(t *testing.T) {
		t.Parallel()
		oathtool := testenv.LookPath(t, "oathtool")
		f := newFailures(t)
		// One process per case; with -w 2 each also gives the codes of the
		// next two steps (TOTP), which we check as well. oathtool's --hotp
		// has no algorithm option: it is HMAC-SHA1 only, so its HOTP cases
		// are the SHA1 ones.
		const ahead = 2
		hotpSHA1 := filterCases(hotps, func(c codeCase) bool { return c.Alg == otp.SHA1 })
		all := append(append([]codeCase(nil), totps...), hotpSHA1...)
		start := time.Now()
		parallelDo(len(all), func(i int) {
			c := all[i]
			args := []string{"-d", strconv.Itoa(c.Digits)}
			if c.Period == 0 {
				args = append(args, "--hotp", "-c", strconv.FormatUint(c.Counter, 10))
			} else {
				args = append(args, "--totp="+c.Alg.String(), "-s", strconv.Itoa(c.Period)+"s",
					"-N", "@"+strconv.FormatInt(c.Time, 10), "-w", strconv.Itoa(ahead))
				if c.T0 != 0 {
					args = append(args, "-S", "@"+strconv.FormatInt(c.T0, 10))
				}
			}
			// The key in hex on the command line: a test secret.
			out, err := exec.Command(oathtool, append(args, "--", hex.EncodeToString(c.Secret))...).CombinedOutput()
			if err != nil {
				f.Errorf("%v: oathtool %s: %v: %s", c, strings.Join(args, " "), err, out)
				return
			}
			got := strings.Fields(string(out))
			if c.Period == 0 {
				if len(got) != 1 || got[0] != c.Want {
					f.Errorf("%v: got %s, want %q from oathtool", c, c.Want, out)
				}
				return
			}
			k := c.key(t)
			step := uint64(c.Time-c.T0) / uint64(c.Period)
			if len(got) != ahead+1 {
				f.Errorf("%v: oathtool -w %d gave %q", c, ahead, out)
				return
			}
			for j, want := range got {
				if ours := k.HOTP(step + uint64(j)); ours != want {
					f.Errorf("%v: step %d+%d: got %s, want %s from oathtool", c, step, j, ours, want)
				}
			}
			if c.Want != got[0] {
				f.Errorf("%v: TOTP: got %s, want %s from oathtool", c, c.Want, got[0])
			}
		})
		t.Logf("oathtool checked %d TOTP cases (%d codes) and %d HOTP cases in %v",
			len(totps), len(totps)*(ahead+1), len(hotpSHA1), time.Since(start).Round(time.Millisecond))
	})

	t.Run("pyotp", func(t *testing.T) {
		t.Parallel()
		py := pyotpCmd(pythonWithPyotp(t))
		// pyotp's TOTP has no T0 (start time) parameter.
		tc := filterCases(totps, func(c codeCase) bool { return c.T0 == 0 })
		compareCodes(t, "pyotp", py, "totp", tc)
		compareCodes(t, "pyotp", py, "hotp", hotps)
		t.Logf("pyotp checked %d TOTP and %d HOTP cases", len(tc), len(hotps))
	})

	t.Run("otplib", func(t *testing.T) {
		t.Parallel()
		node := otplibCmd(nodeWithOtplib(t))
		// otplib's counters are JavaScript numbers, limited to 2^53-1
		// (its MAX_COUNTER guardrail); it has T0 (t0) and all else.
		hc := filterCases(hotps, func(c codeCase) bool { return c.Counter < 1<<53 })
		compareCodes(t, "otplib", node, "totp", totps)
		compareCodes(t, "otplib", node, "hotp", hc)
		t.Logf("otplib checked %d TOTP and %d HOTP cases", len(totps), len(hc))
	})

	t.Run("pquerna", func(t *testing.T) {
		t.Parallel()
		algs := map[otp.Algorithm]potp.Algorithm{otp.SHA1: potp.AlgorithmSHA1, otp.SHA256: potp.AlgorithmSHA256, otp.SHA512: potp.AlgorithmSHA512}
		f := newFailures(t)
		// pquerna/otp's TOTP has no T0 parameter.
		tc := filterCases(totps, func(c codeCase) bool { return c.T0 == 0 })
		for _, c := range tc {
			got, err := ptotp.GenerateCodeCustom(otp.EncodeSecret(c.Secret), time.Unix(c.Time, 0), ptotp.ValidateOpts{
				Period: uint(c.Period), Digits: potp.Digits(c.Digits), Algorithm: algs[c.Alg]})
			if err != nil || got != c.Want {
				f.Errorf("%v: got %s, want %s, %v from pquerna/otp", c, c.Want, got, err)
			}
		}
		for _, c := range hotps {
			got, err := photp.GenerateCodeCustom(otp.EncodeSecret(c.Secret), c.Counter, photp.ValidateOpts{
				Digits: potp.Digits(c.Digits), Algorithm: algs[c.Alg]})
			if err != nil || got != c.Want {
				f.Errorf("%v: got %s, want %s, %v from pquerna/otp", c, c.Want, got, err)
			}
		}
		t.Logf("pquerna/otp checked %d TOTP and %d HOTP cases", len(tc), len(hotps))
	})

	// Each case's code verifies at its time, one step later and one step
	// earlier with DefaultWindow, with the right step and offset; and the
	// code with one digit changed does not, unless it happens to be the
	// code of another step in the window.
	t.Run("Verify", func(t *testing.T) {
		t.Parallel()
		f := newFailures(t)
		stepAt := func(c codeCase, unix int64) uint64 { // times before T0 are step 0
			if unix < c.T0 {
				return 0
			}
			return uint64(unix-c.T0) / uint64(c.Period)
		}
		for _, c := range totps {
			k := c.key(t)
			wrong := []byte(c.Want)
			wrong[0] = '0' + (wrong[0]-'0'+1)%10
			p := int64(c.Period)
			for _, at := range []int64{c.Time, c.Time + p, c.Time - p} {
				for _, code := range []string{c.Want, string(wrong)} {
					// The latest step of the window whose code is code.
					cur := stepAt(c, at)
					want := otp.Match{}
					for s := cur + 1; ; s-- {
						if k.HOTP(s) == code {
							want = otp.Match{Valid: true, Step: s, Offset: int(int64(s) - int64(cur))}
							break
						}
						if s == 0 || s == cur-1 {
							break
						}
					}
					got, err := k.Verify(code, time.Unix(at, 0), otp.DefaultWindow)
					if err != nil || got != want {
						f.Errorf("%v: Verify(%s) at %d = %+v, %v; want %+v", c, code, at, got, err, want)
					}
					if code == c.Want && !want.Valid {
						f.Errorf("%v: %s at %d is not in the window: the test is wrong", c, code, at)
					}
				}
			}
		}
		for _, c := range hotps {
			k := c.key(t)
			// From one counter before to one after, where those exist.
			start, lookAhead := c.Counter, 0
			if c.Counter > 0 {
				start, lookAhead = c.Counter-1, 1
			}
			if c.Counter < math.MaxUint64 {
				lookAhead++
			}
			got, err := k.VerifyHOTP(c.Want, start, lookAhead)
			if err != nil || !got.Valid || got.Step != c.Counter {
				f.Errorf("%v: VerifyHOTP(%s) = %+v, %v; want valid at counter %d", c, c.Want, got, err, c.Counter)
			}
		}
		t.Logf("Verify checked %d TOTP cases at 3 times with 2 codes each, and %d HOTP cases", len(totps), len(hotps))
	})
}

// uriChars are the pieces random issuers and account names are made of:
// letters, digits, unicode, and the characters URIs are made of (no colon).
var uriChars = strings.Fields(`a b c x y z A B Z 0 1 9 - . _ ~ é ü ß Ω 日本 🔐 ` +
	"@ + & % / ? # = ! $ ' ( ) * , ; [ ]")

// pyotpBreaks are the characters pyotp 2.6 cannot read back in a key URI:
// its parse_uri percent-decodes the whole URI before splitting it, so an
// escaped ? or # in the label or issuer ends the path or the query, and an
// escaped &, + or % in the issuer parameter splits it or is decoded twice.
// URIs with them are not checked against pyotp (pyotp's bug, not ours).
const (
	pyotpBreaksLabel  = "?#"
	pyotpBreaksIssuer = "?#&+%"
)

func randName(r *rand.Rand, maxLen int, safe bool) string {
	var b strings.Builder
	for n := 1 + r.IntN(maxLen); b.Len() < n; {
		s := uriChars[r.IntN(len(uriChars))]
		if safe && strings.ContainsAny(s, pyotpBreaksIssuer) {
			continue
		}
		if r.IntN(6) == 0 {
			s = " " // spaces, inside names and at either end
		}
		b.WriteString(s)
	}
	return b.String()
}

// uriCases returns random key URIs; about half avoid the characters that
// pyotp cannot read. Those with maxLen <= 12 fit small QR codes.
func uriCases(seed uint64, n, maxLen int) []otp.URI {
	r := rand.New(rand.NewPCG(interopSeed1+seed, interopSeed2))
	us := make([]otp.URI, n)
	for i := range us {
		safe := r.IntN(2) == 0
		u := otp.URI{
			Type:    otp.TypeTOTP,
			Account: randName(r, maxLen, safe),
			Secret:  randSecret(r),
			Params: otp.Params{
				Algorithm: interopAlgs[r.IntN(len(interopAlgs))],
				Digits:    6 + r.IntN(3),
			},
		}
		if r.IntN(5) != 0 {
			u.Issuer = randName(r, maxLen, safe)
		}
		// Leading and trailing spaces are invalid (URI.Validate): apps trim
		// them, and the label allows spaces after the colon.
		u.Issuer = strings.TrimSpace(u.Issuer)
		if u.Account = strings.TrimSpace(u.Account); u.Account == "" {
			u.Account = "x"
		}
		if r.IntN(4) == 0 {
			u.Type = otp.TypeHOTP
			u.Counter = []uint64{0, 1, r.Uint64N(1 << 32), r.Uint64N(1 << 53), r.Uint64()}[r.IntN(5)]
		} else {
			u.Params.Period = interopPeriods[r.IntN(len(interopPeriods))]
			if r.IntN(4) == 0 {
				u.Params.Period = 1 + r.IntN(otp.MaxPeriod)
			}
		}
		if r.IntN(20) == 0 {
			u.Params.T0 = r.Int64N(2000000000)
		}
		us[i] = u
	}
	return us
}

// describeURI is for failure messages: the URI, secret included.
func describeURI(u otp.URI) string {
	return fmt.Sprintf("{%s issuer %q account %q %s/%d digits/period %d/T0 %d counter %d secret %x}",
		u.Type, u.Issuer, u.Account, u.Params.Algorithm, u.Params.Digits, u.Params.Period, u.Params.T0, u.Counter, u.Secret)
}

func formatURIs(tb testing.TB, us []otp.URI) []string {
	tb.Helper()
	ss := make([]string, len(us))
	for i := range us {
		s, err := us[i].Format()
		if err != nil {
			tb.Fatalf("Format(%s): %v", describeURI(us[i]), err)
		}
		ss[i] = s
	}
	return ss
}

func TestInterop_URI(t *testing.T) {
	us := uriCases(10, numURICases, 24)
	ss := formatURIs(t, us)

	t.Run("RoundTrip", func(t *testing.T) {
		t.Parallel()
		f := newFailures(t)
		for i, u := range us {
			got, err := otp.ParseURI(ss[i])
			if err != nil {
				f.Errorf("ParseURI(%q): %v; want %s", ss[i], err, describeURI(u))
				continue
			}
			if !reflect.DeepEqual(*got, u) {
				f.Errorf("ParseURI(%q) = %s, want %s", ss[i], describeURI(*got), describeURI(u))
			}
		}
	})

	t.Run("pyotp", func(t *testing.T) {
		t.Parallel()
		py := pyotpCmd(pythonWithPyotp(t))
		var idx []int
		var req struct {
			Mode string   `json:"mode"`
			URIs []string `json:"uris"`
		}
		req.Mode = "uri"
		for i, u := range us {
			// Besides pyotpBreaks: t0 is not in the key URI format, and
			// pyotp 2.6 rejects parameters it does not know.
			if strings.ContainsAny(u.Issuer, pyotpBreaksIssuer) || strings.ContainsAny(u.Account, pyotpBreaksLabel) || u.Params.T0 != 0 {
				continue
			}
			idx = append(idx, i)
			req.URIs = append(req.URIs, ss[i])
		}
		var got []struct {
			Error     string
			Type      string
			Secret    string
			SecretHex string `json:"secret_hex"`
			Issuer    *string
			Name      string
			Digits    int
			Algorithm string
			Period    int
			Counter   uint64
		}
		runJSON(t, py(), req, &got)
		if len(got) != len(idx) {
			t.Fatalf("pyotp gave %d results for %d URIs", len(got), len(idx))
		}
		f := newFailures(t)
		for j, g := range got {
			u, s := us[idx[j]], ss[idx[j]]
			if g.Error != "" {
				f.Errorf("pyotp.parse_uri(%q) failed: %s; want %s", s, g.Error, describeURI(u))
				continue
			}
			issuer := ""
			if g.Issuer != nil {
				issuer = *g.Issuer
			}
			want := fmt.Sprintf("%s %s %x %q %q %d %s %d %d", u.Type, otp.EncodeSecret(u.Secret), u.Secret, u.Issuer, u.Account,
				u.Params.Digits, strings.ToLower(u.Params.Algorithm.String()), u.Params.Period, u.Counter)
			gotS := fmt.Sprintf("%s %s %s %q %q %d %s %d %d", g.Type, g.Secret, g.SecretHex, issuer, g.Name,
				g.Digits, g.Algorithm, g.Period, g.Counter)
			if gotS != want {
				f.Errorf("pyotp.parse_uri(%q):\n got type secret hex issuer name digits algorithm period counter = %s\nwant %s", s, gotS, want)
			}
		}
		t.Logf("pyotp parsed %d of %d URIs (the others have characters or t0 that pyotp 2.6 cannot read)", len(idx), len(us))
	})

	t.Run("otplib", func(t *testing.T) {
		t.Parallel()
		node := otplibCmd(nodeWithOtplib(t))
		var idx []int
		var req struct {
			Mode string   `json:"mode"`
			URIs []string `json:"uris"`
		}
		req.Mode = "uri"
		for i, u := range us {
			// otplib reads a counter as a JavaScript number and rejects one
			// above 2^53-1 (Number.isSafeInteger).
			if u.Counter >= 1<<53 {
				continue
			}
			idx = append(idx, i)
			req.URIs = append(req.URIs, ss[i])
		}
		var got []struct {
			Error  string
			Type   string
			Label  string
			Params struct {
				Secret    string
				Issuer    *string
				Algorithm string
				Digits    int
				Period    int
				Counter   uint64
			}
		}
		runJSON(t, node(), req, &got)
		if len(got) != len(idx) {
			t.Fatalf("otplib gave %d results for %d URIs", len(got), len(idx))
		}
		f := newFailures(t)
		for j, g := range got {
			u, s := us[idx[j]], ss[idx[j]]
			if g.Error != "" {
				f.Errorf("otplib parse(%q) failed: %s; want %s", s, g.Error, describeURI(u))
				continue
			}
			issuer, label := "<absent>", u.Account
			if g.Params.Issuer != nil {
				issuer = *g.Params.Issuer
			}
			wantIssuer := "<absent>"
			if u.Issuer != "" {
				wantIssuer, label = u.Issuer, u.Issuer+":"+u.Account
			}
			want := fmt.Sprintf("%s %q %s %q %s %d %d %d", u.Type, label, otp.EncodeSecret(u.Secret), wantIssuer,
				strings.ToLower(u.Params.Algorithm.String()), u.Params.Digits, u.Params.Period, u.Counter)
			gotS := fmt.Sprintf("%s %q %s %q %s %d %d %d", g.Type, g.Label, g.Params.Secret, issuer,
				g.Params.Algorithm, g.Params.Digits, g.Params.Period, g.Params.Counter)
			if gotS != want {
				f.Errorf("otplib parse(%q):\n got type label secret issuer algorithm digits period counter = %s\nwant %s", s, gotS, want)
			}
		}
		t.Logf("otplib parsed %d of %d URIs", len(idx), len(us))
	})
}

func TestInterop_QRCode(t *testing.T) {
	us := uriCases(20, numQRCases, 12)
	ss := formatURIs(t, us)
	levels := []otp.Recovery{otp.RecoveryL, otp.RecoveryM, otp.RecoveryQ, otp.RecoveryH}
	type qrCase struct {
		uri   string
		level otp.Recovery
		size  int
		file  string
	}
	dir := t.TempDir()
	cases := make([]qrCase, len(ss))
	for i, s := range ss {
		c := qrCase{uri: s, level: levels[i%len(levels)]}
		q, err := otp.NewQR(s, c.level)
		if err != nil {
			t.Fatalf("NewQR(%q, %d): %v", s, c.level, err)
		}
		span := q.Size() + 2*otp.DefaultQuietZone
		// From 2 pixels a module to 7, with and without leftover pixels,
		// and a few fixed sizes as a web page would ask for.
		c.size = []int{2 * span, 2*span + 1, 3*span + span/2, 4*span - 1, 5 * span, 7*span + 3, 300, 512}[i%8]
		if c.size < 2*span {
			c.size = 2 * span
		}
		b, err := q.PNG(c.size, otp.DefaultQuietZone)
		if err != nil {
			t.Fatalf("PNG(%d) of %q: %v", c.size, s, err)
		}
		img, err := png.Decode(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("PNG(%d) of %q does not decode: %v", c.size, s, err)
		}
		if got := img.Bounds(); got.Dx() != c.size || got.Dy() != c.size {
			t.Errorf("PNG(%d) of %q is %dx%d, want %dx%d", c.size, s, got.Dx(), got.Dy(), c.size, c.size)
		}
		c.file = filepath.Join(dir, fmt.Sprintf("qr%02d.png", i))
		if err := os.WriteFile(c.file, b, 0o600); err != nil {
			t.Fatal(err)
		}
		cases[i] = c
	}

	// Exact dimensions, also where size is not a multiple of the modules,
	// down to one pixel a module; smaller is an error.
	t.Run("Dimensions", func(t *testing.T) {
		q, err := otp.NewQR(ss[0], otp.RecoveryM)
		if err != nil {
			t.Fatal(err)
		}
		span := q.Size() + 2*otp.DefaultQuietZone
		for _, size := range []int{span, span + 1, 2*span - 1, 2 * span, 3*span + 2, 256, 1000} {
			b, err := q.PNG(size, otp.DefaultQuietZone)
			if err != nil {
				t.Errorf("PNG(%d) with %d modules: %v", size, span, err)
				continue
			}
			cfg, err := png.DecodeConfig(bytes.NewReader(b))
			if err != nil || cfg.Width != size || cfg.Height != size {
				t.Errorf("PNG(%d) is %dx%d, %v; want %dx%d", size, cfg.Width, cfg.Height, err, size, size)
			}
		}
		if _, err := q.PNG(span-1, otp.DefaultQuietZone); err == nil {
			t.Errorf("PNG(%d) with %d modules: no error", span-1, span)
		}
	})

	t.Run("zbarimg", func(t *testing.T) {
		zbarimg := testenv.LookPath(t, "zbarimg")
		f := newFailures(t)
		start := time.Now()
		parallelDo(len(cases), func(i int) {
			c := cases[i]
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			var stdout, stderr bytes.Buffer
			cmd := exec.CommandContext(ctx, zbarimg, "--raw", "-q", "-Sdisable", "-Sqrcode.enable", c.file)
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Run(); err != nil {
				f.Errorf("zbarimg of %q (level %d, %d pixels): %v: %s", c.uri, c.level, c.size, err, stderr.Bytes())
				return
			}
			got, ok := strings.CutSuffix(stdout.String(), "\n")
			if !ok || got != c.uri {
				f.Errorf("zbarimg of QR (level %d, %d pixels) read %q, want %q", c.level, c.size, stdout.String(), c.uri)
			}
		})
		t.Logf("zbarimg read %d QR codes in %v", len(cases), time.Since(start).Round(time.Millisecond))
	})
}

// BenchmarkVerifyVsPquerna compares, in one run, Key.Verify with a
// ±1 step window against one raw HMAC-SHA1 (a verification computes three)
// and against pquerna/otp's totp.ValidateCustom with the same window, which
// stops at the first match and allocates.
func BenchmarkVerifyVsPquerna(b *testing.B) {
	secret := []byte("12345678901234567890")
	b32 := otp.EncodeSecret(secret)
	now := time.Unix(1234567890, 0)
	k, err := otp.NewKey(secret, otp.Params{})
	if err != nil {
		b.Fatal(err)
	}
	valid := k.TOTP(now)
	invalid := ""
	for i := 0; invalid == ""; i++ { // a code of none of the three steps
		c := fmt.Sprintf("%06d", i)
		if m, _ := k.Verify(c, now, otp.DefaultWindow); !m.Valid {
			invalid = c
		}
	}
	codes := []struct{ name, code string }{{"Valid", valid}, {"Invalid", invalid}}

	b.Run("Verify", func(b *testing.B) {
		for _, c := range codes {
			b.Run(c.name, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					m, err := k.Verify(c.code, now, otp.DefaultWindow)
					if err != nil || m.Valid != (c.code == valid) {
						b.Fatalf("Verify(%s) = %+v, %v", c.code, m, err)
					}
				}
			})
		}
	})
	b.Run("RawHMACSHA1", func(b *testing.B) {
		b.ReportAllocs()
		mac := hmac.New(sha1.New, secret)
		var msg [8]byte
		var sum [sha1.Size]byte
		var i uint64
		for b.Loop() {
			binary.BigEndian.PutUint64(msg[:], i)
			mac.Reset()
			mac.Write(msg[:])
			mac.Sum(sum[:0])
			i++
		}
	})
	b.Run("Pquerna", func(b *testing.B) {
		opts := ptotp.ValidateOpts{Period: 30, Skew: 1, Digits: potp.DigitsSix, Algorithm: potp.AlgorithmSHA1}
		for _, c := range codes {
			b.Run(c.name, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					ok, err := ptotp.ValidateCustom(c.code, b32, now, opts)
					if err != nil || ok != (c.code == valid) {
						b.Fatalf("ValidateCustom(%s) = %v, %v", c.code, ok, err)
					}
				}
			})
		}
	})
}
