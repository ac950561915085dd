package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/twofa/twofa"
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
}

// envFlag registers a string flag whose default comes from the environment.
func envFlag(fs *flag.FlagSet, e *env, p *string, name, def, usage string) {
	v := def
	envName := "TWOFA_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
	if s := e.getenv(envName); s != "" {
		v = s
	}
	fs.StringVar(p, name, v, usage+" ($"+envName+")")
}

func (c *config) register(fs *flag.FlagSet, e *env) {
	envFlag(fs, e, &c.data, "data", "./twofa-data", "`dir`ectory of the embedded SQLite database (and, in development, a generated master key)")
	envFlag(fs, e, &c.db, "db", "", "database: a postgres:// URL or a SQLite file path; overrides --data for the database")
	envFlag(fs, e, &c.masterKeyFile, "master-key-file", "", "`file` holding the master keyring (ID:BASE64,... first active; or one base64 key); or set $TWOFA_MASTER_KEY")
	envFlag(fs, e, &c.logLevel, "log-level", "info", "debug, info, warn or error")
}

// policyFlags registers the Policy's settings.
func (c *config) policyFlags(fs *flag.FlagSet, e *env) {
	c.policy = twofa.DefaultPolicy()
	p := &c.policy
	intFlag := func(dst *int, name string, usage string) {
		v := strconv.Itoa(*dst)
		envFlag(fs, e, &v, name, v, usage)
		fs.Lookup(name).Value = intValue{dst}
		*dst, _ = strconv.Atoi(fs.Lookup(name).DefValue)
	}
	durFlag := func(dst *time.Duration, name string, usage string) {
		v := dst.String()
		envFlag(fs, e, &v, name, v, usage)
		fs.Lookup(name).Value = durValue{dst}
		if d, err := time.ParseDuration(fs.Lookup(name).DefValue); err == nil {
			*dst = d
		}
	}
	intFlag(&p.Window.Behind, "window-behind", "TOTP steps accepted before the current one")
	intFlag(&p.Window.Ahead, "window-ahead", "TOTP steps accepted after the current one")
	intFlag(&p.MaxDrift, "max-drift", "learned clock drift bound, in steps beyond the window")
	intFlag(&p.MaxDevices, "max-devices", "devices per user")
	intFlag(&p.LockAfter, "lock-after", "consecutive failures before the first lock")
	durFlag(&p.LockBase, "lock-base", "first lock, doubling with each further failure")
	durFlag(&p.LockMax, "lock-max", "longest timed lock")
	intFlag(&p.HardLockAfter, "hard-lock-after", "consecutive failures that lock until an administrator unlocks (at most 100)")
	durFlag(&p.EnrollTTL, "enroll-ttl", "time to confirm an enrollment")
	intFlag(&p.VerifyPerIPPerMinute, "verify-per-ip", "verifications a minute per end-user IP in a tenant (0: no limit)")
	intFlag(&p.TenantVerifyPerMinute, "verify-per-tenant", "verifications a minute per tenant (0: no limit)")
	envFlag(fs, e, &p.Issuer, "issuer", p.Issuer, "issuer shown in authenticator apps")
}

type intValue struct{ p *int }

func (v intValue) String() string {
	if v.p == nil {
		return ""
	}
	return strconv.Itoa(*v.p)
}
func (v intValue) Set(s string) error {
	n, err := strconv.Atoi(s)
	if err != nil {
		return errors.New("want a whole number")
	}
	*v.p = n
	return nil
}

type durValue struct{ p *time.Duration }

func (v durValue) String() string {
	if v.p == nil {
		return ""
	}
	return v.p.String()
}
func (v durValue) Set(s string) error {
	d, err := time.ParseDuration(s)
	if err != nil {
		return errors.New("want a duration such as 30s or 15m")
	}
	*v.p = d
	return nil
}

func (c *config) logger(w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.logLevel)); err != nil {
		return nil, usageError("--log-level must be debug, info, warn or error")
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level})), nil
}

// openStore opens the configured database.
func (c *config) openStore(ctx context.Context) (store, error) {
	db := c.db
	if strings.HasPrefix(db, "postgres://") || strings.HasPrefix(db, "postgresql://") {
		return postgres.Open(ctx, db)
	}
	if db == "" {
		if err := os.MkdirAll(c.data, 0o700); err != nil {
			return nil, fmt.Errorf("creating the data directory: %w", err)
		}
		db = filepath.Join(c.data, "twofa.db")
	}
	return sqlite.Open(ctx, db)
}

// devKeyFile is the generated master key of a development setup.
const devKeyFile = "master.key"

// keyring loads the master keyring: $TWOFA_MASTER_KEY, --master-key-file,
// or, for the embedded database only, a key generated in the data
// directory on first start, with a loud warning.
func (c *config) keyring(e *env, log *slog.Logger) (*seal.Keyring, error) {
	if spec := e.getenv("TWOFA_MASTER_KEY"); spec != "" {
		kr, err := seal.ParseKeyring(spec)
		if err != nil {
			return nil, fmt.Errorf("TWOFA_MASTER_KEY: %w", err)
		}
		return kr, nil
	}
	if c.masterKeyFile != "" {
		return seal.LoadKeyFile(c.masterKeyFile)
	}
	if c.db != "" {
		return nil, errors.New("no master key: set TWOFA_MASTER_KEY or --master-key-file (a key is generated only for the embedded database in --data, for development)")
	}
	path := filepath.Join(c.data, devKeyFile)
	kr, err := seal.LoadKeyFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		key, gerr := seal.GenerateKey()
		if gerr != nil {
			return nil, gerr
		}
		if err := os.MkdirAll(c.data, 0o700); err != nil {
			return nil, err
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
	if err == nil {
		log.Warn("using the development master key in the data directory; set TWOFA_MASTER_KEY or --master-key-file for production", "path", path)
	}
	return kr, err
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
	st, err := c.openStore(ctx)
	if err != nil {
		return nil, nil, err
	}
	p := c.policy
	if p == (twofa.Policy{}) {
		p = twofa.DefaultPolicy()
	}
	svc, err := twofa.NewService(ctx, st, keys, twofa.Options{Policy: &p, Logger: log})
	if err != nil {
		st.Close()
		return nil, nil, err
	}
	return svc, st, nil
}
