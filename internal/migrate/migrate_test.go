package migrate

import (
	"os"
	"reflect"
	"strings"
	"testing"
	"testing/fstest"
)

func TestLoad(t *testing.T) {
	file := func(sql string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(sql)} }
	good := fstest.MapFS{
		"m/0001_initial.sqlite.up.sql":     file("CREATE TABLE a (x);"),
		"m/0002_api_keys.sqlite.up.sql":    file("CREATE TABLE b (x);"),
		"m/0003_pages.sqlite.up.sql":       file("SELECT 1;"),
		"m/0001_initial.postgres.up.sql":   file("other dialect"),
		"m/0002_api_keys.sqlite.down.sql":  file("not an up migration"),
		"m/README.md":                      file("not a migration"),
		"m/0004_later-fix.postgres.up.sql": file("other dialect"),
		"elsewhere/0004_x.sqlite.up.sql":   file("another directory"),
		"m/sub/0004_nested.sqlite.up.sql":  file("a subdirectory"),
	}
	ms, err := Load(good, "m", "sqlite")
	if err != nil {
		t.Fatalf("Load = %v", err)
	}
	want := []Migration{
		{1, "0001_initial", "CREATE TABLE a (x);"},
		{2, "0002_api_keys", "CREATE TABLE b (x);"},
		{3, "0003_pages", "SELECT 1;"},
	}
	if !reflect.DeepEqual(ms, want) {
		t.Errorf("Load = %+v, want %+v", ms, want)
	}

	// Every case adds files to the good set, or takes one away.
	tests := []struct {
		name    string
		add     map[string]string
		remove  string
		wantErr string
	}{
		{"Gap", map[string]string{"m/0005_later.sqlite.up.sql": "x"}, "", "want version 4 next"},
		{"GapAtStart", nil, "m/0001_initial.sqlite.up.sql", "want version 1 next"},
		{"Version0", map[string]string{"m/0000_zero.sqlite.up.sql": "x"}, "", "want version 1 next"},
		{"Duplicate", map[string]string{"m/0003_other.sqlite.up.sql": "x"}, "", "two of version 3"},
		{"DuplicateOfFirst", map[string]string{"m/0001_again.sqlite.up.sql": "x"}, "", "two of version 1"},
		{"ShortVersion", map[string]string{"m/4_short.sqlite.up.sql": "x"}, "", "want a name of the form"},
		{"NoName", map[string]string{"m/0004.sqlite.up.sql": "x"}, "", "want a name of the form"},
		{"EmptyName", map[string]string{"m/0004_.sqlite.up.sql": "x"}, "", "want a name of the form"},
		{"Hyphen", map[string]string{"m/0004-audit.sqlite.up.sql": "x"}, "", "want a name of the form"},
		{"UpperCase", map[string]string{"m/0004_Audit.sqlite.up.sql": "x"}, "", "want a name of the form"},
		{"Space", map[string]string{"m/0004_audit log.sqlite.up.sql": "x"}, "", "want a name of the form"},
		{"NotANumber", map[string]string{"m/000a_x.sqlite.up.sql": "x"}, "", "want a name of the form"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fsys := fstest.MapFS{}
			for k, v := range good {
				fsys[k] = v
			}
			for k, v := range tt.add {
				fsys[k] = file(v)
			}
			delete(fsys, tt.remove)
			ms, err := Load(fsys, "m", "sqlite")
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Load = %+v, %v; want an error saying %q", ms, err, tt.wantErr)
			}
		})
	}

	t.Run("None", func(t *testing.T) {
		if ms, err := Load(good, "m", "mysql"); err == nil {
			t.Errorf("Load(no migrations) = %+v, want an error", ms)
		}
		if ms, err := Load(good, "nowhere", "sqlite"); err == nil {
			t.Errorf("Load(no directory) = %+v, want an error", ms)
		}
	})
	t.Run("MustLoadPanics", func(t *testing.T) {
		defer func() {
			if recover() == nil {
				t.Error("MustLoad of no migrations did not panic")
			}
		}()
		MustLoad(good, "m", "mysql")
	})
}

func TestPending(t *testing.T) {
	ms := []Migration{{1, "0001_a", ""}, {2, "0002_b", ""}, {3, "0003_c", ""}}
	for _, tt := range []struct {
		applied int
		want    []Migration
		wantErr bool
	}{
		{0, ms, false},
		{1, ms[1:], false},
		{3, []Migration{}, false},
		{4, nil, true},
		{-1, nil, true},
	} {
		got, err := Pending(ms, tt.applied)
		if (err != nil) != tt.wantErr || !tt.wantErr && !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Pending(%d) = %+v, %v; want %+v, error %t", tt.applied, got, err, tt.want, tt.wantErr)
		}
	}
}

// TestStores: both stores' migrations load, and number and name their
// versions alike, so that schema_migrations reads the same in both.
func TestStores(t *testing.T) {
	sq, err := Load(os.DirFS("../../sqlite"), "migrations", "sqlite")
	if err != nil {
		t.Fatalf("sqlite: %v", err)
	}
	pg, err := Load(os.DirFS("../../postgres"), "migrations", "postgres")
	if err != nil {
		t.Fatalf("postgres: %v", err)
	}
	names := func(ms []Migration) []string {
		var ns []string
		for _, m := range ms {
			ns = append(ns, m.Name)
		}
		return ns
	}
	if a, b := names(sq), names(pg); !reflect.DeepEqual(a, b) {
		t.Errorf("sqlite's migrations are %q, postgres's %q; want the same versions and names", a, b)
	}
}
