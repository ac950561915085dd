package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/twofa/twofa"
	"github.com/twofa/twofa/otp"
	"github.com/twofa/twofa/postgres"
	"github.com/twofa/twofa/seal"
	"github.com/twofa/twofa/sqlite"
)

// store is what the binary needs of a store: the Service's Store, a
// readiness check and Close.
type store interface {
	twofa.Store
	Ping(context.Context) error
	Close() error
}

// config is the configuration every command that opens the database
// shares: each flag is also read from a TWOFA_* environment variable,
// and a flag given on the command line wins.
type config struct {
	data          string
	db            string
	masterKeyFile string
	logLevel      string
	policy        twofa.Policy
	fs            *flag.FlagSet // where the settings came from, for messages; nil: defaults
	// channels the server delivers, for the Service (nil: every one).
	channels []twofa.Channel
}

func (c *config) register(fs *flag.FlagSet, e *env) {
	c.fs = fs
	envFlag(fs, e, &c.data, "data", "./twofa-data", "`dir`ectory of the embedded SQLite database (and, in development, a generated master key)", nonEmpty("a directory"))
	envFlag(fs, e, &c.db, "db", "", "`database`: a postgres:// URL or a SQLite file path; overrides --data for the database", checkDB)
	envFlag(fs, e, &c.masterKeyFile, "master-key-file", "", "`file` holding the master keyring (ID:BASE64,... first active; or one base64 key); or set $TWOFA_MASTER_KEY")
	envFlag(fs, e, &c.logLevel, "log-level", "info", "`level`: debug, info, warn or error", checkLogLevel)
}

// policyFlags registers the Policy's settings. Each range is what the
// Service accepts (Policy.Validate); checkPolicy checks the settings that
// bound each other.
func (c *config) policyFlags(fs *flag.FlagSet, e *env) {
	c.policy = twofa.DefaultPolicy()
	p := &c.policy
	intFlag := func(dst *int, name string, min, max int, usage string) {
		envVar(fs, e, intVar(dst, *dst, min, max), name, usage)
	}
	durFlag := func(dst *time.Duration, name string, min, max time.Duration, usage string) {
		envVar(fs, e, durVar(dst, *dst, min, max), name, usage)
	}
	maxSide := otp.MaxWindow - 1
	intFlag(&p.Window.Behind, "window-behind", 0, maxSide, "TOTP `steps` accepted before the current one")
	intFlag(&p.Window.Ahead, "window-ahead", 0, maxSide, "TOTP `steps` accepted after the current one")
	intFlag(&p.MaxDrift, "max-drift", 0, maxSide/2, "learned clock drift bound, in `steps` beyond the window")
	intFlag(&p.MaxDevices, "max-devices", 1, 100, "`devices` per user, pending ones included")
	intFlag(&p.LockAfter, "lock-after", 1, maxHardLock, "consecutive `failures` before the first lock")
	durFlag(&p.LockBase, "lock-base", time.Second, 0, "the first lock (a `duration`), doubling with each further failure")
	durFlag(&p.LockMax, "lock-max", time.Second, 0, "longest timed lock (a `duration`)")
	intFlag(&p.HardLockAfter, "hard-lock-after", 1, maxHardLock, "consecutive `failures` that lock until an administrator unlocks (at most 100)")
	durFlag(&p.EnrollTTL, "enroll-ttl", time.Minute, 24*time.Hour, "time to confirm an enrollment (a `duration`)")
	intFlag(&p.VerifyPerIPPerMinute, "verify-per-ip", 0, math.MaxInt32, "failed code `checks` a minute per end-user IP in a tenant (0: no limit)")
	intFlag(&p.TenantVerifyPerMinute, "verify-per-tenant", 0, math.MaxInt32, "`attempts` a minute per tenant (0: no limit)")
	intFlag(&p.MaxFailuresPerDay, "max-failures-per-day", 0, math.MaxInt32, "failed `attempts` per user in any 24 hours that a success does not reset (0: off)")
	envFlag(fs, e, &p.Issuer, "issuer", p.Issuer, "`issuer` shown in authenticator apps", checkIssuer)
}

// maxHardLock is NIST SP 800-63B's ceiling on consecutive failures.
const maxHardLock = 100

// checkPolicy checks the policy settings that bound each other, naming
// them as they were given, then the whole policy.
func (c *config) checkPolicy(fs *flag.FlagSet) error {
	p := c.policy
	n := func(name string) string { return settingName(fs, name) }
	switch {
	case p.Window.Size()+2*p.MaxDrift > otp.MaxWindow:
		return usageError(fmt.Sprintf("%s (%d) + 1 + %s (%d) + twice %s (%d) is %d steps: want at most %d",
			n("window-behind"), p.Window.Behind, n("window-ahead"), p.Window.Ahead, n("max-drift"), p.MaxDrift,
			p.Window.Size()+2*p.MaxDrift, otp.MaxWindow))
	case p.LockMax < p.LockBase:
		return usageError(fmt.Sprintf("%s (%s) is shorter than %s (%s): want the longest lock at least as long as the first",
			n("lock-max"), p.LockMax, n("lock-base"), p.LockBase))
	case p.HardLockAfter < p.LockAfter:
		return usageError(fmt.Sprintf("%s (%d) is less than %s (%d): want the hard lock at or after the first lock",
			n("hard-lock-after"), p.HardLockAfter, n("lock-after"), p.LockAfter))
	}
	if err := p.Validate(); err != nil {
		return usageError(err.Error())
	}
	return nil
}

func (c *config) logger(w io.Writer) (*slog.Logger, error) {
	if err := checkLogLevel(c.logLevel); err != nil {
		return nil, usageError("--log-level: " + err.Error())
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: parseLogLevel(c.logLevel)})), nil
}

// openStore opens the configured database, warning when others may read
// or write the SQLite file or its directory.
func (c *config) openStore(ctx context.Context, log *slog.Logger) (store, error) {
	db := c.db
	if isPostgres(db) {
		return postgres.Open(ctx, db)
	}
	name := settingName(c.fs, "db")
	if db == "" {
		name = settingName(c.fs, "data")
		if err := c.makeDataDir(); err != nil {
			return nil, err
		}
		db = filepath.Join(c.data, "twofa.db")
	}
	st, err := sqlite.Open(ctx, db)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	exposed, err := sqlite.Exposed(db)
	for _, x := range exposed {
		what, fix := "database file", "chmod 600"
		if x.Path == filepath.Dir(db) {
			what, fix = "database directory", "chmod 700"
		}
		log.Warn(what+" is readable or writable by group or others: it holds the audit log, sealed secrets and keyed hashes; "+fix+" it",
			"path", x.Path, "mode", fmt.Sprintf("%04o", x.Mode))
	}
	if err != nil {
		log.Warn("checking the database's permissions", "err", err)
	}
	return st, nil
}

// makeDataDir creates the data directory, mode 0700, if it is missing.
func (c *config) makeDataDir() error {
	if err := os.MkdirAll(c.data, 0o700); err != nil {
		return fmt.Errorf("%s: creating the data directory: %w (want a directory twofa may create and write)", settingName(c.fs, "data"), err)
	}
	return nil
}

// wantKeyring is the form of a master keyring, for messages.
const wantKeyring = "want ID:BASE64,... with the active key first, or one base64 key; twofa keys generate makes a key"

// devKeyFile is the generated master key of a development setup.
const devKeyFile = "master.key"

// keyring loads the master keyring: $TWOFA_MASTER_KEY, --master-key-file,
// or, for the embedded database only, a key generated in the data
// directory on first start, with a loud warning.
func (c *config) keyring(e *env, log *slog.Logger) (*seal.Keyring, error) {
	if spec := e.getenv("TWOFA_MASTER_KEY"); spec != "" {
		if c.masterKeyFile != "" {
			return nil, usageError("TWOFA_MASTER_KEY and " + settingName(c.fs, "master-key-file") + " are both set: want one of them")
		}
		kr, err := seal.ParseKeyring(spec)
		if err != nil {
			return nil, usageError(fmt.Sprintf("TWOFA_MASTER_KEY: %v (%s)", err, wantKeyring))
		}
		return kr, nil
	}
	if c.masterKeyFile != "" {
		kr, err := seal.LoadKeyFile(c.masterKeyFile)
		switch {
		case errors.Is(err, seal.ErrInsecureKeyFile): // which says what it wants
			return nil, fmt.Errorf("%s: %w", settingName(c.fs, "master-key-file"), err)
		case err != nil:
			return nil, fmt.Errorf("%s: %w (%s, in a file of mode 0600 or 0400)", settingName(c.fs, "master-key-file"), err, wantKeyring)
		}
		return kr, nil
	}
	if c.db != "" {
		return nil, errors.New("no master key: set TWOFA_MASTER_KEY or --master-key-file (a key is generated only for the embedded database in --data, for development)")
	}
	if err := c.makeDataDir(); err != nil {
		return nil, err
	}
	path := filepath.Join(c.data, devKeyFile)
	kr, err := seal.LoadKeyFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		key, gerr := seal.GenerateKey()
		if gerr != nil {
			return nil, gerr
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, fmt.Errorf("creating a development master key: %w", err)
		}
		_, werr := fmt.Fprintf(f, "1:%s\n", encodeKey(key))
		if cerr := f.Close(); werr != nil || cerr != nil {
			return nil, fmt.Errorf("writing %s: %v %v", path, werr, cerr)
		}
		clear(key)
		log.Warn("GENERATED A DEVELOPMENT MASTER KEY: secrets are sealed with a key stored next to the database. "+
			"For production, set TWOFA_MASTER_KEY or --master-key-file and keep the key away from the database and its backups.",
			"path", path)
		return seal.LoadKeyFile(path)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: the development master key: %w", settingName(c.fs, "data"), err)
	}
	log.Warn("using the development master key in the data directory; set TWOFA_MASTER_KEY or --master-key-file for production", "path", path)
	return kr, nil
}

// start makes the logger and opens the store and the Service: what every
// command that touches the database does first.
func (c *config) start(ctx context.Context, e *env) (*twofa.Service, store, *slog.Logger, error) {
	log, err := c.logger(e.stderr)
	if err != nil {
		return nil, nil, nil, err
	}
	svc, st, err := c.open(ctx, e, log)
	return svc, st, log, err
}

// open opens the store and the Service.
func (c *config) open(ctx context.Context, e *env, log *slog.Logger) (*twofa.Service, store, error) {
	keys, err := c.keyring(e, log)
	if err != nil {
		return nil, nil, err
	}
	st, err := c.openStore(ctx, log)
	if err != nil {
		return nil, nil, err
	}
	p := c.policy
	if p == (twofa.Policy{}) {
		p = twofa.DefaultPolicy()
	}
	svc, err := twofa.NewService(ctx, st, keys, twofa.Options{Policy: &p, Logger: log, Channels: c.channels})
	if err != nil {
		st.Close()
		return nil, nil, err
	}
	return svc, st, nil
}
