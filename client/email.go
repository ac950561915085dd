package client

import (
	"context"
	"time"
)

// Challenge is a code twofa sent to one of the user's devices (an email
// address), for the user to type back. Its codes are never shown.
type Challenge struct {
	ID           string    `json:"challenge_id"`
	Factor       string    `json:"factor"`  // "email"
	Purpose      string    `json:"purpose"` // "sign_in" or "confirm_email"
	DeviceID     string    `json:"device_id"`
	State        string    `json:"state"` // "pending", "verified" or "expired"
	ExpiresAt    time.Time `json:"expires_at"`
	ResendAfter  time.Time `json:"resend_after"` // the earliest time Resend is accepted
	AttemptsLeft int       `json:"attempts_left"`
	CodeDigits   int       `json:"code_digits"`
}

// EmailEnrollment is a pending email device and the challenge whose code
// was sent to it.
type EmailEnrollment struct {
	Device    Device    `json:"device"`
	Challenge Challenge `json:"challenge"`
}

// EnrollEmail adds a pending email device for the user and sends a code
// to the address; ConfirmEmail activates it. Email is a restricted factor:
// the user needs an authenticator app or backup codes first, unless the
// tenant allows email alone. Errors to expect: IsInvalid (a bad address),
// ReasonAddressTaken, ReasonRestricted, ReasonUnavailable (the server
// sends no email), IsRateLimited.
func (c *Client) EnrollEmail(ctx context.Context, userID, address, name string) (*EmailEnrollment, error) {
	p, err := userPath(userID, "email")
	if err != nil {
		return nil, err
	}
	in := map[string]string{"address": address}
	if name != "" {
		in["name"] = name
	}
	var out EmailEnrollment
	if err := c.do(ctx, "POST", p, in, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ConfirmEmail confirms a pending email device with the code of its
// enrollment's challenge. A wrong code is a result with Valid false (and
// a failed attempt of the user), not an error.
func (c *Client) ConfirmEmail(ctx context.Context, userID, deviceID, challengeID, code string) (*VerifyResult, error) {
	d, err := deviceSegment(deviceID)
	if err != nil {
		return nil, err
	}
	p, err := userPath(userID, "email", d, "confirm")
	if err != nil {
		return nil, err
	}
	var out VerifyResult
	if err := c.do(ctx, "POST", p, map[string]string{"challenge_id": challengeID, "code": code}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// StartChallenge sends a sign-in code to one of the user's email devices
// (deviceID, or the one used last when empty). Errors to expect:
// IsNotEnrolled (no email address), ReasonUnavailable, IsRateLimited.
func (c *Client) StartChallenge(ctx context.Context, userID, factor, deviceID string) (*Challenge, error) {
	p, err := userPath(userID, "challenges")
	if err != nil {
		return nil, err
	}
	in := map[string]string{"factor": factor}
	if deviceID != "" {
		in["device_id"] = deviceID
	}
	var out Challenge
	if err := c.do(ctx, "POST", p, in, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ResendChallenge sends another code for the challenge; the earlier ones
// stay valid. IsRateLimited before ResendAfter.
func (c *Client) ResendChallenge(ctx context.Context, userID, challengeID string) (*Challenge, error) {
	return c.challenge(ctx, "POST", userID, challengeID, "resend")
}

// Challenge returns the challenge's state.
func (c *Client) Challenge(ctx context.Context, userID, challengeID string) (*Challenge, error) {
	return c.challenge(ctx, "GET", userID, challengeID, "")
}

func (c *Client) challenge(ctx context.Context, method, userID, challengeID, action string) (*Challenge, error) {
	id, err := challengeSegment(challengeID)
	if err != nil {
		return nil, err
	}
	rest := []string{"challenges", id}
	if action != "" {
		rest = append(rest, action)
	}
	p, err := userPath(userID, rest...)
	if err != nil {
		return nil, err
	}
	var out Challenge
	if err := c.do(ctx, method, p, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// VerifyChallenge answers whether code is a live code of the challenge,
// as Verify answers for TOTP codes: let the user in only when the result
// is Valid. ReasonChallengeEnded once it was spent, expired or ran out
// of attempts.
func (c *Client) VerifyChallenge(ctx context.Context, userID, challengeID, code string) (*VerifyResult, error) {
	id, err := challengeSegment(challengeID)
	if err != nil {
		return nil, err
	}
	p, err := userPath(userID, "challenges", id, "verify")
	if err != nil {
		return nil, err
	}
	var out VerifyResult
	if err := c.do(ctx, "POST", p, map[string]string{"code": code}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// challengeSegment is a challenge ID as a path segment; an empty one is
// refused before sending.
func challengeSegment(id string) (string, error) {
	if id == "" {
		return "", &Error{Code: CodeInvalid, Message: "challenge ID is empty"}
	}
	return segment(id), nil
}
