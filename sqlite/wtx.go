package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"strings"
)

// wtx is the write transaction a batch runs in, as its functions see it.
// Its statements go straight to the driver's connection, which the writer
// holds (inside sql.Conn.Raw) for the length of a batch: database/sql's
// bookkeeping would cost a third of each statement.
type wtx struct {
	ctx   context.Context // the writer's: statements are never interrupted
	conn  *sql.Conn
	dc    driverConn             // conn's driver connection, during a batch
	wrote bool                   // whether a statement that may write ran, since reset
	stmts map[string]driver.Stmt // prepared on dc, by SQL text
	args  []driver.NamedValue    // reused for every statement's arguments

	begin, commit, rollback, savepoint, release, rollbackTo string

	// The head of the audit log as this transaction left it, once read or
	// written, so that a batch reads it once: valid only while the
	// transaction holds the write lock, and forgotten at every rollback.
	head struct {
		ok   bool
		seq  int64
		hash []byte
	}
}

// driverConn is what wtx needs of the driver's connection.
type driverConn interface {
	driver.ConnPrepareContext
	driver.ExecerContext
}

// close closes the statements and gives the connection back to its pool.
func (t *wtx) close() error {
	err := t.conn.Raw(func(any) error {
		var errs []error
		for _, st := range t.stmts {
			errs = append(errs, st.Close())
		}
		return errors.Join(errs...)
	})
	t.stmts = nil
	return errors.Join(err, t.conn.Close())
}

// stmt returns the statement of query, prepared on the write connection
// once and kept.
func (t *wtx) stmt(query string) (driver.Stmt, error) {
	if st, ok := t.stmts[query]; ok {
		return st, nil
	}
	st, err := t.dc.PrepareContext(t.ctx, query)
	if err != nil {
		return nil, err
	}
	t.stmts[query] = st
	return st, nil
}

// named converts args as database/sql would, into t.args.
func (t *wtx) named(args []any) ([]driver.NamedValue, error) {
	t.args = t.args[:0]
	for i, a := range args {
		v, err := driverValue(a)
		if err != nil {
			return nil, fmt.Errorf("argument %d: %w", i+1, err)
		}
		t.args = append(t.args, driver.NamedValue{Ordinal: i + 1, Value: v})
	}
	return t.args, nil
}

func driverValue(a any) (driver.Value, error) {
	switch v := a.(type) {
	case nil, int64, string, []byte, bool, float64:
		return v, nil
	case int:
		return int64(v), nil
	case driver.Valuer:
		return v.Value()
	}
	return driver.DefaultParameterConverter.ConvertValue(a)
}

// exec runs a statement of query.
func (t *wtx) exec(query string, args ...any) (sql.Result, error) {
	t.wrote = true
	st, err := t.stmt(query)
	if err != nil {
		return nil, err
	}
	nv, err := t.named(args)
	if err != nil {
		return nil, err
	}
	return st.(driver.StmtExecContext).ExecContext(t.ctx, nv)
}

// query runs a statement of query that returns rows.
func (t *wtx) query(query string, args ...any) (*rows, error) {
	if !isSelect(query) { // INSERT ... RETURNING, say
		t.wrote = true
	}
	st, err := t.stmt(query)
	if err != nil {
		return nil, err
	}
	nv, err := t.named(args)
	if err != nil {
		return nil, err
	}
	r, err := st.(driver.StmtQueryContext).QueryContext(t.ctx, nv)
	if err != nil {
		return nil, err
	}
	return &rows{r: r, dest: make([]driver.Value, len(r.Columns()))}, nil
}

// isSelect reports whether query is a SELECT, which cannot write.
func isSelect(query string) bool {
	q := strings.TrimLeft(query, " \t\r\n")
	return len(q) >= 6 && strings.EqualFold(q[:6], "SELECT")
}

// queryRow runs a statement of query that returns a row.
func (t *wtx) queryRow(query string, args ...any) *row {
	rs, err := t.query(query, args...)
	return &row{rs: rs, err: err}
}

// script runs SQL of several statements, unprepared.
func (t *wtx) script(query string, args ...any) (sql.Result, error) {
	t.wrote = true
	nv, err := t.named(args)
	if err != nil {
		return nil, err
	}
	return t.dc.ExecContext(t.ctx, query, nv)
}
