package sqlite

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
)

// File permissions. The database holds sealed secrets and keyed hashes,
// and the audit log: nobody but its owner needs to read it, and whoever
// can write it (or its directory) can change who passes. SQLite creates a
// new database 0644 (less the umask) and its -wal and -shm files with the
// database file's own mode; so Open creates the file 0600 first, and the
// two others follow.

// createFile creates the database file with mode 0600 if it does not
// exist; SQLite takes an empty file for an empty database.
func createFile(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return f.Close()
}

// Exposure is a file or directory of a database that users other than
// its owner may read or write.
type Exposure struct {
	Path string
	Mode fs.FileMode // permission bits
}

// Exposed returns the database file at path, its -wal and -shm files and
// the directory that holds them, those that exist and that group or
// others may read or write, for a warning at start-up. Outside Unix it
// returns nothing.
func Exposed(path string) ([]Exposure, error) {
	if runtime.GOOS == "windows" || runtime.GOOS == "plan9" {
		return nil, nil
	}
	var out []Exposure
	for _, p := range []string{filepath.Dir(path), path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return out, err
		}
		if perm := fi.Mode().Perm(); perm&0o066 != 0 {
			out = append(out, Exposure{Path: p, Mode: perm})
		}
	}
	return out, nil
}
