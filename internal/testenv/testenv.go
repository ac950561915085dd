// Package testenv lets tests depend on outside tools and servers: a test
// that needs one skips when it is missing, unless TWOFA_TEST_REQUIRE_ALL=1
// is set (make test and CI set it), in which case it fails. So a newcomer's
// plain `go test ./...` passes, and CI proves everything.
package testenv

import (
	"os"
	"os/exec"
	"testing"
)

// RequireAll reports whether missing tools must fail tests instead of skipping them.
func RequireAll() bool { return os.Getenv("TWOFA_TEST_REQUIRE_ALL") == "1" }

// Missing skips the test, or fails it under TWOFA_TEST_REQUIRE_ALL=1,
// because what it needs is not here.
func Missing(tb testing.TB, format string, args ...any) {
	tb.Helper()
	if RequireAll() {
		tb.Fatalf("required by TWOFA_TEST_REQUIRE_ALL=1: "+format, args...)
	}
	tb.Skipf("skipped: "+format, args...)
}

// LookPath returns the path of an outside command, or calls Missing.
func LookPath(tb testing.TB, name string) string {
	tb.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		Missing(tb, "command %s not found (make test installs it)", name)
	}
	return p
}

// Getenv returns the value of an environment variable, or calls Missing.
func Getenv(tb testing.TB, name string) string {
	tb.Helper()
	v := os.Getenv(name)
	if v == "" {
		Missing(tb, "%s is not set", name)
	}
	return v
}
