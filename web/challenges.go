package web

import (
	"net/http"
	"time"

	"github.com/twofa/twofa"
)

// The email factor and the challenges of every delivered factor.

type emailRequest struct {
	Address string `json:"address"`
	Name    string `json:"name"`
}

func (q emailRequest) Valid() map[string]string {
	if q.Address == "" {
		return map[string]string{"address": "required"}
	}
	return nil
}

// challengeJSON is a challenge as the API shows it: never its codes.
type challengeJSON struct {
	ChallengeID  string    `json:"challenge_id"`
	Factor       string    `json:"factor"`
	Purpose      string    `json:"purpose"`
	DeviceID     string    `json:"device_id"`
	State        string    `json:"state"`
	ExpiresAt    time.Time `json:"expires_at"`
	ResendAfter  time.Time `json:"resend_after"`
	AttemptsLeft int       `json:"attempts_left"`
	CodeDigits   int       `json:"code_digits"`
}

func (s *server) toChallengeJSON(c *twofa.Challenge) challengeJSON {
	return challengeJSON{
		ChallengeID: c.ID, Factor: c.Factor, Purpose: c.Purpose, DeviceID: c.DeviceID, State: c.State(s.now()),
		ExpiresAt: c.ExpiresAt.UTC(), ResendAfter: c.LastSentAt.Add(twofa.ResendGap).UTC(),
		AttemptsLeft: max(0, twofa.MaxChallengeAttempts-c.Attempts), CodeDigits: twofa.EmailCodeDigits,
	}
}

type emailEnrollResponse struct {
	Device    deviceJSON    `json:"device"`
	Challenge challengeJSON `json:"challenge"`
}

// handleEnrollEmail adds a pending email device and sends it a code.
func (s *server) handleEnrollEmail() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, err := decode[emailRequest](w, r, false)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		en, err := s.svc.BeginEmailEnrollment(r.Context(), ref(r), req.Address, req.Name)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		s.metrics.enrollments.WithLabelValues("started").Inc()
		encode(w, http.StatusCreated, emailEnrollResponse{Device: toDeviceJSON(en.Device), Challenge: s.toChallengeJSON(en.Challenge)})
	})
}

type challengeCodeRequest struct {
	ChallengeID string `json:"challenge_id"`
	Code        string `json:"code"`
}

func (q challengeCodeRequest) Valid() map[string]string {
	p := map[string]string{}
	if q.ChallengeID == "" {
		p["challenge_id"] = "required"
	}
	if q.Code == "" {
		p["code"] = "required"
	}
	if len(p) == 0 {
		return nil
	}
	return p
}

// handleConfirmEmail confirms a pending email device with the code its
// enrollment sent.
func (s *server) handleConfirmEmail() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, err := decode[challengeCodeRequest](w, r, false)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		res, err := s.svc.ConfirmEmail(r.Context(), ref(r), r.PathValue("device_id"), req.ChallengeID, req.Code)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if res.Valid {
			s.metrics.enrollments.WithLabelValues("confirmed").Inc()
		}
		s.encodeVerify(w, res)
	})
}

type startChallengeRequest struct {
	Factor   string `json:"factor"`
	DeviceID string `json:"device_id"`
}

func (q startChallengeRequest) Valid() map[string]string {
	if q.Factor == "" {
		return map[string]string{"factor": "required"}
	}
	return nil
}

func (s *server) handleStartChallenge() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, err := decode[startChallengeRequest](w, r, false)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		c, err := s.svc.StartChallenge(r.Context(), ref(r), req.Factor, req.DeviceID)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		encode(w, http.StatusCreated, s.toChallengeJSON(c))
	})
}

func (s *server) handleResendChallenge() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := decode[noBody](w, r, true); err != nil {
			s.writeError(w, r, err)
			return
		}
		c, err := s.svc.ResendChallenge(r.Context(), ref(r), r.PathValue("challenge_id"))
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		encode(w, http.StatusOK, s.toChallengeJSON(c))
	})
}

func (s *server) handleGetChallenge() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := s.svc.Challenge(r.Context(), ref(r), r.PathValue("challenge_id"))
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		encode(w, http.StatusOK, s.toChallengeJSON(c))
	})
}

func (s *server) handleVerifyChallenge() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, err := decode[codeRequest](w, r, false)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		res, err := s.svc.VerifyChallenge(r.Context(), ref(r), r.PathValue("challenge_id"), req.Code)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		s.encodeVerify(w, res)
	})
}
