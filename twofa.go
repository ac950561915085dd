// Package twofa is a two-factor authentication service. It answers one
// question safely: is this the user's second factor, right now, for the
// first time?
//
// Applications keep their passwords; twofa keeps each user's second
// factors: TOTP devices (several per user, each named and revocable) and a
// set of single-use backup codes. The Service enrolls devices, verifies
// codes (accepting each time step at most once, across every process that
// shares the store), locks users out after repeated failures, learns clock
// drift, and writes every event to a hash-chained audit log. Secrets are
// sealed with AES-256-GCM before they reach the Store.
//
// The Service consumes a Store, implemented on SQLite (package sqlite) and
// PostgreSQL (package postgres), both of which pass the conformance suite in
// package storetest.
package twofa

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/twofa/twofa/otp"
)

// UserRef names a user: the calling application's opaque user ID, unique
// within its tenant.
type UserRef struct {
	Tenant string
	User   string
}

// String returns "tenant/user" for messages.
func (r UserRef) String() string { return r.Tenant + "/" + r.User }

// MaxIDLen is the longest tenant or user ID, in bytes.
const MaxIDLen = 128

// Validate checks that the tenant and user IDs are 1 to MaxIDLen bytes of
// valid UTF-8 with no control or invisible formatting characters, and are
// not "." or "..".
func (r UserRef) Validate() error {
	if err := validateID("tenant", r.Tenant); err != nil {
		return err
	}
	return validateID("user", r.User)
}

func validateID(what, id string) error {
	switch {
	case id == "":
		return Errorf(EINVALID, "%s ID is empty", what)
	case len(id) > MaxIDLen:
		return Errorf(EINVALID, "%s ID is longer than %d bytes", what, MaxIDLen)
	case !utf8.ValidString(id):
		return Errorf(EINVALID, "%s ID is not valid UTF-8", what)
	case id == "." || id == "..":
		return Errorf(EINVALID, "%s ID must not be %q", what, id)
	}
	for _, r := range id {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			return Errorf(EINVALID, "%s ID contains a control character", what)
		}
	}
	return nil
}

// DeviceKind is the kind of a second factor: TOTP and email today; SMS,
// WebAuthn and push devices will be further kinds of the same Device.
type DeviceKind string

// Device kinds.
const (
	KindTOTP DeviceKind = "totp"
)

// DeviceStatus is where a device is in its life.
type DeviceStatus string

// Device statuses. A pending device becomes active when a code from it is
// confirmed, or is deleted when its enrollment expires.
const (
	StatusPending DeviceStatus = "pending"
	StatusActive  DeviceStatus = "active"
)

// Device is one second factor of a user.
type Device struct {
	ID     string
	Tenant string
	User   string
	Kind   DeviceKind
	Name   string
	Status DeviceStatus

	// Secret is the sealed (encrypted) secret: a TOTP key, or an email
	// device's address; the store never sees it in the clear. KeyID is
	// the ID of the master key it is sealed under.
	Secret []byte
	KeyID  uint32
	// AddressIndex, for an email device, is a keyed blind index of its
	// address, so that equal addresses are found without opening them.
	AddressIndex []byte
	// Address is an email device's address, opened by the Service for
	// UserStatus; never stored in the clear.
	Address string

	Params otp.Params // TOTP algorithm, digits and period

	// LastStep is the last accepted TOTP step: a code is accepted only at
	// a newer step. Drift is the learned clock drift in whole steps.
	LastStep uint64
	Drift    int

	CreatedAt   time.Time
	ExpiresAt   time.Time // pending devices only
	ConfirmedAt time.Time
	LastUsedAt  time.Time
}

// Ref returns the user the device belongs to.
func (d *Device) Ref() UserRef { return UserRef{Tenant: d.Tenant, User: d.User} }

// User is a user's second-factor state.
type User struct {
	Tenant string
	ID     string

	// Failures counts consecutive failed attempts over every factor; a
	// success resets it. LockedUntil, when after now, refuses attempts.
	Failures    int
	LockedUntil time.Time

	Devices     []*Device // pending and active, oldest first
	BackupCodes int       // unused backup codes

	CreatedAt time.Time
}

// Ref returns the user's reference.
func (u *User) Ref() UserRef { return UserRef{Tenant: u.Tenant, User: u.ID} }

// Locked reports whether the user is locked out at now.
func (u *User) Locked(now time.Time) bool { return u.LockedUntil.After(now) }

// ActiveDevices returns the devices that verify codes.
func (u *User) ActiveDevices() []*Device {
	var ds []*Device
	for _, d := range u.Devices {
		if d.Status == StatusActive {
			ds = append(ds, d)
		}
	}
	return ds
}

// Device returns the user's device with the given ID, or nil.
func (u *User) Device(id string) *Device {
	for _, d := range u.Devices {
		if d.ID == id {
			return d
		}
	}
	return nil
}

// Enrolled reports whether the user has a second factor: an active device
// or an unused backup code. A user who revoked a lost phone is still
// enrolled while backup codes remain, and uses one to add a new device.
func (u *User) Enrolled() bool { return len(u.ActiveDevices()) > 0 || u.BackupCodes > 0 }

// Forever is the LockedUntil of a user locked until an administrator
// unlocks them.
var Forever = time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)

// Meta describes who and what is behind a request, for the audit log and
// per-IP limits. The calling application reports the end user's IP and
// user agent; Actor names the API key or administrator.
type Meta struct {
	Actor     string
	IP        string
	UserAgent string
}

type metaKey struct{}

// WithMeta returns a context carrying m.
func WithMeta(ctx context.Context, m Meta) context.Context {
	return context.WithValue(ctx, metaKey{}, m)
}

// MetaFrom returns the Meta carried by ctx, if any.
func MetaFrom(ctx context.Context) Meta {
	m, _ := ctx.Value(metaKey{}).(Meta)
	return m
}

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// NewID returns a new random identifier with a prefix, such as "dev_…":
// 80 random bits, enough that IDs never collide and cannot be guessed.
func NewID(prefix string) string {
	var b [10]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("twofa: crypto/rand failed: %v", err)) // rand.Read never fails on supported platforms
	}
	return prefix + "_" + idEncoding.EncodeToString(b[:])
}

// cleanName trims a display name and checks its length.
func cleanName(what, s string, max int) (string, error) {
	s = strings.TrimSpace(s)
	if len(s) > max {
		return "", Errorf(EINVALID, "%s is longer than %d bytes", what, max)
	}
	if !utf8.ValidString(s) {
		return "", Errorf(EINVALID, "%s is not valid UTF-8", what)
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return "", Errorf(EINVALID, "%s contains a control character", what)
		}
	}
	return s, nil
}
