// Package postgres implements twofa.Store on PostgreSQL with pgx.
//
// Every atomic step the Service relies on is one SQL statement or one
// transaction holding row locks, so any number of processes can share a
// database. Transactions lock rows in one order: the user's row, then the
// user's devices (several at once in ID order), and last of all the audit
// log's head. No transaction waits for a lock earlier in that order than
// one it holds, so they cannot deadlock.
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/twofa/twofa"
	"github.com/twofa/twofa/internal/migrate"
)

// Store is a twofa.Store on a PostgreSQL database.
type Store struct {
	pool   *pgxpool.Pool
	legacy legacyTokens // what this handle's migration found to rehash
}

var _ twofa.Store = (*Store)(nil)

// defaultMaxConns is a replica's connections unless the DSN sets
// pool_max_conns: three replicas stay well inside PostgreSQL's default
// max_connections of 100.
const defaultMaxConns = 16

// Open connects to the database named by dsn (a URL or key=value string;
// pool_max_conns and runtime parameters such as search_path are honoured)
// and brings its schema up to date.
func Open(ctx context.Context, dsn string) (*Store, error) {
	return open(ctx, dsn, math.MaxInt)
}

// open is Open bringing the schema to version upTo only, which tests of
// upgrades need.
func open(ctx context.Context, dsn string, upTo int) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	if !strings.Contains(dsn, "pool_max_conns") {
		// pgx's default, max(4, CPUs), lets 4 verifications at a time
		// reach the database on a 2-core server: each waits on round
		// trips and a commit's fsync, not on the CPU, so 4 connections
		// capped one replica at ~1,700/s here.
		cfg.MaxConns = defaultMaxConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	s := &Store{pool: pool}
	legacy, err := migrateSchema(ctx, pool, upTo)
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: migrate: %w", err)
	}
	if legacy != nil {
		s.legacy.set(legacy)
	}
	return s, nil
}

// Close closes the store's connections.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

//go:embed migrations/*.postgres.up.sql
var migrationFS embed.FS

var migrations = migrate.MustLoad(migrationFS, "migrations", "postgres")

// MigrationVersion is the schema version this package brings a database to.
var MigrationVersion = migrations[len(migrations)-1].Version

// migrateSchema applies the migrations up to version upTo that the schema
// lacks, all in one transaction. The advisory lock, keyed by the schema,
// lets processes that start at once take turns: the first migrates, the
// rest find nothing left to do. The migration that keys token hashes
// returns the rows it leaves for the Service to rehash, which only this
// process will know.
func migrateSchema(ctx context.Context, pool *pgxpool.Pool, upTo int) (legacy *legacyTokens, err error) {
	err = inTx(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('twofa/migrate:' || coalesce(current_schema(), ''), 0))`); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version    integer PRIMARY KEY,
			name       text NOT NULL,
			applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
			return err
		}
		// Versions recorded by releases that kept the whole file name get
		// the name the loader gives, which SQLite records too.
		if _, err := tx.Exec(ctx, `UPDATE schema_migrations SET name = left(name, -length('.postgres.up.sql'))
			WHERE name LIKE '%.postgres.up.sql'`); err != nil {
			return err
		}
		var have int
		if err := tx.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&have); err != nil {
			return err
		}
		pending, err := migrate.Pending(migrations, have)
		if err != nil {
			return err
		}
		for _, m := range pending {
			if m.Version > upTo {
				break
			}
			if _, err := tx.Exec(ctx, m.SQL); err != nil { // no arguments: simple protocol, many statements
				return fmt.Errorf("%s: %w", m.Name, err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name) VALUES ($1, $2)`, m.Version, m.Name); err != nil {
				return fmt.Errorf("%s: %w", m.Name, err)
			}
			if m.Version == keyedHashesVersion {
				if legacy, err = findLegacyTokens(ctx, tx); err != nil {
					return fmt.Errorf("%s: %w", m.Name, err)
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return legacy, nil
}

// beginner is a pool or a connection.
type beginner interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}

// inTx runs fn in a transaction, committing if fn returns nil.
func inTx(ctx context.Context, db beginner, fn func(pgx.Tx) error) error {
	tx, err := db.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx) // after Commit, a no-op
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// wrap gives a store failure the method's name, leaving the outcomes the
// Store documents (*twofa.Error) as they are.
func wrap(errp *error, method string) {
	var te *twofa.Error
	if *errp != nil && !errors.As(*errp, &te) {
		*errp = fmt.Errorf("postgres: %s: %w", method, *errp)
	}
}

// step converts a TOTP step for its BIGINT column. Steps are seconds since
// T0 over the period, far below 2^63 for any real clock, so a larger one is
// invalid input (EINVALID, as in every store), not a replay.
func step(s uint64) (int64, error) {
	if s > math.MaxInt64 {
		return 0, twofa.Errorf(twofa.EINVALID, "time step %d out of range", s)
	}
	return int64(s), nil
}

// tstz is a time.Time argument for a timestamptz column: NULL for the zero
// time, otherwise truncated to the microseconds PostgreSQL keeps.
func tstz(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.Truncate(time.Microsecond)
}

// timeDest scans a timestamptz into a time.Time: the zero time for NULL,
// otherwise in UTC (pgx returns time.Local).
type timeDest struct{ t *time.Time }

func (d timeDest) ScanTimestamptz(v pgtype.Timestamptz) error {
	switch {
	case !v.Valid:
		*d.t = time.Time{}
	case v.InfinityModifier != pgtype.Finite:
		return fmt.Errorf("infinite timestamp")
	default:
		*d.t = v.Time.UTC()
	}
	return nil
}

// when is the destination for a timestamptz column.
func when(t *time.Time) timeDest { return timeDest{t} }
