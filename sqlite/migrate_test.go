package sqlite_test

import (
	"database/sql"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/twofa/twofa/sqlite"
)

// TestMigrate_Names: schema_migrations records each version under its
// file's name without the dialect's suffix, as PostgreSQL does.
func TestMigrate_Names(t *testing.T) {
	path := tempPath(t)
	MustOpen(t, path)
	files, err := filepath.Glob(filepath.Join("migrations", "*.sqlite.up.sql"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no migrations: %v", err)
	}
	slices.Sort(files)
	var want []string
	for i, f := range files {
		want = append(want, fmt.Sprintf("%d %s", i+1, strings.TrimSuffix(filepath.Base(f), ".sqlite.up.sql")))
	}
	if got := migrationNames(t, path); !slices.Equal(got, want) {
		t.Errorf("schema_migrations = %q, want %q", got, want)
	}
	if len(want) != sqlite.MigrationVersion {
		t.Errorf("MigrationVersion = %d, want %d", sqlite.MigrationVersion, len(want))
	}
}

// TestMigrate_NewerSchema: a database a newer release migrated is refused,
// not written to with an older idea of its schema.
func TestMigrate_NewerSchema(t *testing.T) {
	path := tempPath(t)
	MustOpen(t, path).Close()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	newer := sqlite.MigrationVersion + 1
	_, err = db.ExecContext(t.Context(), `INSERT INTO schema_migrations (version, name) VALUES (?, 'from_the_future')`, newer)
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	s, err := sqlite.Open(t.Context(), path)
	if err == nil {
		s.Close()
	}
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("version %d is newer", newer)) {
		t.Errorf("Open(a database at version %d) = %v; want it refused as newer", newer, err)
	}
}

// migrationNames returns schema_migrations as "version name" lines.
func migrationNames(t *testing.T, path string) []string {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.QueryContext(t.Context(), `SELECT version, name FROM schema_migrations ORDER BY version`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []string
	for rows.Next() {
		var v int
		var name string
		if err := rows.Scan(&v, &name); err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%d %s", v, name))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return got
}
