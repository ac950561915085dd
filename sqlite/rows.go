package sqlite

import (
	"bytes"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"io"
	"reflect"
)

// rows reads a driver's rows as sql.Rows would.
type rows struct {
	r    driver.Rows
	dest []driver.Value
	err  error
}

func (rs *rows) Next() bool {
	if rs.err != nil {
		return false
	}
	if err := rs.r.Next(rs.dest); err != nil {
		if err != io.EOF {
			rs.err = err
		}
		return false
	}
	return true
}

func (rs *rows) Err() error { return rs.err }

func (rs *rows) Close() error { return rs.r.Close() }

// Scan stores the current row's columns in dest, which may be *int,
// *int64, *string, *[]byte (a copy) or an sql.Scanner, such as
// *sql.NullInt64 for a column that may be NULL. It converts less than
// database/sql: any other destination, a nil pointer, a NULL where the
// destination cannot hold one, or a value of another type (a REAL, or an
// INTEGER for a string) gets an error naming the column and both types,
// never a panic or a silent zero.
func (rs *rows) Scan(dest ...any) error {
	if len(dest) != len(rs.dest) {
		return fmt.Errorf("sqlite: scan: %d destinations for %d columns", len(dest), len(rs.dest))
	}
	for i, d := range dest {
		if err := assign(d, rs.dest[i]); err != nil {
			return fmt.Errorf("sqlite: scan column %d: %w", i, err)
		}
	}
	return nil
}

// scanTypes names the destinations assign takes, for its errors.
const scanTypes = "*int, *int64, *string, *[]byte or an sql.Scanner"

func assign(dest any, v driver.Value) error {
	switch d := dest.(type) {
	case *int64:
		if n, ok := v.(int64); ok && d != nil {
			*d = n
			return nil
		}
	case *int:
		if n, ok := v.(int64); ok && d != nil {
			*d = int(n)
			return nil
		}
	case *[]byte:
		if d != nil {
			switch x := v.(type) {
			case nil:
				*d = nil
				return nil
			case []byte:
				*d = bytes.Clone(x)
				return nil
			case string:
				*d = []byte(x)
				return nil
			}
		}
	case *string:
		if d != nil {
			switch x := v.(type) {
			case string:
				*d = x
				return nil
			case []byte:
				*d = string(x)
				return nil
			}
		}
	case sql.Scanner:
		if rv := reflect.ValueOf(d); rv.Kind() != reflect.Pointer || !rv.IsNil() {
			return d.Scan(v)
		}
	case nil:
		return fmt.Errorf("cannot store %s in a nil destination: want %s", typeName(v), scanTypes)
	default:
		return fmt.Errorf("cannot store %s in %T: want %s", typeName(v), dest, scanTypes)
	}
	// A destination of a type assign takes, but nil, or unable to hold v.
	switch {
	case reflect.ValueOf(dest).IsNil():
		return fmt.Errorf("cannot store %s in a nil %T", typeName(v), dest)
	case v == nil:
		return fmt.Errorf("cannot store NULL in %T: scan into an sql.Scanner such as *sql.NullInt64", dest)
	}
	return fmt.Errorf("cannot store %T in %T", v, dest)
}

// typeName names the type of a column's value, NULL for nil.
func typeName(v driver.Value) string {
	if v == nil {
		return "NULL"
	}
	return fmt.Sprintf("%T", v)
}

// row is the first row of a query, as sql.Row.
type row struct {
	rs  *rows
	err error
}

func (r *row) Scan(dest ...any) error {
	if r.err != nil {
		return r.err
	}
	defer r.rs.Close()
	if !r.rs.Next() {
		if err := r.rs.Err(); err != nil {
			return err
		}
		return sql.ErrNoRows
	}
	if err := r.rs.Scan(dest...); err != nil {
		return err
	}
	return r.rs.Close()
}
