package client

import (
	"context"
	"net/url"
	"strconv"
	"time"
)

// EnrollRequest asks for a new TOTP device. Every field is optional.
type EnrollRequest struct {
	Name        string `json:"name,omitempty"`         // such as "Work phone"; default "Authenticator"
	AccountName string `json:"account_name,omitempty"` // shown in the app; default the user ID
	Issuer      string `json:"issuer,omitempty"`       // shown in the app; default the server's
	Algorithm   string `json:"algorithm,omitempty"`    // SHA1, SHA256 or SHA512; default SHA1
	Digits      int    `json:"digits,omitempty"`       // 6 to 8; default 6
	Period      int    `json:"period,omitempty"`       // seconds; default 30
}

// Enrollment is a pending TOTP device and what the user needs to add it to
// an authenticator app. It holds the secret: show it once, never log it.
type Enrollment struct {
	DeviceID   string    `json:"device_id"`
	Secret     string    `json:"secret"`      // base32, for typing in
	OTPAuthURI string    `json:"otpauth_uri"` // the otpauth:// URI the QR code holds
	QRPNG      []byte    `json:"qr_png"`      // a PNG image
	QRSVG      string    `json:"qr_svg"`      // an SVG document
	ExpiresAt  time.Time `json:"expires_at"`  // confirm before this
	Warnings   []string  `json:"warnings"`    // parameters some apps mishandle
}

// Device is a second factor of a user. Times not given are zero.
type Device struct {
	ID          string    `json:"id"`
	Name        string    `json:"name"`
	Type        string    `json:"type"`   // "totp" or "email"
	Status      string    `json:"status"` // "pending" or "active"
	CreatedAt   time.Time `json:"created_at"`
	ConfirmedAt time.Time `json:"confirmed_at"`
	ExpiresAt   time.Time `json:"expires_at"` // pending devices
	LastUsedAt  time.Time `json:"last_used_at"`
	Algorithm   string    `json:"algorithm"` // TOTP devices
	Digits      int       `json:"digits"`
	Period      int       `json:"period"`
	Address     string    `json:"address"`    // email devices
	Restricted  bool      `json:"restricted"` // email: not an authenticator on its own
}

// ConfirmResult is the outcome of a confirmation code.
type ConfirmResult struct {
	Valid  bool
	Reason string // when not valid: "invalid_code"
	Device *Device
	// BackupCodes is the user's first set of backup codes, issued with
	// their first device; show them once.
	BackupCodes []string
	// ClockSkew, for a wrong code that matched well outside the window,
	// is how far the phone's clock seems off (positive: ahead).
	ClockSkew time.Duration
}

// VerifyResult is the answer for a well-formed code.
type VerifyResult struct {
	Valid  bool   `json:"valid"`
	Reason string `json:"reason"` // when not valid: "invalid_code" or "replayed"
	Factor string `json:"factor"` // when valid: "totp", "backup_code" or "email"
	// DeviceID is the device that matched a TOTP or emailed code.
	DeviceID string `json:"device_id"`
	// BackupCodesRemaining is the user's unused backup codes, when valid.
	BackupCodesRemaining int `json:"backup_codes_remaining"`
}

// ResyncResult is the outcome of a resync: valid or not, and nothing in
// between (a wrong pair counts as a failed attempt, like a wrong code).
type ResyncResult struct {
	Valid bool
	// DriftSteps is the device's learned drift, when valid.
	DriftSteps int
}

// User is a user's second-factor state.
type User struct {
	UserID               string    `json:"user_id"`
	Enrolled             bool      `json:"enrolled"` // has an active device
	Devices              []Device  `json:"devices"`
	BackupCodesRemaining int       `json:"backup_codes_remaining"`
	LockedUntil          time.Time `json:"locked_until"` // zero when not locked
}

// AuditQuery selects audit events. The zero value lists the first 100.
type AuditQuery struct {
	UserID string // only this user's events
	After  int64  // only events after this sequence number
	Limit  int    // at most this many, up to 1000; 0 means 100
}

// AuditEvent is one entry of the audit log.
type AuditEvent struct {
	Seq       int64     `json:"seq"`
	Time      time.Time `json:"time"`
	Type      string    `json:"type"`
	UserID    string    `json:"user_id"`
	DeviceID  string    `json:"device_id"`
	Factor    string    `json:"factor"`
	Reason    string    `json:"reason"`
	Actor     string    `json:"actor"`
	IP        string    `json:"ip"`
	UserAgent string    `json:"user_agent"`
	Detail    string    `json:"detail"`
	Hash      string    `json:"hash"`
}

// AuditPage is a page of audit events, oldest first.
type AuditPage struct {
	Events []AuditEvent `json:"events"`
	// NextAfter, when not 0, is the After of the next page.
	NextAfter int64 `json:"next_after"`
}

// AuditChain is the state of the audit log's hash chain, as a tenant's
// administrator sees it: the chain is shared by every tenant, so only the
// operator (twofa audit verify) sees its head and other tenants' entries.
type AuditChain struct {
	OK           bool   `json:"ok"`
	TenantEvents int64  `json:"tenant_events"` // this tenant's entries in the chain
	BadSeq       int64  `json:"bad_seq"`       // the first bad entry, when it is this tenant's
	Problem      string `json:"problem"`
}

// Enroll begins a TOTP enrollment for the user: a pending device to
// confirm with Confirm before Enrollment.ExpiresAt.
func (c *Client) Enroll(ctx context.Context, userID string, req EnrollRequest) (*Enrollment, error) {
	p, err := userPath(userID, "totp")
	if err != nil {
		return nil, err
	}
	var out Enrollment
	if err := c.do(ctx, "POST", p, req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Confirm activates a pending device with a code from it. A wrong code is
// a result with Valid false, not an error.
func (c *Client) Confirm(ctx context.Context, userID, deviceID, code string) (*ConfirmResult, error) {
	d, err := deviceSegment(deviceID)
	if err != nil {
		return nil, err
	}
	p, err := userPath(userID, "totp", d, "confirm")
	if err != nil {
		return nil, err
	}
	var out struct {
		Valid            bool     `json:"valid"`
		Reason           string   `json:"reason"`
		Device           *Device  `json:"device"`
		BackupCodes      []string `json:"backup_codes"`
		ClockSkewSeconds int      `json:"clock_skew_seconds"`
	}
	if err := c.do(ctx, "POST", p, map[string]string{"code": code}, &out); err != nil {
		return nil, err
	}
	return &ConfirmResult{Valid: out.Valid, Reason: out.Reason, Device: out.Device, BackupCodes: out.BackupCodes,
		ClockSkew: time.Duration(out.ClockSkewSeconds) * time.Second}, nil
}

// Verify answers whether code is the user's second factor, now, for the
// first time: a TOTP code from any active device, or a backup code. Let
// the user in only when the result is Valid. A wrong or replayed code is
// a result with Valid false, not an error; the errors to expect are
// IsMalformedCode, IsNotEnrolled and IsLocked (or IsRateLimited).
func (c *Client) Verify(ctx context.Context, userID, code string) (*VerifyResult, error) {
	p, err := userPath(userID, "verify")
	if err != nil {
		return nil, err
	}
	var out VerifyResult
	if err := c.do(ctx, "POST", p, map[string]string{"code": code}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Resync relearns the clock drift of a device from two consecutive codes
// typed from it, code1 then code2.
func (c *Client) Resync(ctx context.Context, userID, deviceID, code1, code2 string) (*ResyncResult, error) {
	d, err := deviceSegment(deviceID)
	if err != nil {
		return nil, err
	}
	p, err := userPath(userID, "totp", d, "resync")
	if err != nil {
		return nil, err
	}
	in := struct {
		Code1 string `json:"code1"`
		Code2 string `json:"code2"`
	}{code1, code2}
	var out struct {
		Valid      bool `json:"valid"`
		DriftSteps int  `json:"drift_steps"`
	}
	if err := c.do(ctx, "POST", p, in, &out); err != nil {
		return nil, err
	}
	return &ResyncResult{Valid: out.Valid, DriftSteps: out.DriftSteps}, nil
}

// User returns the user's second-factor state. A user twofa has never
// seen is a User with nothing enrolled, not an error.
func (c *Client) User(ctx context.Context, userID string) (*User, error) {
	p, err := userPath(userID)
	if err != nil {
		return nil, err
	}
	var out User
	if err := c.do(ctx, "GET", p, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// RevokeDevice deletes one of the user's devices.
func (c *Client) RevokeDevice(ctx context.Context, userID, deviceID string) error {
	d, err := deviceSegment(deviceID)
	if err != nil {
		return err
	}
	p, err := userPath(userID, "devices", d)
	if err != nil {
		return err
	}
	return c.do(ctx, "DELETE", p, nil, nil)
}

// RegenerateBackupCodes replaces the user's backup codes and returns the
// new set, to show once.
func (c *Client) RegenerateBackupCodes(ctx context.Context, userID string) ([]string, error) {
	p, err := userPath(userID, "backup-codes")
	if err != nil {
		return nil, err
	}
	var out struct {
		BackupCodes []string `json:"backup_codes"`
	}
	if err := c.do(ctx, "POST", p, nil, &out); err != nil {
		return nil, err
	}
	return out.BackupCodes, nil
}

// Link is a single-use link to twofa's hosted pages, for the end user.
type Link struct {
	URL       string    `json:"url"`
	ExpiresAt time.Time `json:"expires_at"`
}

// EnrollmentLink returns a single-use link (15 minutes) to twofa's hosted
// enrollment page for the user: send the user there instead of building
// an enrollment screen.
func (c *Client) EnrollmentLink(ctx context.Context, userID string) (*Link, error) {
	return c.link(ctx, userID, "enrollment-links")
}

// ManageLink returns a single-use link to the page where the user lists,
// renames and removes devices and regenerates backup codes.
func (c *Client) ManageLink(ctx context.Context, userID string) (*Link, error) {
	return c.link(ctx, userID, "manage-links")
}

func (c *Client) link(ctx context.Context, userID, kind string) (*Link, error) {
	p, err := userPath(userID, kind)
	if err != nil {
		return nil, err
	}
	var out Link
	if err := c.do(ctx, "POST", p, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Disable deletes all of the user's devices and backup codes.
func (c *Client) Disable(ctx context.Context, userID string) error {
	p, err := userPath(userID)
	if err != nil {
		return err
	}
	return c.do(ctx, "DELETE", p, nil, nil)
}

// Unlock clears the user's failures and lock. It needs an admin key.
func (c *Client) Unlock(ctx context.Context, userID string) error {
	p, err := userPath(userID, "unlock")
	if err != nil {
		return err
	}
	return c.do(ctx, "POST", p, nil, nil)
}

// AuditEvents lists a page of the audit log of the key's tenant. It needs
// an admin key.
func (c *Client) AuditEvents(ctx context.Context, q AuditQuery) (*AuditPage, error) {
	v := url.Values{}
	if q.UserID != "" {
		v.Set("user_id", q.UserID)
	}
	if q.After != 0 {
		v.Set("after", strconv.FormatInt(q.After, 10))
	}
	if q.Limit != 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	p := "/v1/audit"
	if len(v) > 0 {
		p += "?" + v.Encode()
	}
	var out AuditPage
	if err := c.do(ctx, "GET", p, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// VerifyAudit checks the audit log's hash chain. It needs an admin key.
func (c *Client) VerifyAudit(ctx context.Context) (*AuditChain, error) {
	var out AuditChain
	if err := c.do(ctx, "GET", "/v1/audit/verify", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
