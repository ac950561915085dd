package web

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/twofa/twofa"
)

// auditTypes are the event types the audit page filters by.
var auditTypes = []twofa.EventType{
	twofa.EventVerifySucceeded, twofa.EventVerifyFailed, twofa.EventReplayRejected, twofa.EventLocked, twofa.EventUnlocked,
	twofa.EventBackupCodeUsed, twofa.EventBackupCodesIssued, twofa.EventEnrollStarted, twofa.EventEnrollConfirmed,
	twofa.EventEnrollFailed, twofa.EventEnrollExpired, twofa.EventDeviceRevoked, twofa.EventDeviceRenamed, twofa.EventDisabled,
	twofa.EventResyncStarted, twofa.EventResyncSucceeded, twofa.EventResyncFailed, twofa.EventLinkCreated, twofa.EventLinkUsed,
	twofa.EventPromptPassed, twofa.EventTenantUpdated, twofa.EventAPIKeyCreated, twofa.EventAPIKeyRevoked, twofa.EventKeysRotated,
}

// adminAuditData is the audit page's.
type adminAuditData struct {
	adminBase
	User, Type, After string // the filters as given
	Types             []twofa.EventType
	From              string // where the listing starts, in words
	Events            []adminEvent
	Next              string
	Invalid           bool // the After filter is the page's error
}

type adminEvent struct {
	*twofa.AuditEvent
	UserURL string
}

// Bounds of one audit page's scan, when a type filter skips events.
const (
	auditBatch    = 500
	auditMaxScans = 20
)

// adminAudit lists the tenant's audit events, oldest first, from a
// sequence number or a time (by default, the last 24 hours), filtered by
// user and type. The page's next link goes on from the last entry shown.
func (s *server) adminAudit(w http.ResponseWriter, r *http.Request, ss *session) {
	ctx := r.Context()
	q := r.URL.Query()
	d := adminAuditData{adminBase: adminBase{Nav: "audit", Tenant: ss.Tenant},
		User: strings.TrimSpace(q.Get("user")), Type: q.Get("type"), After: strings.TrimSpace(q.Get("after")), Types: auditTypes}
	problem := func(status int, msg string) {
		s.render(w, r, status, "admin_audit.html", view{Title: "Audit log", Error: msg, CSRF: ss.CSRF, Data: d})
	}
	if d.Type != "" && !slices.Contains(auditTypes, twofa.EventType(d.Type)) {
		problem(http.StatusUnprocessableEntity, "Choose an event type from the list.")
		return
	}
	f := twofa.AuditFilter{Tenant: ss.Tenant, User: d.User, Limit: auditBatch}
	from, err := s.auditFrom(d.After, &f)
	if err != nil {
		d.Invalid = true
		problem(http.StatusUnprocessableEntity, twofa.ErrorMessage(err))
		return
	}
	d.From = from
	d.Events, d.Next, err = s.auditPage(ctx, f, d.Type)
	if err != nil {
		problem(s.codeProblem(r, err))
		return
	}
	s.render(w, r, http.StatusOK, "admin_audit.html", view{Title: "Audit log", CSRF: ss.CSRF, Data: d})
}

// auditPage returns a page of the events f selects, of type typ if given,
// and the next page's URL when there may be more. It reads at most
// auditMaxScans batches, so that a rare type in a long log answers soon.
func (s *server) auditPage(ctx context.Context, f twofa.AuditFilter, typ string) ([]adminEvent, string, error) {
	var events []adminEvent
	full := false
scan:
	for range auditMaxScans {
		batch, err := s.svc.AuditEvents(ctx, f)
		if err != nil {
			return nil, "", err
		}
		for _, e := range batch {
			f.After = e.Seq
			if typ == "" || string(e.Type) == typ {
				events = append(events, adminEvent{AuditEvent: e, UserURL: adminUserURL(e.User)})
				if len(events) == adminPage {
					full = true
					break scan
				}
			}
		}
		if len(batch) < auditBatch {
			break
		}
		full = true // scanned the most a page may; there may be more
	}
	if !full {
		return events, "", nil
	}
	return events, "/admin/audit?" + url.Values{"user": {f.User}, "type": {typ}, "after": {strconv.FormatInt(f.After, 10)}}.Encode(), nil
}

// auditFrom reads the audit page's after filter into f: a sequence
// number (After), a date or a time in UTC (Since), or nothing for the last
// 24 hours. It says where the listing starts, in words.
func (s *server) auditFrom(after string, f *twofa.AuditFilter) (string, error) {
	if after == "" {
		f.Since = s.now().Add(-24 * time.Hour)
		return "since " + formatWhen(f.Since), nil
	}
	if n, err := strconv.ParseInt(after, 10, 64); err == nil && n >= 0 {
		if n == 0 {
			return "from the beginning", nil
		}
		f.After = n
		return fmt.Sprintf("after entry %d", n), nil
	}
	for _, layout := range []string{time.RFC3339, "2006-01-02T15:04", "2006-01-02 15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, after, time.UTC); err == nil {
			f.Since = t
			return "since " + formatWhen(t), nil
		}
	}
	return "", twofa.Errorf(twofa.EINVALID, "“After” must be an entry number, a date such as 2026-03-01, or a UTC time such as 2026-03-01 14:30.")
}
