package twofa

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/mail"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/twofa/twofa/seal"
)

// Email as a second factor: codes sent to a confirmed address. NIST SP
// 800-63B rev 4 does not accept email as an out-of-band authenticator
// (mail is neither bound to a device nor private in transit), so email
// is a restricted factor: a fallback beside an authenticator app or
// backup codes, and a user's only factor only where the tenant allows it.

// FactorEmail is the factor of codes sent by email.
const FactorEmail = "email"

// KindEmail is a device that is an email address.
const KindEmail DeviceKind = "email"

// Email codes: 8 digits, valid 10 minutes; resends at least 30 s apart,
// at most 5 sends in 15 minutes per user and per address.
const (
	EmailCodeDigits = 8
	EmailCodeTTL    = 10 * time.Minute
	ResendGap       = 30 * time.Second
	sendsPerWindow  = 5
	sendWindow      = 15 * time.Minute
	maxAddressLen   = 254 // RFC 5321's path limit
)

// Audit events of challenges and email.
const (
	EventChallengeCreated  EventType = "challenge_created"
	EventChallengeResent   EventType = "challenge_resent"
	EventChallengeVerified EventType = "challenge_verified"
)

// NormalizeEmail checks an email address and returns its canonical form:
// a bare addr-spec (no display name, no comments), the domain in lower
// case. The local part keeps its case: RFC 5321 lets a server tell
// "Bob" from "bob", though few do.
func NormalizeEmail(address string) (string, error) {
	a := strings.TrimSpace(address)
	bad := func(why string) (string, error) {
		return "", Errorf(EINVALID, "email address %s", why)
	}
	switch {
	case a == "":
		return bad("is empty")
	case len(a) > maxAddressLen:
		return bad(fmt.Sprintf("is longer than %d bytes", maxAddressLen))
	case !utf8.ValidString(a):
		return bad("is not valid UTF-8")
	case strings.ContainsAny(a, "<>\"(),;:\\[] \t\r\n"):
		return bad("must be a plain address such as jane@example.com, without a name, quotes or spaces")
	}
	p, err := mail.ParseAddress(a)
	if err != nil || p.Name != "" || p.Address != a {
		return bad("must be a plain address such as jane@example.com")
	}
	at := strings.LastIndexByte(a, '@')
	local, domain := a[:at], strings.ToLower(a[at+1:])
	if local == "" || len(local) > 64 {
		return bad("has a local part that is empty or over 64 bytes")
	}
	if !strings.Contains(domain, ".") || strings.HasPrefix(domain, ".") || strings.HasSuffix(domain, ".") ||
		strings.Contains(domain, "..") {
		return bad("must have a domain such as example.com")
	}
	return local + "@" + domain, nil
}

// emailAD binds a sealed address to its device.
func emailAD(d *Device) []byte {
	return seal.AD("twofa/email-address/v1", d.Tenant, d.User, d.ID, string(d.Kind))
}

// addressIndex is a keyed blind index of a normalised address: equal
// addresses of a user are found without the address in the clear.
func (s *Service) addressIndex(kind DeviceKind, address string) []byte {
	m := hmac.New(sha256.New, s.indexKey)
	m.Write([]byte("twofa/address-index/v1\x00"))
	m.Write([]byte(kind))
	m.Write([]byte{0})
	m.Write([]byte(address))
	return m.Sum(nil)
}

// address opens an email device's address.
func (s *Service) address(d *Device) (string, error) {
	b, err := s.keys.Open(d.Secret, SecretAD(d))
	if err != nil {
		return "", fmt.Errorf("opening the address of device %s: %w", d.ID, err)
	}
	return string(b), nil
}

// EmailEnrollment is a pending email device and the challenge that
// confirms it.
type EmailEnrollment struct {
	Device    *Device
	Challenge *Challenge
}

// ErrAddressTaken: the user already has this address as a factor.
var ErrAddressTaken = &Error{Code: ECONFLICT, Reason: "address_taken", Message: "the user already has this address"}

// ErrUnavailable: the factor needs a channel this server does not
// deliver (email without an SMTP server).
var ErrUnavailable = &Error{Code: ECONFLICT, Reason: "factor_unavailable",
	Message: "email is not available on this server: it has no SMTP server to send codes with (an operator sets --smtp-url)"}

// Delivers reports whether the Service delivers messages of the channel
// (Options.Channels).
func (s *Service) Delivers(c Channel) bool { return s.channels == nil || s.channels[c] }

// ErrRestrictedOnly: a restricted factor (email) cannot be the user's
// only factor in this tenant.
var ErrRestrictedOnly = &Error{Code: ECONFLICT, Reason: "restricted_factor",
	Message: "email is a restricted factor: the user needs an authenticator app or backup codes first (NIST SP 800-63B), unless the tenant allows email alone"}

// BeginEmailEnrollment adds a pending email device for the user and sends
// a code to the address, which ConfirmEmail (VerifyChallenge) activates.
// Errors: EINVALID (a bad address or name), ErrAddressTaken,
// ErrDeviceLimit, ErrRestrictedOnly, LockedError, ErrRateLimited.
func (s *Service) BeginEmailEnrollment(ctx context.Context, ref UserRef, address, name string) (*EmailEnrollment, error) {
	if err := ref.Validate(); err != nil {
		return nil, err
	}
	if !s.Delivers(ChannelEmail) {
		return nil, ErrUnavailable
	}
	addr, err := NormalizeEmail(address)
	if err != nil {
		return nil, err
	}
	name, err = cleanName("device name", name, maxDeviceName)
	if err != nil {
		return nil, err
	}
	if name == "" {
		name = "Email"
	}
	now := s.now()
	index := s.addressIndex(KindEmail, addr)
	u, err := s.store.User(ctx, ref)
	switch {
	case errors.Is(err, ErrNotFound):
		u = &User{Tenant: ref.Tenant, ID: ref.User}
	case err != nil:
		return nil, err
	}
	if u.Locked(now) {
		return nil, LockedError(u.LockedUntil)
	}
	for _, d := range u.Devices {
		if d.Kind == KindEmail && hmac.Equal(d.AddressIndex, index) && (d.Status == StatusActive || d.ExpiresAt.After(now)) {
			return nil, ErrAddressTaken
		}
	}
	if !hasUnrestricted(u) {
		ok, err := s.restrictedOnlyAllowed(ctx, ref.Tenant)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, ErrRestrictedOnly
		}
	}
	if err := s.sendLimits(ctx, ref, index, now); err != nil {
		return nil, err
	}
	d := &Device{
		ID: NewID("dev"), Tenant: ref.Tenant, User: ref.User, Kind: KindEmail, Name: name, Status: StatusPending,
		AddressIndex: index, CreatedAt: now, ExpiresAt: now.Add(s.policy.EnrollTTL),
	}
	if d.Secret, err = s.keys.Seal([]byte(addr), SecretAD(d)); err != nil {
		return nil, fmt.Errorf("sealing an address: %w", err)
	}
	d.KeyID = s.keys.ActiveID()
	e := s.event(ctx, EventEnrollStarted, ref, d.ID, now)
	e.Factor, e.Detail = FactorEmail, fmt.Sprintf("name %q", d.Name)
	expired, err := s.store.CreateDevice(ctx, d, s.policy.MaxDevices, now, e)
	if err != nil {
		return nil, err
	}
	s.auditExpired(ctx, expired, now)
	c, err := s.newChallenge(ctx, d, addr, PurposeConfirm, now)
	if err != nil {
		return nil, err
	}
	d.Address = addr
	return &EmailEnrollment{Device: d, Challenge: c}, nil
}

// hasUnrestricted reports whether the user has a factor that is not
// restricted: an active authenticator app or unused backup codes.
func hasUnrestricted(u *User) bool {
	if u.BackupCodes > 0 {
		return true
	}
	for _, d := range u.ActiveDevices() {
		if d.Kind == KindTOTP {
			return true
		}
	}
	return false
}

// sendLimits counts a send to the user and to the address, and refuses
// one over either limit.
func (s *Service) sendLimits(ctx context.Context, ref UserRef, index []byte, now time.Time) error {
	for _, key := range []string{"send-user:" + ref.String(), "send-email:" + hex.EncodeToString(index[:16])} {
		n, err := s.store.Hit(ctx, key, sendWindow, now)
		if err != nil {
			return err
		}
		if n > sendsPerWindow {
			return RateLimitedError("codes sent", time.UnixMicro(FloorMicros(now.UnixMicro(), sendWindow.Microseconds())).Add(sendWindow))
		}
	}
	return nil
}

// newChallenge creates a challenge for the device with its first code,
// and queues the code's message in the same transaction.
func (s *Service) newChallenge(ctx context.Context, d *Device, addr, purpose string, now time.Time) (*Challenge, error) {
	c := &Challenge{
		ID: NewID("chl"), Tenant: d.Tenant, User: d.User, DeviceID: d.ID, Factor: FactorEmail, Purpose: purpose,
		Sends: 1, LastSentAt: now, CreatedAt: now, ExpiresAt: now.Add(EmailCodeTTL),
	}
	code, err := newCode(EmailCodeDigits)
	if err != nil {
		return nil, err
	}
	c.Codes = []ChallengeCode{{Hash: s.codeHash(c.ID, code), ExpiresAt: c.ExpiresAt}}
	e := s.event(ctx, EventChallengeCreated, d.Ref(), d.ID, now)
	e.Factor, e.Detail = FactorEmail, fmt.Sprintf("challenge %s, %s", c.ID, purpose)
	if err := s.attachCode(e, d, addr, code, purpose, c.ExpiresAt); err != nil {
		return nil, err
	}
	if err := s.store.CreateChallenge(ctx, c, e); err != nil {
		return nil, err
	}
	s.Notify()
	return c, nil
}

// attachCode adds the message that delivers code to addr to e.
func (s *Service) attachCode(e *AuditEvent, d *Device, addr, code, purpose string, expires time.Time) error {
	m := &Message{ID: NewID("msg"), Tenant: d.Tenant, User: d.User, Channel: ChannelEmail, Kind: KindCode}
	if err := s.SealMessage(m, MessageBody{To: addr, Code: code, CodeExpires: expires, Purpose: purpose}); err != nil {
		return err
	}
	e.Messages = append(e.Messages, m)
	return nil
}

// StartChallenge sends a sign-in code to one of the user's email devices
// (deviceID, or the one used last when empty) and returns the challenge.
// Errors: ErrNotFound (no such active email device), ErrRestrictedOnly,
// LockedError, ErrRateLimited.
func (s *Service) StartChallenge(ctx context.Context, ref UserRef, factor, deviceID string) (*Challenge, error) {
	if err := ref.Validate(); err != nil {
		return nil, err
	}
	if factor != FactorEmail {
		return nil, Errorf(EINVALID, "factor must be %q", FactorEmail)
	}
	if !s.Delivers(ChannelEmail) {
		return nil, ErrUnavailable
	}
	u, err := s.store.User(ctx, ref)
	if errors.Is(err, ErrNotFound) {
		return nil, ErrNotEnrolled
	}
	if err != nil {
		return nil, err
	}
	now := s.now()
	if u.Locked(now) {
		return nil, LockedError(u.LockedUntil)
	}
	var d *Device
	for _, x := range u.ActiveDevices() {
		if x.Kind == KindEmail && (x.ID == deviceID || deviceID == "" && (d == nil || x.LastUsedAt.After(d.LastUsedAt))) {
			d = x
		}
	}
	if d == nil {
		if deviceID != "" {
			return nil, fmt.Errorf("no active email device %q: %w", deviceID, ErrNotFound)
		}
		return nil, fmt.Errorf("no email device: %w", ErrNotEnrolled)
	}
	if !hasUnrestricted(u) {
		ok, err := s.restrictedOnlyAllowed(ctx, ref.Tenant)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, ErrRestrictedOnly
		}
	}
	addr, err := s.address(d)
	if err != nil {
		return nil, err
	}
	if err := s.sendLimits(ctx, ref, d.AddressIndex, now); err != nil {
		return nil, err
	}
	return s.newChallenge(ctx, d, addr, PurposeSignIn, now)
}

// ResendChallenge sends another code for the user's challenge; the
// earlier ones stay valid (at most MaxLiveCodes at once), and share its
// attempt budget. Errors: ErrNotFound, ErrChallengeEnded, ErrRateLimited
// (less than ResendGap since the last send, or over the send limits).
func (s *Service) ResendChallenge(ctx context.Context, ref UserRef, id string) (*Challenge, error) {
	if err := ref.Validate(); err != nil {
		return nil, err
	}
	now := s.now()
	c, err := s.store.Challenge(ctx, ref, id)
	if err != nil {
		return nil, err
	}
	if c.State(now) != ChallengePending {
		return nil, ErrChallengeEnded
	}
	if next := c.LastSentAt.Add(ResendGap); next.After(now) {
		return nil, RateLimitedError("codes for this challenge", next)
	}
	u, err := s.store.User(ctx, ref)
	if err != nil {
		return nil, err
	}
	if u.Locked(now) {
		return nil, LockedError(u.LockedUntil) // no code to a user who cannot type it
	}
	d := u.Device(c.DeviceID)
	if !c.deviceFits(d, now) || d.Kind != KindEmail {
		return nil, ErrChallengeEnded
	}
	addr, err := s.address(d)
	if err != nil {
		return nil, err
	}
	if err := s.sendLimits(ctx, ref, d.AddressIndex, now); err != nil {
		return nil, err
	}
	code, err := newCode(EmailCodeDigits)
	if err != nil {
		return nil, err
	}
	k := ChallengeCode{Hash: s.codeHash(c.ID, code), ExpiresAt: now.Add(EmailCodeTTL)}
	e := s.event(ctx, EventChallengeResent, ref, d.ID, now)
	e.Factor, e.Detail = FactorEmail, fmt.Sprintf("challenge %s, send %d", c.ID, c.Sends+1)
	if err := s.attachCode(e, d, addr, code, c.Purpose, k.ExpiresAt); err != nil {
		return nil, err
	}
	if err := s.store.AddChallengeCode(ctx, ref, id, k, now, ResendGap, e); err != nil {
		return nil, err
	}
	s.Notify()
	return s.store.Challenge(ctx, ref, id)
}

// Challenge returns the user's challenge, for its state. ErrNotFound.
func (s *Service) Challenge(ctx context.Context, ref UserRef, id string) (*Challenge, error) {
	if err := ref.Validate(); err != nil {
		return nil, err
	}
	return s.store.Challenge(ctx, ref, id)
}

// restrictedOnlyAllowed reports whether the tenant lets a restricted
// factor be a user's only one.
func (s *Service) restrictedOnlyAllowed(ctx context.Context, tenant string) (bool, error) {
	return s.store.RestrictedOnly(ctx, tenant)
}

// SetRestrictedOnly sets whether email may be a user's only factor in the
// tenant (default: no).
func (s *Service) SetRestrictedOnly(ctx context.Context, tenant string, allow bool) error {
	if err := validateID("tenant", tenant); err != nil {
		return err
	}
	now := s.now()
	e := s.event(ctx, EventTenantUpdated, UserRef{Tenant: tenant}, "", now)
	e.Detail = fmt.Sprintf("restricted factors alone allowed: %t", allow)
	return s.store.SetRestrictedOnly(ctx, tenant, allow, now, e)
}
