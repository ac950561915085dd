package web

import (
	"context"
	"embed"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"strconv"
	"time"

	"github.com/twofa/twofa"
	"github.com/twofa/twofa/otp"
)

func handleHealthz() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		encode(w, http.StatusOK, map[string]string{"status": "ok"})
	})
}

func (s *server) handleReadyz() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.ready != nil {
			ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
			defer cancel()
			if err := s.ready(ctx); err != nil {
				s.log.WarnContext(r.Context(), "not ready", "err", err)
				encode(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable"})
				return
			}
		}
		encode(w, http.StatusOK, map[string]string{"status": "ready"})
	})
}

//go:embed openapi.json
var openAPI embed.FS

func handleOpenAPI() http.Handler {
	b, err := openAPI.ReadFile("openapi.json")
	if err != nil {
		panic(err) // embedded at build time
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "public, max-age=300")
		w.Write(b)
	})
}

// deviceJSON is a device as the API shows it: never its secret.
type deviceJSON struct {
	ID          string     `json:"id"`
	Name        string     `json:"name"`
	Type        string     `json:"type"`
	Status      string     `json:"status"`
	CreatedAt   time.Time  `json:"created_at"`
	ConfirmedAt *time.Time `json:"confirmed_at,omitempty"`
	ExpiresAt   *time.Time `json:"expires_at,omitempty"`
	LastUsedAt  *time.Time `json:"last_used_at"`
	// TOTP devices.
	Algorithm string `json:"algorithm,omitempty"`
	Digits    int    `json:"digits,omitempty"`
	Period    int    `json:"period,omitempty"`
	// Email devices: the address, and restricted (NIST SP 800-63B rev 4
	// does not accept email as an authenticator on its own).
	Address    string `json:"address,omitempty"`
	Restricted bool   `json:"restricted,omitempty"`
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

func toDeviceJSON(d *twofa.Device) deviceJSON {
	j := deviceJSON{
		ID: d.ID, Name: d.Name, Type: string(d.Kind), Status: string(d.Status),
		CreatedAt: d.CreatedAt.UTC(), ConfirmedAt: timePtr(d.ConfirmedAt), ExpiresAt: timePtr(d.ExpiresAt),
		LastUsedAt: timePtr(d.LastUsedAt),
	}
	switch d.Kind {
	case twofa.KindTOTP:
		j.Algorithm, j.Digits, j.Period = d.Params.Algorithm.String(), d.Params.Digits, d.Params.Period
	case twofa.KindEmail:
		j.Address, j.Restricted = d.Address, true
	}
	return j
}

type enrollRequest struct {
	Name        string `json:"name"`
	AccountName string `json:"account_name"`
	Issuer      string `json:"issuer"`
	Algorithm   string `json:"algorithm"`
	Digits      int    `json:"digits"`
	Period      int    `json:"period"`
}

func (enrollRequest) Valid() map[string]string { return nil } // the Service checks every field

type enrollResponse struct {
	DeviceID   string    `json:"device_id"`
	Secret     string    `json:"secret"`
	OTPAuthURI string    `json:"otpauth_uri"`
	QRPNG      string    `json:"qr_png"`
	QRSVG      string    `json:"qr_svg"`
	ExpiresAt  time.Time `json:"expires_at"`
	Warnings   []string  `json:"warnings"`
}

func (s *server) handleEnroll() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, err := decode[enrollRequest](w, r, true)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		en, err := s.svc.BeginEnrollment(r.Context(), ref(r), twofa.EnrollRequest(req))
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		qr, err := en.QR()
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		png, err := qr.PNG(256, otp.DefaultQuietZone)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		s.metrics.enrollments.WithLabelValues("started").Inc()
		warnings := en.Warnings
		if warnings == nil {
			warnings = []string{}
		}
		encode(w, http.StatusCreated, enrollResponse{
			DeviceID: en.Device.ID, Secret: otp.EncodeSecret(en.Secret), OTPAuthURI: en.URI,
			QRPNG: base64.StdEncoding.EncodeToString(png), QRSVG: qr.SVG(otp.DefaultQuietZone),
			ExpiresAt: en.ExpiresAt.UTC(), Warnings: warnings,
		})
	})
}

type codeRequest struct {
	Code string `json:"code"`
}

func (c codeRequest) Valid() map[string]string {
	if c.Code == "" {
		return map[string]string{"code": "required"}
	}
	return nil
}

type confirmResponse struct {
	Valid            bool        `json:"valid"`
	Reason           string      `json:"reason,omitempty"`
	Device           *deviceJSON `json:"device,omitempty"`
	BackupCodes      []string    `json:"backup_codes,omitempty"`
	ClockSkewSeconds *int        `json:"clock_skew_seconds,omitempty"`
}

func (s *server) handleConfirm() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, err := decode[codeRequest](w, r, false)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		res, err := s.svc.ConfirmEnrollment(r.Context(), ref(r), r.PathValue("device_id"), req.Code)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		out := confirmResponse{Valid: res.Valid, Reason: res.Reason}
		if res.Valid {
			d := toDeviceJSON(res.Device)
			out.Device, out.BackupCodes = &d, res.BackupCodes
			s.metrics.enrollments.WithLabelValues("confirmed").Inc()
		} else {
			s.metrics.enrollments.WithLabelValues("failed").Inc()
		}
		if res.ClockSkew != 0 {
			secs := int(res.ClockSkew / time.Second)
			out.ClockSkewSeconds = &secs
		}
		encode(w, http.StatusOK, out)
	})
}

type verifyResponse struct {
	Valid                bool   `json:"valid"`
	Reason               string `json:"reason,omitempty"`
	Factor               string `json:"factor,omitempty"`
	DeviceID             string `json:"device_id,omitempty"`
	BackupCodesRemaining *int   `json:"backup_codes_remaining,omitempty"`
}

func (s *server) handleVerify() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, err := decode[codeRequest](w, r, false)
		if err != nil {
			s.metrics.verifications.WithLabelValues("error", "bad_request").Inc()
			s.writeError(w, r, err)
			return
		}
		res, err := s.svc.Verify(r.Context(), ref(r), req.Code)
		if err != nil {
			e := toAPIError(r.Context(), s.log, err)
			reason := e.Reason
			if reason == "" {
				reason = e.Code
			}
			s.metrics.verifications.WithLabelValues("error", reason).Inc()
			s.writeError(w, r, e)
			return
		}
		s.encodeVerify(w, res)
	})
}

// encodeVerify answers a verification, of any factor, and counts it.
func (s *server) encodeVerify(w http.ResponseWriter, res *twofa.VerifyResult) {
	out := verifyResponse{Valid: res.Valid, Reason: res.Reason}
	if res.Valid {
		n := res.BackupCodesRemaining
		out.Factor, out.DeviceID, out.BackupCodesRemaining = res.Factor, res.Device, &n
		s.metrics.verifications.WithLabelValues("valid", res.Factor).Inc()
	} else {
		s.metrics.verifications.WithLabelValues("invalid", res.Reason).Inc()
		if !res.LockedUntil.IsZero() {
			s.metrics.lockouts.Inc()
		}
	}
	encode(w, http.StatusOK, out)
}

type resyncRequest struct {
	Code1 string `json:"code1"`
	Code2 string `json:"code2"`
}

func (q resyncRequest) Valid() map[string]string {
	problems := map[string]string{}
	if q.Code1 == "" {
		problems["code1"] = "required"
	}
	if q.Code2 == "" {
		problems["code2"] = "required: send two consecutive codes in one request"
	}
	if len(problems) == 0 {
		return nil
	}
	return problems
}

// resyncResponse is valid or not, and nothing in between: like a
// verification's answer, it says nothing of which code matched.
type resyncResponse struct {
	Valid  bool   `json:"valid"`
	Reason string `json:"reason,omitempty"`
	Drift  *int   `json:"drift_steps,omitempty"`
}

func (s *server) handleResync() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, err := decode[resyncRequest](w, r, false)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		res, err := s.svc.Resync(r.Context(), ref(r), r.PathValue("device_id"), req.Code1, req.Code2)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		out := resyncResponse{Valid: res.Valid}
		if res.Valid {
			out.Drift = &res.Drift
		} else {
			out.Reason = twofa.ReasonInvalidCode
			if !res.LockedUntil.IsZero() {
				s.metrics.lockouts.Inc()
			}
		}
		encode(w, http.StatusOK, out)
	})
}

type userResponse struct {
	UserID               string       `json:"user_id"`
	Enrolled             bool         `json:"enrolled"`
	Devices              []deviceJSON `json:"devices"`
	BackupCodesRemaining int          `json:"backup_codes_remaining"`
	LockedUntil          *time.Time   `json:"locked_until"`
}

func (s *server) handleUser() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, err := s.svc.UserStatus(r.Context(), ref(r))
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		out := userResponse{UserID: u.ID, Enrolled: u.Enrolled(), Devices: []deviceJSON{}, BackupCodesRemaining: u.BackupCodes, LockedUntil: timePtr(u.LockedUntil)}
		for _, d := range u.Devices {
			out.Devices = append(out.Devices, toDeviceJSON(d))
		}
		encode(w, http.StatusOK, out)
	})
}

func (s *server) handleRevokeDevice() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := s.svc.RevokeDevice(r.Context(), ref(r), r.PathValue("device_id")); err != nil {
			s.writeError(w, r, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
}

func (s *server) handleDisable() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := s.svc.Disable(r.Context(), ref(r)); err != nil {
			s.writeError(w, r, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
}

// noBody is the body of a POST that takes none: empty, or {}. Anything
// else is refused before the action, like any other bad body.
type noBody struct{}

func (noBody) Valid() map[string]string { return nil }

func (s *server) handleBackupCodes() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := decode[noBody](w, r, true); err != nil {
			s.writeError(w, r, err)
			return
		}
		codes, err := s.svc.RegenerateBackupCodes(r.Context(), ref(r))
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		encode(w, http.StatusCreated, map[string][]string{"backup_codes": codes})
	})
}

func (s *server) handleUnlock() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := decode[noBody](w, r, true); err != nil {
			s.writeError(w, r, err)
			return
		}
		if err := s.svc.Unlock(r.Context(), ref(r)); err != nil {
			s.writeError(w, r, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
}

type auditEventJSON struct {
	Seq       int64     `json:"seq"`
	Time      time.Time `json:"time"`
	Type      string    `json:"type"`
	UserID    string    `json:"user_id,omitempty"`
	DeviceID  string    `json:"device_id,omitempty"`
	Factor    string    `json:"factor,omitempty"`
	Reason    string    `json:"reason,omitempty"`
	Actor     string    `json:"actor,omitempty"`
	IP        string    `json:"ip,omitempty"`
	UserAgent string    `json:"user_agent,omitempty"`
	Detail    string    `json:"detail,omitempty"`
	Hash      string    `json:"hash"`
}

func (s *server) handleAudit() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		k := r.Context().Value(keyAPIKey).(*twofa.APIKey)
		q := r.URL.Query()
		f := twofa.AuditFilter{Tenant: k.Tenant, User: q.Get("user_id"), Limit: 100}
		if v := q.Get("after"); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 {
				s.writeError(w, r, invalid("after must be a non-negative sequence number"))
				return
			}
			f.After = n
		}
		if v := q.Get("limit"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 1000 {
				s.writeError(w, r, invalid("limit must be 1 to 1000"))
				return
			}
			f.Limit = n
		}
		events, err := s.svc.AuditEvents(r.Context(), f)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		out := struct {
			Events    []auditEventJSON `json:"events"`
			NextAfter *int64           `json:"next_after"`
		}{Events: []auditEventJSON{}}
		for _, e := range events {
			out.Events = append(out.Events, auditEventJSON{
				Seq: e.Seq, Time: e.Time.UTC(), Type: string(e.Type), UserID: e.User, DeviceID: e.Device,
				Factor: e.Factor, Reason: e.Reason, Actor: e.Actor, IP: e.IP, UserAgent: e.UserAgent,
				Detail: e.Detail, Hash: hex.EncodeToString(e.Hash),
			})
		}
		if len(events) == f.Limit {
			last := events[len(events)-1].Seq
			out.NextAfter = &last
		}
		encode(w, http.StatusOK, out)
	})
}

func (s *server) handleAuditVerify() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		k := r.Context().Value(keyAPIKey).(*twofa.APIKey)
		st, err := s.svc.VerifyAuditFor(r.Context(), k.Tenant)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		encode(w, http.StatusOK, map[string]any{
			"ok": st.OK, "tenant_events": st.Events, "bad_seq": st.BadSeq, "problem": st.Problem,
		})
	})
}
