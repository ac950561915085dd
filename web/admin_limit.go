package web

import (
	"sync"
	"time"
)

// loginLimiter counts wrong keys given to the console's sign-in, per client
// address (visitorMeta's: behind a trusted proxy, the address the proxy
// names, clientip.go), and tells the sign-in when an address has given
// too many. It
// slows wrong keys only: the sign-in checks every key first, and a valid
// admin key signs in however many wrong ones its address gave (an
// administrator behind a shared address is not locked out by others).
//
// So it does not stop guessing, and need not: an admin key has 256 random
// bits, and checking one through the sign-in costs what checking it as a
// bearer key of the API does (the same lookup, which the API does not
// limit), plus a form and a cookie. What it does is tell a client that
// keeps sending wrong keys to stop, with 429 and Retry-After, and keep the
// log from filling with its failures. It is in memory because the Service
// offers no public counter (the Store's Hit serves the Service's own
// rules), so each replica counts on its own.
type loginLimiter struct {
	mu    sync.Mutex
	fails map[string]loginFails
}

type loginFails struct {
	n     int
	since time.Time
}

const (
	adminMaxFails   = 10
	adminFailWindow = 15 * time.Minute
)

// fail counts a wrong key from ip and returns the address's count in the
// current window, and when the window ends.
func (l *loginLimiter) fail(ip string, now time.Time) (n int, until time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fails == nil || len(l.fails) > 10000 {
		l.fails = map[string]loginFails{} // bounded: a flood forgets, it does not grow
	}
	f := l.fails[ip]
	if !now.Before(f.since.Add(adminFailWindow)) {
		f = loginFails{since: now}
	}
	f.n++
	l.fails[ip] = f
	return f.n, f.since.Add(adminFailWindow)
}

// spent reports whether ip has given as many wrong keys as its budget
// allows in the current window, and when the window ends.
func (l *loginLimiter) spent(ip string, now time.Time) (time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f, ok := l.fails[ip]
	until := f.since.Add(adminFailWindow)
	return until, ok && f.n >= adminMaxFails && now.Before(until)
}
