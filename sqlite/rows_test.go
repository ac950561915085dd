package sqlite

import (
	"bytes"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestRows_Scan runs real queries on the write connection and scans their
// one column into every kind of destination: the ones Scan takes get the
// value, every other one gets an error that names the types, never a
// panic or a silent zero.
func TestRows_Scan(t *testing.T) {
	s, err := Open(t.Context(), filepath.Join(t.TempDir(), "twofa.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	scan := func(query string, dest any) (err error) {
		defer func() {
			if p := recover(); p != nil {
				t.Errorf("Scan(%s into %T) panicked: %v", query, dest, p)
			}
		}()
		if werr := s.write(t.Context(), func(tx *wtx) error {
			err = tx.queryRow(query).Scan(dest)
			return nil
		}); werr != nil {
			t.Fatalf("write = %v", werr)
		}
		return err
	}

	t.Run("Taken", func(t *testing.T) {
		var (
			i64  int64
			i    int
			str  string
			b    []byte
			null sql.NullInt64
			ns   sql.NullString
		)
		b = []byte("old")
		tests := []struct {
			query string
			dest  any
			got   func() any
			want  any
		}{
			{"SELECT 42", &i64, func() any { return i64 }, int64(42)},
			{"SELECT -7", &i, func() any { return i }, -7},
			{"SELECT 'text'", &str, func() any { return str }, "text"},
			{"SELECT x'00ff'", &str, func() any { return str }, "\x00\xff"},
			{"SELECT x'00ff'", &b, func() any { return string(b) }, "\x00\xff"},
			{"SELECT 'text'", &b, func() any { return string(b) }, "text"},
			{"SELECT NULL", &b, func() any { return b == nil }, true},
			{"SELECT NULL", &null, func() any { return null }, sql.NullInt64{}},
			{"SELECT 9", &null, func() any { return null }, sql.NullInt64{Int64: 9, Valid: true}},
			{"SELECT 'x'", &ns, func() any { return ns }, sql.NullString{String: "x", Valid: true}},
		}
		for _, tt := range tests {
			if err := scan(tt.query, tt.dest); err != nil {
				t.Errorf("Scan(%s into %T) = %v", tt.query, tt.dest, err)
				continue
			}
			if got := tt.got(); got != tt.want {
				t.Errorf("Scan(%s into %T) stored %#v, want %#v", tt.query, tt.dest, got, tt.want)
			}
		}
	})

	t.Run("Refused", func(t *testing.T) {
		var (
			boolean bool
			f64     float64
			when    time.Time
			anyV    any
			u64     uint64
			i32     int32
			raw     sql.RawBytes
			i64     int64
			str     string
		)
		tests := []struct {
			name  string
			query string
			dest  any
			want  string
		}{
			{"Bool", "SELECT 1", &boolean, "cannot store int64 in *bool: want *int, *int64, *string, *[]byte or an sql.Scanner"},
			{"Float64", "SELECT 1.5", &f64, "cannot store float64 in *float64: want"},
			{"Time", "SELECT 1", &when, "cannot store int64 in *time.Time: want"},
			{"Any", "SELECT 1", &anyV, "cannot store int64 in *interface {}: want"},
			{"Uint64", "SELECT 1", &u64, "cannot store int64 in *uint64: want"},
			{"Int32", "SELECT 1", &i32, "cannot store int64 in *int32: want"},
			{"RawBytes", "SELECT x'00'", &raw, "cannot store []uint8 in *sql.RawBytes: want"},
			{"NotAPointer", "SELECT 1", i64, "cannot store int64 in int64: want"},
			{"NilInterface", "SELECT 1", nil, "cannot store int64 in a nil destination"},
			{"NilInt64", "SELECT 1", (*int64)(nil), "cannot store int64 in a nil *int64"},
			{"NilString", "SELECT 'x'", (*string)(nil), "cannot store string in a nil *string"},
			{"NilBytes", "SELECT x'00'", (*[]byte)(nil), "cannot store []uint8 in a nil *[]uint8"},
			{"NilScanner", "SELECT 1", (*sql.NullInt64)(nil), "cannot store int64 in a nil *sql.NullInt64"},
			{"NullInInt64", "SELECT NULL", &i64, "cannot store NULL in *int64: scan into an sql.Scanner"},
			{"NullInString", "SELECT NULL", &str, "cannot store NULL in *string: scan into an sql.Scanner"},
			{"RealInInt64", "SELECT 1.5", &i64, "cannot store float64 in *int64"},
			{"TextInInt64", "SELECT 'x'", &i64, "cannot store string in *int64"},
			{"IntInString", "SELECT 1", &str, "cannot store int64 in *string"},
			{"RealInString", "SELECT 1.5", &str, "cannot store float64 in *string"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				i64, str = 99, "untouched"
				err := scan(tt.query, tt.dest)
				if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "scan column 0") {
					t.Errorf("Scan(%s into %T) = %v; want an error of column 0 saying %q", tt.query, tt.dest, err, tt.want)
				}
				if i64 != 99 || str != "untouched" {
					t.Errorf("a refused Scan stored %d, %q", i64, str)
				}
			})
		}
	})

	t.Run("CopiesBytes", func(t *testing.T) {
		var a, b []byte
		if err := s.write(t.Context(), func(tx *wtx) error {
			rs, err := tx.query(`SELECT x'0102' UNION ALL SELECT x'0304'`)
			if err != nil {
				return err
			}
			defer rs.Close()
			for _, d := range []*[]byte{&a, &b} {
				if !rs.Next() {
					return fmt.Errorf("a row is missing: %v", rs.Err())
				}
				if err := rs.Scan(d); err != nil {
					return err
				}
			}
			return rs.Err()
		}); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a, []byte{1, 2}) || !bytes.Equal(b, []byte{3, 4}) {
			t.Errorf("scanned %x and %x, want 0102 and 0304", a, b)
		}
	})
}
