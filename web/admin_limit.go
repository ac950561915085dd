package web

import (
	"sync"
	"time"
)

// loginLimiter counts failed sign-ins per client address. It is in memory
// because the Service offers no public counter (the Store's Hit serves the
// Service's own rules), so each replica counts on its own. An admin key
// has 256 random bits: the limit is against noise in the logs and load on
// the database, not against guessing.
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

// blocked reports whether ip has failed too often, and until when.
func (l *loginLimiter) blocked(ip string, now time.Time) (time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f, ok := l.fails[ip]
	until := f.since.Add(adminFailWindow)
	return until, ok && f.n >= adminMaxFails && now.Before(until)
}

func (l *loginLimiter) fail(ip string, now time.Time) {
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
}
