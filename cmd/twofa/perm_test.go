//go:build unix

package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestStart_WarnsOfOpenPermissions: at start-up, a database file or
// directory that group or others may read or write gets a warning naming
// it and its mode, for --data and --db alike; what twofa creates itself
// is private, and warns of nothing.
func TestStart_WarnsOfOpenPermissions(t *testing.T) {
	keyFile := filepath.Join(t.TempDir(), "master.key")
	if err := os.WriteFile(keyFile, []byte("1:"+encodeKey(bytes.Repeat([]byte{7}, 32))), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		dirMode os.FileMode // 0: twofa creates the directory
		dbMode  os.FileMode // 0: twofa creates the file
		useDB   bool        // --db FILE rather than --data DIR
		want    map[string]string
	}{
		{"DataCreated", 0, 0, false, map[string]string{}},
		{"DataPrivate", 0o700, 0, false, map[string]string{}},
		{"DataOpen", 0o755, 0, false, map[string]string{".": "0755"}},
		// SQLite makes the -wal and -shm files with the mode of the database file.
		{"DataOldFile", 0o700, 0o644, false, map[string]string{"twofa.db": "0644", "twofa.db-wal": "0644", "twofa.db-shm": "0644"}},
		{"DBPrivate", 0o700, 0, true, map[string]string{}},
		{"DBGroup", 0o750, 0o640, true, map[string]string{".": "0750", "twofa.db": "0640", "twofa.db-wal": "0640", "twofa.db-shm": "0640"}},
		{"DBWorldWritable", 0o700, 0o666, true, map[string]string{"twofa.db": "0666", "twofa.db-wal": "0666", "twofa.db-shm": "0666"}},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "data")
			if tt.dirMode != 0 {
				if err := os.Mkdir(dir, 0o700); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(dir, tt.dirMode); err != nil {
					t.Fatal(err)
				}
			}
			db := filepath.Join(dir, "twofa.db")
			if tt.dbMode != 0 {
				if err := os.WriteFile(db, nil, 0o600); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(db, tt.dbMode); err != nil {
					t.Fatal(err)
				}
			}
			args := []string{"migrate", "--data", dir}
			if tt.useDB {
				args = []string{"migrate", "--db", db, "--master-key-file", keyFile}
			}
			_, errOut, status := runCLI(t, "", args...)
			if status != 0 {
				t.Fatalf("migrate: %d %s", status, errOut)
			}
			got := map[string]string{}
			for line := range strings.Lines(errOut) {
				var rec struct{ Level, Msg, Path, Mode string }
				if json.Unmarshal([]byte(line), &rec) != nil || rec.Mode == "" {
					continue
				}
				if rec.Level != "WARN" || !strings.Contains(rec.Msg, "readable or writable by group or others") {
					t.Errorf("got %q, want a warning", line)
				}
				name := filepath.Base(rec.Path)
				if rec.Path == dir {
					name = "."
				}
				got[name] = rec.Mode
			}
			if len(got) != len(tt.want) {
				t.Errorf("got warnings %v, want %v", got, tt.want)
			}
			for k, v := range tt.want {
				if got[k] != v {
					t.Errorf("got warnings %v, want %v", got, tt.want)
					break
				}
			}
			// What twofa made itself is private.
			if fi, err := os.Stat(db); err != nil || tt.dbMode == 0 && fi.Mode().Perm() != 0o600 {
				t.Errorf("%s: %v, %v; want mode 0600", db, fi.Mode(), err)
			}
			if fi, err := os.Stat(dir); err != nil || tt.dirMode == 0 && fi.Mode().Perm() != 0o700 {
				t.Errorf("%s: %v, %v; want mode 0700", dir, fi.Mode(), err)
			}
		})
	}
}
