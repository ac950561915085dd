package postgres_test

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/twofa/twofa/postgres"
)

// TestMigrate_Names: schema_migrations records each version under its
// file's name without the dialect's suffix, as SQLite does; names that
// older releases recorded whole are brought to that form.
func TestMigrate_Names(t *testing.T) {
	dsn := testDSN(t)
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(t.Context())
	files := migrationFiles(t)
	var want []string
	for i, f := range files {
		want = append(want, fmt.Sprintf("%d %s", i+1, strings.TrimSuffix(filepath.Base(f), ".postgres.up.sql")))
	}
	names := func() []string {
		t.Helper()
		rows, _ := conn.Query(t.Context(), `SELECT version::text || ' ' || name FROM schema_migrations ORDER BY version`)
		got, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		return got
	}

	mustOpen(t, dsn).Close()
	if got := names(); !slices.Equal(got, want) {
		t.Errorf("schema_migrations = %q, want %q", got, want)
	}
	if len(want) != postgres.MigrationVersion {
		t.Errorf("MigrationVersion = %d, want %d", postgres.MigrationVersion, len(want))
	}

	// As an older release left them: the whole file name.
	if _, err := conn.Exec(t.Context(), `UPDATE schema_migrations SET name = name || '.postgres.up.sql'`); err != nil {
		t.Fatal(err)
	}
	mustOpen(t, dsn).Close()
	if got := names(); !slices.Equal(got, want) {
		t.Errorf("after reopening a schema with whole file names, schema_migrations = %q, want %q", got, want)
	}
}

// TestMigrate_NewerSchema: a schema a newer release migrated is refused,
// not written to with an older idea of its schema, as in SQLite.
func TestMigrate_NewerSchema(t *testing.T) {
	dsn := testDSN(t)
	mustOpen(t, dsn).Close()
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(t.Context())
	newer := postgres.MigrationVersion + 1
	if _, err := conn.Exec(t.Context(), `INSERT INTO schema_migrations (version, name) VALUES ($1, 'from_the_future')`, newer); err != nil {
		t.Fatal(err)
	}
	s, err := postgres.Open(t.Context(), dsn)
	if err == nil {
		s.Close()
	}
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("version %d is newer", newer)) {
		t.Errorf("Open(a schema at version %d) = %v; want it refused as newer", newer, err)
	}
}
