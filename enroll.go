package twofa

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/twofa/twofa/otp"
)

// EnrollRequest asks for a new TOTP device. Every field is optional.
type EnrollRequest struct {
	Name        string // the device's name, such as "Work phone"
	AccountName string // shown in the app; default: the user ID, colons made full stops
	Issuer      string // shown in the app; default: the policy's
	Algorithm   string // SHA1, SHA256 or SHA512; default: the policy's
	Digits      int    // 6 to 8
	Period      int    // seconds, at most MaxDevicePeriod
}

// Enrollment is a pending TOTP device and what the user needs to add it
// to an app. It holds the secret in the clear: show it once, never log it.
type Enrollment struct {
	Device    *Device
	Secret    []byte
	URI       string
	ExpiresAt time.Time
	// Warnings name parameters that popular apps mishandle.
	Warnings []string
}

// QR encodes the key URI as a QR code, for the user to scan. It is left
// to the edges that show it: encoding takes milliseconds, which bulk
// enrollment need not pay.
func (e *Enrollment) QR() (*otp.QR, error) { return otp.NewQR(e.URI, otp.RecoveryM) }

// Limits of enrollment fields, in bytes.
const (
	maxDeviceName  = 64
	maxAccountName = 128
	maxIssuer      = 64
)

// BeginEnrollment creates a pending TOTP device for the user, with a new
// secret, that a confirmation code must activate before its enrollment
// expires. Errors: EINVALID for bad fields, ErrDeviceLimit, LockedError.
func (s *Service) BeginEnrollment(ctx context.Context, ref UserRef, req EnrollRequest) (*Enrollment, error) {
	if err := ref.Validate(); err != nil {
		return nil, err
	}
	now := s.now()
	if u, err := s.store.User(ctx, ref); err == nil && u.Locked(now) {
		return nil, LockedError(u.LockedUntil)
	} else if err != nil && !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	d, u, err := s.newDevice(ref, req, now)
	if err != nil {
		return nil, err
	}
	secret, err := otp.GenerateSecret(d.Params.Algorithm)
	if err != nil {
		return nil, err
	}
	u.Secret = secret
	if d.Secret, err = s.keys.Seal(secret, SecretAD(d)); err != nil {
		return nil, fmt.Errorf("sealing a secret: %w", err)
	}
	d.KeyID = s.keys.ActiveID()
	uri, err := u.Format()
	if err != nil {
		return nil, Errorf(EINVALID, "%s", strings.TrimPrefix(err.Error(), "otp: "))
	}
	e := s.event(ctx, EventEnrollStarted, ref, d.ID, now)
	e.Factor, e.Detail = string(KindTOTP), fmt.Sprintf("name %q", d.Name)
	expired, err := s.store.CreateDevice(ctx, d, s.policy.MaxDevices, now, e)
	if err != nil {
		return nil, err
	}
	s.auditExpired(ctx, expired, now)
	return &Enrollment{Device: d, Secret: secret, URI: uri, ExpiresAt: d.ExpiresAt, Warnings: u.Compatibility()}, nil
}

// newDevice validates an enrollment request into a device and its key URI
// (without the secret).
func (s *Service) newDevice(ref UserRef, req EnrollRequest, now time.Time) (*Device, *otp.URI, error) {
	name, err := cleanName("device name", req.Name, maxDeviceName)
	if err != nil {
		return nil, nil, err
	}
	if name == "" {
		name = "Authenticator"
	}
	account, err := cleanName("account name", req.AccountName, maxAccountName)
	if err != nil {
		return nil, nil, err
	}
	if account == "" {
		account = accountName(ref.User)
	}
	issuer, err := cleanName("issuer", req.Issuer, maxIssuer)
	if err != nil {
		return nil, nil, err
	}
	if issuer == "" {
		issuer = s.policy.Issuer
	}
	p := s.policy.TOTP
	if req.Algorithm != "" {
		if p.Algorithm, err = otp.ParseAlgorithm(req.Algorithm); err != nil {
			return nil, nil, Errorf(EINVALID, "algorithm must be SHA1, SHA256 or SHA512")
		}
	}
	if req.Digits != 0 {
		p.Digits = req.Digits
	}
	if req.Period != 0 {
		p.Period = req.Period
	}
	if p, err = p.Normalize(); err != nil {
		return nil, nil, Errorf(EINVALID, "%s", strings.TrimPrefix(err.Error(), "otp: "))
	}
	if p.Period > MaxDevicePeriod {
		return nil, nil, Errorf(EINVALID, "period must be at most %d seconds", MaxDevicePeriod)
	}
	d := &Device{
		ID: NewID("dev"), Tenant: ref.Tenant, User: ref.User, Kind: KindTOTP, Name: name,
		Status: StatusPending, Params: p, CreatedAt: now, ExpiresAt: now.Add(s.policy.EnrollTTL),
	}
	if strings.Contains(issuer, ":") || strings.Contains(account, ":") {
		return nil, nil, Errorf(EINVALID, "issuer and account name must not contain a colon (the key URI format forbids it)")
	}
	return d, &otp.URI{Type: otp.TypeTOTP, Issuer: issuer, Account: account, Params: p}, nil
}

// accountName derives the account name an app shows from a user ID, which
// may hold what a key URI's label may not. A colon, which the label uses
// to part the issuer from the account, becomes a full stop, so that
// "urn:acme:42" shows as "urn.acme.42"; spaces at either end, which apps
// trim, go. An ID of spaces alone shows as "user".
func accountName(user string) string {
	if a := strings.TrimSpace(strings.ReplaceAll(user, ":", ".")); a != "" {
		return a
	}
	return "user"
}

// ConfirmResult is the outcome of a confirmation code.
type ConfirmResult struct {
	Valid  bool
	Reason string // when not valid: "invalid_code"
	Device *Device
	// BackupCodes is the user's first set of backup codes, issued with
	// their first device; show it once.
	BackupCodes []string
	// ClockSkew, for a code that matched a step outside the window, is how
	// far the phone's clock seems to be from the server's (positive: ahead).
	ClockSkew time.Duration
}

// confirmAttempts bounds the codes tried against one enrollment.
const confirmAttempts = 10

// ConfirmEnrollment activates a pending device if code is valid for it,
// burning the code's time step, and issues the user's first set of backup
// codes if they have none. Errors: ErrNotFound (no such pending device),
// ErrExpired, ErrMalformedCode, LockedError, ErrRateLimited.
//
// A wrong code does not count towards the user's lockout: confirming a
// device proves nothing about the user, and the secret was shown to whoever
// began the enrollment. Instead each enrollment takes at most 10 codes.
func (s *Service) ConfirmEnrollment(ctx context.Context, ref UserRef, deviceID, code string) (*ConfirmResult, error) {
	u, err := s.user(ctx, ref)
	if err != nil {
		return nil, err
	}
	now := s.now()
	d := u.Device(deviceID)
	if d == nil || d.Status != StatusPending {
		return nil, fmt.Errorf("no pending enrollment %q: %w", deviceID, ErrNotFound)
	}
	if !d.ExpiresAt.After(now) {
		e := s.event(ctx, EventEnrollExpired, ref, d.ID, now)
		if err := s.store.DeleteDevice(ctx, ref, d.ID, e); err != nil && !errors.Is(err, ErrNotFound) {
			return nil, err
		}
		return nil, ErrExpired
	}
	if u.Locked(now) {
		return nil, LockedError(u.LockedUntil)
	}
	if _, err := otp.ParseCode(code, d.Params.Digits); err != nil {
		return nil, malformed(err)
	}
	n, err := s.store.Hit(ctx, "confirm:"+d.ID, s.policy.EnrollTTL, now)
	if err != nil {
		return nil, err
	}
	if n > confirmAttempts {
		return nil, RateLimitedError("codes for this enrollment: begin a new one", d.ExpiresAt)
	}
	k, err := s.key(d)
	if err != nil {
		return nil, err
	}
	m, err := k.Verify(code, now, s.policy.Window)
	if err != nil {
		return nil, malformed(err)
	}
	if !m.Valid {
		e := s.event(ctx, EventEnrollFailed, ref, d.ID, now)
		e.Factor, e.Reason = string(KindTOTP), "invalid_code"
		s.audit(ctx, e)
		res := &ConfirmResult{Reason: "invalid_code", Device: d}
		// A hint for the person at the enrollment page; harmless here,
		// since whoever confirms holds the secret anyway.
		wide := otp.Window{Behind: s.policy.ClockHintWindow, Ahead: s.policy.ClockHintWindow}
		if w, err := k.Verify(code, now, wide); err == nil && w.Valid {
			res.ClockSkew = time.Duration(w.Offset*d.Params.Period) * time.Second
		}
		return res, nil
	}
	var codes []string
	var hashes [][]byte
	if u.BackupCodes == 0 {
		if codes, hashes, err = s.newBackupCodes(ref); err != nil {
			return nil, err
		}
	}
	e := s.event(ctx, EventEnrollConfirmed, ref, d.ID, now)
	e.Factor = string(KindTOTP)
	s.attachNotices(ctx, e, u, nil)
	issue := s.event(ctx, EventBackupCodesIssued, ref, "", now)
	issue.Detail = fmt.Sprintf("%d codes", len(codes))
	issued, err := s.store.ActivateDevice(ctx, Activation{Ref: ref, DeviceID: d.ID, Step: m.Step, Now: now, BackupCodes: hashes, Event: e, IssueEvent: issue})
	if err != nil {
		return nil, err
	}
	if !issued {
		codes = nil
	}
	d.Status, d.LastStep, d.ConfirmedAt, d.LastUsedAt, d.ExpiresAt = StatusActive, m.Step, now, now, time.Time{}
	return &ConfirmResult{Valid: true, Device: d, BackupCodes: codes}, nil
}

// malformed turns an otp code error into the Service's, keeping its message.
func malformed(err error) error {
	if errors.Is(err, otp.ErrMalformedCode) {
		return &Error{Code: EINVALID, Reason: ErrMalformedCode.Reason, Message: strings.TrimPrefix(err.Error(), "otp: ")}
	}
	return err
}

// ImportRequest is an existing TOTP secret brought from another system.
type ImportRequest struct {
	Name   string
	Secret []byte
	Params otp.Params
}

// ImportTOTP adds an active TOTP device with an existing secret, sealed on
// the way in, for teams moving from another system. No code confirms it:
// the secret is already in the user's app. A secret one of the user's
// active devices has is not added again (ErrDuplicate), so an import run
// twice changes nothing: two devices with one secret would let each code
// pass once per device. Errors: EINVALID (a secret under 128 bits or bad
// parameters), ErrDuplicate, ErrDeviceLimit.
//
// The duplicate check reads the user's devices before the new one is
// added, not in the same transaction: two imports of one secret for one
// user at the same moment could both add it.
func (s *Service) ImportTOTP(ctx context.Context, ref UserRef, req ImportRequest) (*Device, error) {
	if err := ref.Validate(); err != nil {
		return nil, err
	}
	now := s.now()
	d, _, err := s.newDevice(ref, EnrollRequest{Name: req.Name, Algorithm: req.Params.Algorithm.String(), Digits: req.Params.Digits, Period: req.Params.Period}, now)
	if err != nil {
		return nil, err
	}
	if req.Params.T0 != 0 {
		return nil, Errorf(EINVALID, "secrets with a T0 other than 0 cannot be imported")
	}
	if len(req.Secret) < otp.MinSecretSize {
		return nil, Errorf(EINVALID, "secret is shorter than %d bytes (128 bits, RFC 4226): re-enroll this user instead", otp.MinSecretSize)
	}
	if err := s.refuseDuplicate(ctx, ref, req.Secret); err != nil {
		return nil, err
	}
	if d.Secret, err = s.keys.Seal(req.Secret, SecretAD(d)); err != nil {
		return nil, fmt.Errorf("sealing a secret: %w", err)
	}
	d.KeyID = s.keys.ActiveID()
	e := s.event(ctx, EventEnrollStarted, ref, d.ID, now)
	e.Factor, e.Detail = string(KindTOTP), "import"
	if _, err := s.store.CreateDevice(ctx, d, s.policy.MaxDevices, now, e); err != nil {
		return nil, err
	}
	c := s.event(ctx, EventEnrollConfirmed, ref, d.ID, now)
	c.Factor, c.Detail = string(KindTOTP), "imported secret"
	if _, err := s.store.ActivateDevice(ctx, Activation{Ref: ref, DeviceID: d.ID, Step: 0, Now: now, Event: c}); err != nil {
		return nil, err
	}
	d.Status, d.ConfirmedAt, d.LastUsedAt, d.ExpiresAt = StatusActive, now, now, time.Time{}
	return d, nil
}

// refuseDuplicate returns ErrDuplicate, naming the device, when one of the
// user's active devices holds secret. Every such device's secret is opened
// and compared in constant time, all of them, with no early exit. A
// pending device is left out: it verifies nothing, and expires.
func (s *Service) refuseDuplicate(ctx context.Context, ref UserRef, secret []byte) error {
	u, err := s.store.User(ctx, ref)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	var dup *Device
	for _, d := range u.Devices {
		if d.Kind != KindTOTP || d.Status != StatusActive {
			continue
		}
		have, err := s.keys.Open(d.Secret, SecretAD(d))
		if err != nil {
			return fmt.Errorf("opening the secret of device %s: %w", d.ID, err)
		}
		if subtle.ConstantTimeCompare(have, secret) == 1 {
			dup = d
		}
		clear(have)
	}
	if dup != nil {
		return &Error{Code: ErrDuplicate.Code, Reason: ErrDuplicate.Reason,
			Message: fmt.Sprintf("the user already has this secret, in device %s", dup.ID)}
	}
	return nil
}
