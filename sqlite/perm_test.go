//go:build unix

package sqlite_test

import (
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"

	"github.com/twofa/twofa/sqlite"
)

// TestOpen_FileModes: a new database, its -wal and its -shm are 0600,
// whatever the umask lets through. The umask is the process's, so this
// test does not run in parallel.
func TestOpen_FileModes(t *testing.T) {
	path := tempPath(t)
	if err := os.Chmod(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	MustOpen(t, path) // its migrations write to the WAL
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Errorf("%s: %v", filepath.Base(p), err)
			continue
		}
		if got := fi.Mode().Perm(); got != 0o600 {
			t.Errorf("%s: mode %04o, want 0600", filepath.Base(p), got)
		}
	}
	if ex, err := sqlite.Exposed(path); err != nil || len(ex) != 0 {
		t.Errorf("Exposed = %v, %v; want nothing", ex, err)
	}
}

// TestExposed: what group or others may read or write is reported, the
// directory included; what is missing or private is not.
func TestExposed(t *testing.T) {
	cases := []struct {
		name         string
		dir, db, wal os.FileMode // 0: the file does not exist
		want         []string    // base names reported; "." for the directory
	}{
		{"Private", 0o700, 0o600, 0o600, nil},
		{"ReadOnly", 0o500, 0o400, 0, nil},
		{"Traversable", 0o711, 0o600, 0, nil},
		{"WorldReadable", 0o700, 0o644, 0o644, []string{"twofa.db", "twofa.db-wal"}},
		{"GroupWritable", 0o700, 0o620, 0, []string{"twofa.db"}},
		{"OpenDirectory", 0o755, 0o600, 0, []string{"."}},
		{"GroupDirectory", 0o770, 0o600, 0, []string{"."}},
		{"Everything", 0o777, 0o666, 0o666, []string{".", "twofa.db", "twofa.db-wal"}},
		{"NoFileYet", 0o755, 0, 0, []string{"."}},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "data")
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, "twofa.db")
			for _, f := range []struct {
				p    string
				mode os.FileMode
			}{{path, tt.db}, {path + "-wal", tt.wal}} {
				if f.mode == 0 {
					continue
				}
				if err := os.WriteFile(f.p, nil, 0o600); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(f.p, f.mode); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.Chmod(dir, tt.dir); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.Chmod(dir, 0o700) })
			ex, err := sqlite.Exposed(path)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, e := range ex {
				name := filepath.Base(e.Path)
				if e.Path == dir {
					name = "."
				}
				got = append(got, name)
				fi, _ := os.Stat(e.Path)
				if e.Mode != fi.Mode().Perm() {
					t.Errorf("%s: mode %04o, want %04o", name, e.Mode, fi.Mode().Perm())
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}
