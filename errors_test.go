package twofa_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/twofa/twofa"
)

func TestError_Is(t *testing.T) {
	invalidA := twofa.Errorf(twofa.EINVALID, "device name is empty")
	invalidB := twofa.Errorf(twofa.EINVALID, "device name is empty")
	locked := twofa.LockedError(time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC))
	tests := []struct {
		name   string
		err    error
		target error
		want   bool
	}{
		{"SameReasonlessError", invalidA, invalidA, true},
		{"WrappedReasonlessError", fmt.Errorf("creating: %w", invalidA), invalidA, true},
		{"ReasonlessSameText", invalidA, invalidB, false},
		{"ReasonlessSameTextWrapped", fmt.Errorf("creating: %w", invalidA), invalidB, false},
		{"ReasonlessAgainstSentinel", twofa.Errorf(twofa.EINVALID, "malformed code"), twofa.ErrMalformedCode, false},
		{"SentinelAgainstReasonless", twofa.ErrMalformedCode, twofa.Errorf(twofa.EINVALID, "malformed code"), false},
		{"SameReasonOtherMessage", locked, twofa.ErrLocked, true},
		{"SameReasonWrapped", fmt.Errorf("attempt: %w", locked), twofa.ErrLocked, true},
		{"SameCodeOtherReason", locked, twofa.ErrRateLimited, false},
		{"SameReasonOtherCode", &twofa.Error{Code: twofa.EINVALID, Reason: "locked", Message: "locked"}, twofa.ErrLocked, false},
		{"NotFoundIsNotNotEnrolled", twofa.ErrNotFound, twofa.ErrNotEnrolled, false},
		{"Duplicate", &twofa.Error{Code: twofa.ECONFLICT, Reason: "duplicate_secret", Message: "device dev_1 has it"}, twofa.ErrDuplicate, true},
		{"OtherErrorType", errors.New("locked"), twofa.ErrLocked, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := errors.Is(tt.err, tt.target); got != tt.want {
				t.Errorf("errors.Is(%v, %v) = %t, want %t", tt.err, tt.target, got, tt.want)
			}
		})
	}
}
