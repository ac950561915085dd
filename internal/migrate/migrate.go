// Package migrate reads the schema migrations a store embeds: files named
// NNNN_name.dialect.up.sql, numbered from 0001 with no gap. Both stores
// load theirs with it, so they check the same things and record the same
// names in schema_migrations.
package migrate

import (
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"strconv"
	"strings"
)

// Migration is one step of a schema.
type Migration struct {
	Version int    // 1, 2, 3...
	Name    string // the file name without ".dialect.up.sql", such as "0001_initial": what schema_migrations records
	SQL     string
}

// fileName is the form of a migration's file name, after the dialect's
// suffix is cut: a four-digit version, an underscore and a lower-case name.
var fileName = regexp.MustCompile(`^([0-9]{4})_[a-z0-9][a-z0-9_-]*$`)

// Load returns the migrations of the dialect ("sqlite", "postgres") in the
// directory dir of fsys, in version order. Every file whose name ends in
// ".dialect.up.sql" is one; other files are not read. It refuses a name
// of another form, two files of one version, no migration at all, and
// versions that do not run 1, 2, 3... without a gap.
func Load(fsys fs.FS, dir, dialect string) ([]Migration, error) {
	suffix := "." + dialect + ".up.sql"
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("migrations: %w", err)
	}
	var ms []Migration // entries come sorted by name, and so by version
	for _, e := range entries {
		base, ok := strings.CutSuffix(e.Name(), suffix)
		if !ok || e.IsDir() {
			continue
		}
		m := fileName.FindStringSubmatch(base)
		if m == nil {
			return nil, fmt.Errorf("migration %s: want a name of the form NNNN_name%s, such as 0001_initial%s", e.Name(), suffix, suffix)
		}
		v, _ := strconv.Atoi(m[1])
		if n := len(ms); n > 0 && ms[n-1].Version == v {
			return nil, fmt.Errorf("migrations %s and %s: two of version %d", ms[n-1].Name+suffix, e.Name(), v)
		}
		if want := len(ms) + 1; v != want {
			return nil, fmt.Errorf("migration %s: want version %d next (versions run from 1 without a gap)", e.Name(), want)
		}
		b, err := fs.ReadFile(fsys, path.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("migration %s: %w", e.Name(), err)
		}
		ms = append(ms, Migration{Version: v, Name: base, SQL: string(b)})
	}
	if len(ms) == 0 {
		return nil, fmt.Errorf("migrations: no *%s file in %s", suffix, dir)
	}
	return ms, nil
}

// MustLoad is Load for migrations embedded in the program, which cannot
// go wrong once its tests pass: it panics on an error.
func MustLoad(fsys fs.FS, dir, dialect string) []Migration {
	ms, err := Load(fsys, dir, dialect)
	if err != nil {
		panic(dialect + ": " + err.Error())
	}
	return ms
}

// Pending returns the migrations a database at schema version applied
// lacks, given all of them (from Load). A database newer than the last
// migration is refused: this program does not know its schema, and
// writing to it could undo what a newer version relies on.
func Pending(ms []Migration, applied int) ([]Migration, error) {
	latest := 0
	if len(ms) > 0 {
		latest = ms[len(ms)-1].Version
	}
	switch {
	case applied < 0:
		return nil, fmt.Errorf("database schema version %d is not a version", applied)
	case applied > latest:
		return nil, fmt.Errorf("database schema version %d is newer than this program's %d: run the newer version", applied, latest)
	}
	return ms[applied:], nil
}
