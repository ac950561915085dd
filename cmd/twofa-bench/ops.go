package main

import (
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"strconv"
	"strings"
)

// failLimit is how many failures a user may have counted before no more
// wrong codes or replays are sent to them. The server checks and counts a
// TOTP code in one transaction, so only a refused code counts: a wrong
// code, a replay, or a valid code that arrived late (its step already out
// of the window). Wrong codes and replays take a user to 3 at most, which
// leaves room for one late code before the server's default --lock-after
// of 5.
const failLimit = 3

// opMix is the share of each op, in percent.
type opMix [numOps]int

func parseMix(s string) (opMix, error) {
	var m opMix
	seen := map[string]bool{}
	for part := range strings.SplitSeq(s, ",") {
		name, val, ok := strings.Cut(strings.TrimSpace(part), "=")
		n, err := strconv.Atoi(val)
		if !ok || err != nil || n < 0 {
			return m, fmt.Errorf("want name=percent, got %q", part)
		}
		op := -1
		for i, o := range opNames {
			if o == name {
				op = i
			}
		}
		if op < 0 || seen[name] {
			return m, fmt.Errorf("%q: want each of valid, invalid, replayed at most once", name)
		}
		seen[name] = true
		m[op] = n
	}
	if m[opValid]+m[opInvalid]+m[opReplayed] != 100 {
		return m, errors.New("percentages must add up to 100")
	}
	return m, nil
}

func (m opMix) pick(r *mrand.Rand) int {
	n := r.IntN(100)
	for op, p := range m {
		if n < p {
			return op
		}
		n -= p
	}
	return opValid
}

func (m opMix) String() string {
	return fmt.Sprintf("valid=%d,invalid=%d,replayed=%d", m[opValid], m[opInvalid], m[opReplayed])
}

// Ops bench sends, and the answers it sorts replies into.
const (
	opValid = iota
	opInvalid
	opReplayed
	numOps
)

var opNames = [numOps]string{"valid", "invalid", "replayed"}

const (
	ansValid = iota
	ansInvalidCode
	ansReplayed
	ansRateLimited
	ansLate
	ansError
	numAnswers
)

var answerNames = [numAnswers]string{"valid", "invalid_code", "replayed", "rate_limited", "late", "error"}
