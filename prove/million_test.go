package prove

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	_ "modernc.org/sqlite"

	"github.com/twofa/twofa"
	"github.com/twofa/twofa/otp"
	"github.com/twofa/twofa/seal"
)

// Issue #6, item 6: a million enrolled users. Users are seeded straight
// into the database (enrolling through the API costs ~10 ms each, for the
// QR code), each secret sealed with the keyring the server uses and the
// associated data the Service uses (see millionAD). 1,000 of them, spread
// evenly over the table, have 1-second devices and are driven by
// `twofa-bench --users-file --period 1`; the rest have the usual 30 s.
// The same 1,000 rows (same IDs, same sealed blobs) are also seeded alone
// into a second store, the 1,000-user baseline. Both stores are served at
// once and measured in three interleaved rounds; medians are compared.
//
// Full mode only. TWOFA_PROVE_MILLION_N sets N (default 1,000,000);
// TWOFA_PROVE_MILLION_PG_ROTATE_N sets how many devices the PostgreSQL
// rotation runs over (default N; a smaller number runs it over a store of
// its own and extrapolates the rate to N).

const (
	millionDriven = 1000              // users twofa-bench drives
	millionTenant = "prove-million"   // every seeded user's tenant
	millionBatch  = 10000             // rows per seeding transaction
	millionRSSMax = 100 * 1000 * 1000 // bytes: the target of issue #6
	millionRatio  = 1.2               // latency at N users / at 1,000 users
)

func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(strings.ReplaceAll(s, "_", ""))
	if err != nil || n < millionDriven {
		t.Fatalf("%s=%q: want an integer of at least %d", name, s, millionDriven)
	}
	return n
}

// seedRow is a user with one active TOTP device.
type seedRow struct {
	dev    *twofa.Device
	secret string // base32, for the users file
}

// seeder makes the rows: row i is driven (period 1) when i is a multiple
// of stride, and the driven rows are made once, so both stores get the
// very same ones.
type seeder struct {
	keys   *seal.Keyring
	now    time.Time
	stride int
	driven map[int]*seedRow
}

func newSeeder(t *testing.T, n int) *seeder {
	keys, err := seal.ParseKeyring(masterKey)
	if err != nil {
		t.Fatal(err)
	}
	s := &seeder{keys: keys, now: time.Now().UTC().Truncate(time.Microsecond), stride: n / millionDriven, driven: map[int]*seedRow{}}
	for k := range millionDriven {
		s.driven[k*s.stride] = s.make(t, k*s.stride, 1)
	}
	return s
}

func (s *seeder) row(t *testing.T, i int) *seedRow {
	if r, ok := s.driven[i]; ok {
		return r
	}
	return s.make(t, i, 30)
}

func (s *seeder) make(t *testing.T, i, period int) *seedRow {
	p, err := otp.Params{Period: period}.Normalize()
	if err != nil {
		t.Fatal(err)
	}
	secret, err := otp.GenerateSecret(p.Algorithm)
	if err != nil {
		t.Fatal(err)
	}
	d := &twofa.Device{
		ID: twofa.NewID("dev"), Tenant: millionTenant, User: fmt.Sprintf("m%07d", i), Kind: twofa.KindTOTP,
		Name: "prove", Status: twofa.StatusActive, Params: p, CreatedAt: s.now, ConfirmedAt: s.now,
	}
	d.Secret, err = s.keys.Seal(secret, twofa.SecretAD(d))
	if err != nil {
		t.Fatal(err)
	}
	d.KeyID = s.keys.ActiveID()
	r := &seedRow{dev: d, secret: otp.EncodeSecret(secret)}
	clear(secret)
	return r
}

// usersFile writes the driven users in twofa-bench's --users-file format.
func (s *seeder) usersFile(t *testing.T, path string) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	for k := range millionDriven {
		r := s.driven[k*s.stride]
		enc.Encode(map[string]any{"id": r.dev.User, "secret": r.secret, "period": 1, "last": 0, "fails": 0})
	}
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
}

// indexes returns the rows a store of n users gets: all of 0..n-1, or
// only the driven ones.
func (s *seeder) indexes(n int, drivenOnly bool) []int {
	var out []int
	for i := range n {
		if _, ok := s.driven[i]; ok || !drivenOnly {
			out = append(out, i)
		}
	}
	return out
}

// seedSQLite bulk-inserts rows into a migrated SQLite file.
func seedSQLite(t *testing.T, s *seeder, path string, idx []int) time.Duration {
	start := time.Now()
	conn, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(OFF)")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetMaxOpenConns(1)
	ctx := context.Background()
	for lo := 0; lo < len(idx); lo += millionBatch {
		tx, err := conn.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		u, err := tx.Prepare(`INSERT INTO users (tenant, user_id, created_at) VALUES (?, ?, ?)`)
		if err != nil {
			t.Fatal(err)
		}
		d, err := tx.Prepare(`INSERT INTO devices (id, tenant, user_id, kind, name, status, secret, key_id,
			algorithm, digits, period, t0, created_at, confirmed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
		if err != nil {
			t.Fatal(err)
		}
		for _, i := range idx[lo:min(lo+millionBatch, len(idx))] {
			r := s.row(t, i).dev
			if _, err := u.Exec(r.Tenant, r.User, r.CreatedAt.UnixMicro()); err != nil {
				t.Fatal(err)
			}
			if _, err := d.Exec(r.ID, r.Tenant, r.User, string(r.Kind), r.Name, string(r.Status), r.Secret, int64(r.KeyID),
				int64(r.Params.Algorithm), r.Params.Digits, r.Params.Period, r.Params.T0,
				r.CreatedAt.UnixMicro(), r.ConfirmedAt.UnixMicro()); err != nil {
				t.Fatal(err)
			}
		}
		u.Close()
		d.Close()
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := conn.Exec(`PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		t.Fatal(err)
	}
	return time.Since(start)
}

// seedPostgres bulk-loads rows into a migrated schema with COPY.
func seedPostgres(t *testing.T, s *seeder, where db, idx []int) time.Duration {
	start := time.Now()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, where[1])
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for lo := 0; lo < len(idx); lo += 10 * millionBatch {
		part := idx[lo:min(lo+10*millionBatch, len(idx))]
		rows := make([]*twofa.Device, len(part))
		for j, i := range part {
			rows[j] = s.row(t, i).dev
		}
		tx, err := conn.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"users"}, []string{"tenant", "user_id", "created_at"},
			pgx.CopyFromSlice(len(rows), func(j int) ([]any, error) {
				return []any{rows[j].Tenant, rows[j].User, rows[j].CreatedAt}, nil
			})); err != nil {
			t.Fatal(err)
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"devices"}, []string{"id", "tenant", "user_id", "kind", "name", "status",
			"secret", "key_id", "algorithm", "digits", "period", "t0", "created_at", "confirmed_at"},
			pgx.CopyFromSlice(len(rows), func(j int) ([]any, error) {
				r := rows[j]
				return []any{r.ID, r.Tenant, r.User, string(r.Kind), r.Name, string(r.Status), r.Secret, int64(r.KeyID),
					int16(r.Params.Algorithm), int32(r.Params.Digits), int32(r.Params.Period), r.Params.T0, r.CreatedAt, r.ConfirmedAt}, nil
			})); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := conn.Exec(ctx, `ANALYZE users; ANALYZE devices`); err != nil {
		t.Fatal(err)
	}
	return time.Since(start)
}

// envWithKey is procEnv with another TWOFA_MASTER_KEY (the last one wins).
func envWithKey(key string) []string { return append(procEnv(), "TWOFA_MASTER_KEY="+key) }

// runKey runs a twofa command under keyring key.
func runKey(t *testing.T, key string, args ...string) (string, string, int, time.Duration) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = envWithKey(key)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	start := time.Now()
	err := cmd.Run()
	took := time.Since(start)
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("twofa %s: %v", strings.Join(args, " "), err)
	}
	return out.String(), errOut.String(), code, took
}

// serveTimed starts `twofa serve` under keyring key and returns it with
// the time from exec to the first /readyz 200.
func serveTimed(t *testing.T, where db, key string) (*replica, time.Duration) {
	t.Helper()
	return launch(t, envWithKey(key), 120*time.Second, where...)
}

// benchResult is what we read of `twofa-bench --json`.
type benchResult struct {
	Requests   int64   `json:"requests"`
	Throughput float64 `json:"throughput_per_second"`
	Latency    struct {
		P50 float64 `json:"p50_ms"`
		P90 float64 `json:"p90_ms"`
		P99 float64 `json:"p99_ms"`
		Max float64 `json:"max_ms"`
	} `json:"latency"`
	Answers    map[string]int64 `json:"answers"`
	Unexpected int64            `json:"unexpected"`
	RSS        int64            `json:"server_rss_bytes"`
}

// runBenchCmd drives r with the driven users of usersFile.
func runBenchCmd(t *testing.T, r *replica, key, usersFile string, extra ...string) benchResult {
	t.Helper()
	args := append([]string{"--url", r.url, "--key", key, "--users-file", usersFile, "--period", "1",
		"--concurrency", "4", "--json", "--server-pid", strconv.Itoa(r.cmd.Process.Pid)}, extra...)
	cmd := exec.Command(benchBinary, args...)
	cmd.Env = procEnv()
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Errorf("twofa-bench %s: %v\n%s\n%s", strings.Join(extra, " "), err, out.String(), errOut.String())
	}
	var res benchResult
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatalf("twofa-bench: reading its JSON: %v\n%s\n%s", err, out.String(), errOut.String())
	}
	if res.Unexpected != 0 || res.Answers["valid"] == 0 {
		t.Errorf("twofa-bench: %d unexpected outcomes, %d valid\n%s", res.Unexpected, res.Answers["valid"], out.String())
	}
	return res
}

// procStatus reads a kB field (VmRSS, VmHWM) of /proc/PID/status, in bytes.
func procStatus(t *testing.T, pid int, field string) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb * 1024
		}
	}
	t.Fatalf("/proc/%d/status: no %s", pid, field)
	return 0
}

func mb(b int64) float64 { return float64(b) / 1e6 }

// millionStore is one backend's way to make and seed a store.
type millionStore struct {
	name string
	// fresh returns a new, migrated, empty store.
	fresh func(t *testing.T, label string) db
	seed  func(t *testing.T, s *seeder, where db, idx []int) time.Duration
}

func TestMillionUsers(t *testing.T) {
	if !full() {
		t.Skip("full mode only (TWOFA_PROVE_FULL=1): seeds a million users")
	}
	n := envInt(t, "TWOFA_PROVE_MILLION_N", 1_000_000)
	tmp := t.TempDir()
	migrate := func(t *testing.T, where db) {
		if out, errOut, code := cli(t, append([]string{"migrate"}, where...)...); code != 0 {
			t.Fatalf("twofa migrate: exit %d\n%s%s", code, out, errOut)
		}
	}
	sqliteStore := millionStore{
		name: "SQLite",
		fresh: func(t *testing.T, label string) db {
			dir := filepath.Join(tmp, "sqlite-"+label)
			where := db{"--data", dir}
			migrate(t, where)
			return where
		},
		seed: func(t *testing.T, s *seeder, where db, idx []int) time.Duration {
			return seedSQLite(t, s, filepath.Join(where[1], "twofa.db"), idx)
		},
	}
	pgStore := millionStore{
		name: "PostgreSQL",
		fresh: func(t *testing.T, label string) db {
			where := postgresDB(t)
			migrate(t, where)
			return where
		},
		seed: func(t *testing.T, s *seeder, where db, idx []int) time.Duration {
			return seedPostgres(t, s, where, idx)
		},
	}
	t.Run("SQLite", func(t *testing.T) { millionRun(t, sqliteStore, n, n) })
	t.Run("PostgreSQL", func(t *testing.T) {
		if os.Getenv("TWOFA_PROVE_MILLION_SKIP_PG") == "1" {
			t.Skip("TWOFA_PROVE_MILLION_SKIP_PG=1")
		}
		// Each re-sealed value is its own transaction; with 8 at a time
		// a million take about a minute and a half here.
		millionRun(t, pgStore, n, envInt(t, "TWOFA_PROVE_MILLION_PG_ROTATE_N", n))
	})
}

// millionRun measures one backend: start-up and verify latency with 1,000
// users and with n, RSS, then `keys rotate` over a store of rotateN users
// (the n-user store itself when rotateN == n).
func millionRun(t *testing.T, st millionStore, n, rotateN int) {
	s := newSeeder(t, n)
	dir := t.TempDir()
	s.usersFile(t, filepath.Join(dir, "small.users"))
	s.usersFile(t, filepath.Join(dir, "big.users"))

	// Each store gets a server of its own, started and warmed up; then
	// the two are measured in turn, three rounds of 10 s each, the order
	// alternating (small, big; big, small; small, big), and each side's
	// medians are compared: a single run of each, one after the other,
	// moved the ratio by ±0.2 from one try to the next on this machine.
	type side struct {
		seeded    int
		where     db
		r         *replica
		startup   time.Duration
		key       string // the app API key
		usersFile string
		runs      []benchResult
		rss, hwm  int64
	}
	start := func(where db, count int, drivenOnly bool, usersFile string) *side {
		took := st.seed(t, s, where, s.indexes(count, drivenOnly))
		seeded := count
		if drivenOnly {
			seeded = millionDriven
		}
		figure(t, "seeded %d users (active devices) in %.1fs: %.0f users/s", seeded, took.Seconds(), float64(seeded)/took.Seconds())
		key := apiKey(t, where, millionTenant, false)
		r, startup := serveTimed(t, where, masterKey)
		figure(t, "start-up with %d users: %.0f ms (exec to /readyz 200)", seeded, float64(startup)/float64(time.Millisecond))
		runBenchCmd(t, r, key, usersFile, "--duration", "3s") // warm-up
		return &side{seeded: seeded, where: where, r: r, startup: startup, key: key, usersFile: usersFile}
	}
	small := start(st.fresh(t, "small"), n, true, filepath.Join(dir, "small.users"))
	bigWhere := st.fresh(t, "big")
	big := start(bigWhere, n, false, filepath.Join(dir, "big.users"))
	for round, order := range [][]*side{{small, big}, {big, small}, {small, big}} {
		for _, sd := range order {
			b := runBenchCmd(t, sd.r, sd.key, sd.usersFile, "--duration", "10s")
			sd.runs = append(sd.runs, b)
			figure(t, "round %d, verify with %d users (twofa-bench --users-file, 1,000 driven users, period 1, concurrency 4, 10s): %d requests, %.0f/s, p50 %.3f ms, p90 %.3f ms, p99 %.3f ms, max %.3f ms",
				round+1, sd.seeded, b.Requests, b.Throughput, b.Latency.P50, b.Latency.P90, b.Latency.P99, b.Latency.Max)
		}
	}
	median := func(sd *side, f func(benchResult) float64) float64 {
		v := make([]float64, len(sd.runs))
		for i, b := range sd.runs {
			v[i] = f(b)
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	p50of := func(b benchResult) float64 { return b.Latency.P50 }
	p99of := func(b benchResult) float64 { return b.Latency.P99 }
	for _, sd := range []*side{small, big} {
		sd.rss, sd.hwm = procStatus(t, sd.r.cmd.Process.Pid, "VmRSS"), procStatus(t, sd.r.cmd.Process.Pid, "VmHWM")
		figure(t, "verify with %d users, medians of 3 rounds: p50 %.3f ms, p99 %.3f ms; server RSS after the load: VmRSS %.1f MB, VmHWM %.1f MB",
			sd.seeded, median(sd, p50of), median(sd, p99of), mb(sd.rss), mb(sd.hwm))
		sd.r.stop()
	}

	p50 := median(big, p50of) / median(small, p50of)
	p99 := median(big, p99of) / median(small, p99of)
	figure(t, "latency %d users / 1,000 users (medians of 3 interleaved rounds): p50 ratio %.2f, p99 ratio %.2f (target <= %.1f); start-up %.0f ms vs %.0f ms",
		n, p50, p99, millionRatio, float64(big.startup)/float64(time.Millisecond), float64(small.startup)/float64(time.Millisecond))
	if p50 > millionRatio || p99 > millionRatio {
		t.Errorf("FINDING: latency with %d users is more than %.1fx that with 1,000: p50 %.3f/%.3f ms (%.2f), p99 %.3f/%.3f ms (%.2f)",
			n, millionRatio, median(big, p50of), median(small, p50of), p50, median(big, p99of), median(small, p99of), p99)
	}
	if big.rss > millionRSSMax {
		t.Errorf("FINDING: server RSS with %d users is %.1f MB, above the %.0f MB target", n, mb(big.rss), mb(millionRSSMax))
	}

	// Rotation: key 2 in front of key 1, every value re-sealed.
	rotWhere, rotUsers, rotKey := bigWhere, filepath.Join(dir, "big.users"), big.key
	if rotateN != n {
		rotWhere, rotUsers = st.fresh(t, "rotate"), filepath.Join(dir, "rotate.users")
		rs := newSeeder(t, rotateN)
		rs.usersFile(t, rotUsers)
		took := st.seed(t, rs, rotWhere, rs.indexes(rotateN, false))
		figure(t, "seeded %d users for the rotation in %.1fs", rotateN, took.Seconds())
		rotKey = apiKey(t, rotWhere, millionTenant, false) // while key 1 still opens the store
	}
	newKey := strings.TrimSpace(mustOut(t, "keys", "generate"))
	both := "2:" + newKey + "," + masterKey
	out, errOut, code, took := runKey(t, both, append([]string{"keys", "rotate"}, rotWhere...)...)
	if code != 0 {
		t.Fatalf("twofa keys rotate: exit %d\n%s%s", code, out, errOut)
	}
	bar := errOut
	if i := strings.LastIndex(bar, "\r"); i >= 0 {
		bar = bar[i+1:]
	}
	bar = strings.TrimSpace(bar)
	m := regexp.MustCompile(`\] (\d+)/(\d+) +100% `).FindStringSubmatch(bar + " ")
	if m == nil || m[1] != m[2] {
		t.Errorf("keys rotate: the progress bar did not reach 100%%: last frame %q", bar)
	}
	done, _ := strconv.Atoi(firstNumber(out, "re-sealed "))
	figure(t, "keys rotate over %d devices: re-sealed %d values in %.1fs, %.0f rows/s; progress bar's last frame %q; %s",
		rotateN, done, took.Seconds(), float64(done)/took.Seconds(), bar, strings.TrimSpace(out))
	if done < rotateN {
		t.Errorf("keys rotate re-sealed %d values, want at least %d", done, rotateN)
	}
	if rotateN != n {
		figure(t, "keys rotate extrapolated to %d devices at that rate: %.0f s (%.1f min)", n,
			float64(n)/(float64(done)/took.Seconds()), float64(n)/(float64(done)/took.Seconds())/60)
	}
	out, errOut, code, _ = runKey(t, both, append([]string{"keys", "status"}, rotWhere...)...)
	figure(t, "keys status after rotation: %s", strings.TrimSpace(out))
	if code != 0 || !strings.Contains(out, "active key 2:") || !strings.HasSuffix(strings.TrimSpace(out), ", 0 under older keys") {
		t.Errorf("keys status: exit %d: %q %s", code, out, errOut)
	}

	// Key 1 retired: the re-sealed secrets still open.
	only2 := "2:" + newKey
	r, startup := serveTimed(t, rotWhere, only2)
	b := runBenchCmd(t, r, rotKey, rotUsers, "--requests", "300", "--mix", "valid=100")
	figure(t, "with key 1 retired (TWOFA_MASTER_KEY=2:NEW, start-up %.0f ms): %d verifications, %d valid, %d unexpected",
		float64(startup)/float64(time.Millisecond), b.Requests, b.Answers["valid"], b.Unexpected)
	if b.Answers["valid"] == 0 {
		t.Errorf("no verification accepted with key 1 retired")
	}
	r.stop()
}

func mustOut(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, code := cli(t, args...)
	if code != 0 {
		t.Fatalf("twofa %s: exit %d: %s", strings.Join(args, " "), code, errOut)
	}
	return out
}

// firstNumber returns the digits that follow prefix in s.
func firstNumber(s, prefix string) string {
	_, rest, ok := strings.Cut(s, prefix)
	if !ok {
		return ""
	}
	i := 0
	for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
		i++
	}
	return rest[:i]
}
