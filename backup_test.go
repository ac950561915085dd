package twofa_test

import (
	"context"
	"strings"
	"testing"

	"github.com/twofa/twofa"
)

// TestService_BackupCodeCrockford: a backup code typed with o for 0 and
// i or l for 1, in any case, verifies.
func TestService_BackupCodeCrockford(t *testing.T) {
	store, _ := openSQLite(t)
	f := newFixture(t, store, nil)
	ctx := context.Background()
	ref := twofa.UserRef{Tenant: "acme", User: "olly"}
	_, _, codes := f.enroll(t, ref, "Phone")
	// Two codes of one set with both a 0 and a 1 in them: a set has them
	// about every other time, and a new set is a new chance.
	var picked []string
	for try := 0; len(picked) < 2 && try < 50; try++ {
		picked = picked[:0]
		for _, c := range codes {
			if strings.ContainsRune(c, '0') && strings.ContainsRune(c, '1') {
				picked = append(picked, c)
			}
		}
		if len(picked) < 2 {
			var err error
			if codes, err = f.svc.RegenerateBackupCodes(ctx, ref); err != nil {
				t.Fatal(err)
			}
		}
	}
	if len(picked) < 2 {
		t.Fatal("no set of backup codes with two codes holding both a 0 and a 1 in 50 sets")
	}
	for _, typed := range []string{
		strings.NewReplacer("0", "o", "1", "l").Replace(picked[0]),
		strings.ToUpper(strings.NewReplacer("0", "o", "1", "i", "-", " ").Replace(picked[1])),
	} {
		res, err := f.svc.Verify(ctx, ref, typed)
		if err != nil || !res.Valid {
			t.Errorf("Verify(a backup code with o for 0 and i or l for 1) = %+v, %v; want valid", res, err)
		}
	}
}
