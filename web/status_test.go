package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/twofa/twofa"
)

func TestStatusFor(t *testing.T) {
	tests := []struct {
		code, reason string
		want         int
	}{
		{twofa.EINVALID, "", 400},
		{twofa.EINVALID, "malformed_code", 400},
		{twofa.EINVALID, reasonContentType, 415},
		{twofa.EINVALID, reasonMethodNotAllowed, 405},
		{twofa.ENOTFOUND, "not_enrolled", 404},
		{twofa.ENOTFOUND, "expired", 404},
		{twofa.ECONFLICT, "replayed", 409},
		{twofa.ECONFLICT, "duplicate_secret", 409},
		{twofa.EUNAUTHORIZED, "", 401},
		{twofa.EFORBIDDEN, "", 403},
		{twofa.ERATELIMITED, "locked", 429},
		{codeTooLarge, "", 413},
		{twofa.EINTERNAL, "", 500},
		{twofa.EINTERNAL, reasonCanceled, 499},
		// A refinement belongs to its code only.
		{twofa.ENOTFOUND, reasonContentType, 404},
		{"no_such_code", "", 500},
	}
	for _, tt := range tests {
		if got := statusFor(tt.code, tt.reason); got != tt.want {
			t.Errorf("statusFor(%q, %q) = %d, want %d", tt.code, tt.reason, got, tt.want)
		}
	}
}

// TestStatusOf_DocumentedStatuses: the OpenAPI document gives each code
// the status of the table, and names each reason the table refines with
// its status.
func TestStatusOf_DocumentedStatuses(t *testing.T) {
	raw, err := os.ReadFile("openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Components struct {
			Schemas struct {
				ErrorDetail struct {
					Properties struct {
						Code   struct{ Description string }
						Reason struct{ Description string }
					}
				}
			}
		}
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	props := doc.Components.Schemas.ErrorDetail.Properties
	for code, status := range statusOf {
		if want := fmt.Sprintf("%s %d", code, status); !strings.Contains(props.Code.Description, want) {
			t.Errorf("ErrorDetail.code's description %q does not say %q", props.Code.Description, want)
		}
	}
	for cr, status := range reasonStatus {
		if cr.reason == reasonCanceled { // no client sees it: it went away
			continue
		}
		if want := fmt.Sprintf("%s (%d", cr.reason, status); !strings.Contains(props.Reason.Description, want) {
			t.Errorf("ErrorDetail.reason's description %q does not say %q", props.Reason.Description, want)
		}
	}
}

// TestCodeProblem_AgreesWithAPI: a page that shows an error of the Service
// answers with the status the API gives the same error.
func TestCodeProblem_AgreesWithAPI(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	s := &server{log: slog.New(slog.NewTextHandler(io.Discard, nil)), now: func() time.Time { return now }}
	r := httptest.NewRequest("POST", "/prompt", nil)
	tests := []struct {
		name string
		err  error
		want int
	}{
		{"MalformedCode", twofa.ErrMalformedCode, http.StatusBadRequest},
		{"MalformedCodeOwnMessage", &twofa.Error{Code: twofa.EINVALID, Reason: "malformed_code", Message: "code must be 6 digits, got 2"}, http.StatusBadRequest},
		{"NotEnrolled", twofa.ErrNotEnrolled, http.StatusNotFound},
		{"NotFound", fmt.Errorf("no pending enrollment: %w", twofa.ErrNotFound), http.StatusNotFound},
		{"Expired", twofa.ErrExpired, http.StatusNotFound},
		{"Replayed", twofa.ErrReplayed, http.StatusConflict},
		{"DeviceLimit", twofa.ErrDeviceLimit, http.StatusConflict},
		{"Locked", twofa.LockedError(now.Add(time.Minute)), http.StatusTooManyRequests},
		{"HardLocked", twofa.LockedError(twofa.Forever), http.StatusTooManyRequests},
		{"RateLimited", twofa.RateLimitedError("codes", now.Add(time.Minute)), http.StatusTooManyRequests},
		{"Invalid", twofa.Errorf(twofa.EINVALID, "device name is empty"), http.StatusBadRequest},
		{"Forbidden", twofa.Errorf(twofa.EFORBIDDEN, "no"), http.StatusForbidden},
		{"Internal", errors.New("disk on fire"), http.StatusInternalServerError},
		{"InternalCode", twofa.Errorf(twofa.EINTERNAL, "oops"), http.StatusInternalServerError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, msg := s.codeProblem(r, tt.err)
			api := toAPIError(context.Background(), s.log, tt.err).status()
			if got != tt.want || api != tt.want {
				t.Errorf("page status %d, API status %d; want both %d", got, api, tt.want)
			}
			if msg == "" {
				t.Error("page gave no message")
			}
		})
	}
}
