package web

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"
)

// TestRecoverPanics: a panicking handler gives a 500 JSON error that,
// like the log, holds the panic's type but never its value.
func TestRecoverPanics(t *testing.T) {
	var logs bytes.Buffer
	s := &server{log: slog.New(slog.NewTextHandler(&logs, nil)), now: time.Now, metrics: newMetrics()}
	const secret = "123456-tfa_secretkey"
	h := s.recoverPanics(s.logRequests(securityHeaders(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		panic(secret)
	}))))
	r := httptest.NewRequest("POST", "/v1/users/alice/verify", strings.NewReader(`{"code":"123456"}`))
	r.Header.Set("X-Request-Id", "req-1")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)

	var body struct {
		Error struct{ Code, Message string }
	}
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || w.Code != 500 {
		t.Fatalf("got %d %q, want a 500 JSON error", w.Code, w.Body)
	}
	if body.Error.Code != "internal" || body.Error.Message != "internal error" {
		t.Errorf("error = %+v, want internal error", body.Error)
	}
	if w.Header().Get("Content-Type") != "application/json" || w.Header().Get("X-Request-Id") != "req-1" {
		t.Errorf("headers %v", w.Header())
	}
	if strings.Contains(w.Body.String(), secret) || strings.Contains(logs.String(), secret) {
		t.Errorf("the panic value leaked:\nbody %s\nlogs %s", w.Body, logs.String())
	}
	if !strings.Contains(logs.String(), "panic serving request") || !strings.Contains(logs.String(), "type=string") {
		t.Errorf("logs lack the panic: %s", logs.String())
	}
}

// TestRecoverPanics_ErrAbortHandler: http.ErrAbortHandler still aborts,
// as net/http intends.
func TestRecoverPanics_ErrAbortHandler(t *testing.T) {
	s := &server{log: slog.New(slog.NewTextHandler(io.Discard, nil)), now: time.Now, metrics: newMetrics()}
	h := s.recoverPanics(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic(http.ErrAbortHandler) }))
	defer func() {
		if v := recover(); v != http.ErrAbortHandler {
			t.Errorf("recovered %v, want http.ErrAbortHandler", v)
		}
	}()
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
}

// TestStatusOf_Documented: every error code of the status table is in the
// OpenAPI document's error code enum, and the reverse.
func TestStatusOf_Documented(t *testing.T) {
	raw, err := os.ReadFile("openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Components struct {
			Schemas struct {
				ErrorDetail struct {
					Properties struct {
						Code struct{ Enum []string }
					}
				}
			}
		}
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	enum := doc.Components.Schemas.ErrorDetail.Properties.Code.Enum
	for code := range statusOf {
		found := false
		for _, e := range enum {
			found = found || e == code
		}
		if !found {
			t.Errorf("error code %q (status %d) is not in ErrorDetail.code's enum %q", code, statusOf[code], enum)
		}
	}
	if len(enum) != len(statusOf) {
		t.Errorf("ErrorDetail.code's enum %q has codes the status table lacks", enum)
	}
}
