package web

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"sync"

	"github.com/twofa/twofa"
)

// maxBody bounds request bodies; larger ones get 413.
const maxBody = 64 << 10

// encode writes v as JSON with the status.
func encode[T any](w http.ResponseWriter, status int, v T) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.Encode(v) // a failed write means the client went away
}

// bodies are buffers to read request bodies into.
var bodies = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// validator is a request body that can check itself, returning a problem
// per field.
type validator interface {
	Valid() map[string]string
}

// decode reads a JSON request body into a T and validates it. An empty
// body decodes to the zero T when optional. It refuses, with an error the
// client can act on: a content type other than JSON, bodies over 64 KiB,
// malformed JSON, unknown fields, wrong types and trailing data.
func decode[T validator](w http.ResponseWriter, r *http.Request, optional bool) (T, error) {
	var v T
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	buf := bodies.Get().(*bytes.Buffer)
	defer func() {
		clear(buf.Bytes()) // it held a code, perhaps
		buf.Reset()
		if buf.Cap() <= 4<<10 {
			bodies.Put(buf)
		}
	}()
	_, err := buf.ReadFrom(r.Body)
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return v, errTooLarge
	}
	if err != nil {
		return v, invalid("reading the request body failed")
	}
	body := buf.Bytes()
	if len(bytes.TrimSpace(body)) == 0 {
		if optional {
			return v, nil
		}
		return v, invalid("the request needs a JSON body")
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/json" {
			return v, &apiError{Code: twofa.EINVALID, Reason: reasonContentType, Message: "Content-Type must be application/json"}
		}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		return v, invalid(describeJSONError(err))
	}
	if dec.More() {
		return v, invalid("the body must hold one JSON object")
	}
	if problems := v.Valid(); len(problems) > 0 {
		return v, &apiError{Code: twofa.EINVALID, Message: "invalid request", Fields: problems}
	}
	return v, nil
}

// describeJSONError explains a decoding error without quoting the body,
// which may hold a code.
func describeJSONError(err error) string {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax):
		return fmt.Sprintf("malformed JSON at byte %d", syntax.Offset)
	case errors.As(err, &typ):
		if typ.Field != "" {
			return fmt.Sprintf("field %q must be a %s", typ.Field, jsonType(typ.Type.Kind().String()))
		}
		return "the body must be a JSON object"
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return "unknown field " + strings.TrimPrefix(err.Error(), "json: unknown field ")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "malformed JSON: unexpected end"
	}
	return "malformed JSON"
}

func jsonType(kind string) string {
	switch kind {
	case "string":
		return "string"
	case "int", "int64", "uint64", "float64":
		return "number"
	case "bool":
		return "boolean"
	}
	return kind
}
