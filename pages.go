package twofa

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/twofa/twofa/prompt"
	"github.com/twofa/twofa/seal"
)

// This file holds what the hosted pages need: single-use links that let an
// end user enroll or manage their devices on twofa's own pages, and
// tenants' settings for the hosted verification prompt.

// LinkKind is what a link lets its holder do.
type LinkKind string

// Link kinds.
const (
	LinkEnroll LinkKind = "enroll" // add a first (or another) device
	LinkManage LinkKind = "manage" // list, rename, revoke devices; new backup codes
)

// Link is a single-use, expiring URL token for one user's pages. Only its
// keyed hash is stored, as for API keys; the token itself is in the URL
// handed out once.
type Link struct {
	ID        string
	Hash      []byte
	Tenant    string
	User      string
	Kind      LinkKind
	CreatedAt time.Time
	ExpiresAt time.Time
	UsedAt    time.Time
}

// Ref returns the link's user.
func (l *Link) Ref() UserRef { return UserRef{Tenant: l.Tenant, User: l.User} }

// AuditDetail names the link in audit entries: its kind and ID.
func (l *Link) AuditDetail() string { return fmt.Sprintf("%s link %s", l.Kind, l.ID) }

// Tenant holds a tenant's settings for the hosted prompt and its webhook.
type Tenant struct {
	ID string
	// PromptKey is the sealed key that signs prompt requests and results;
	// KeyID is its master key's ID.
	PromptKey []byte
	KeyID     uint32
	// ReturnURLs are the URLs the prompt may send users back to. A
	// request's return URL must start with one of them.
	ReturnURLs []string
	// WebhookURL receives the tenant's events ("": no webhook);
	// WebhookSecret is its sealed signing secret and WebhookKeyID that
	// secret's master key ID; WebhookEvents limit it to those event types
	// (none: every event). See webhooks.go.
	WebhookURL    string
	WebhookSecret []byte
	WebhookKeyID  uint32
	WebhookEvents []EventType
	CreatedAt     time.Time
	UpdatedAt     time.Time
}

// PageStore keeps what the hosted pages need.
type PageStore interface {
	// CreateLink stores a new link.
	CreateLink(ctx context.Context, l *Link, e *AuditEvent) error
	// UseLink marks the link with this hash used at now and returns it,
	// atomically: of concurrent uses, one succeeds. ErrNotFound when no
	// link has the hash or it was used; ErrExpired when it expired
	// (ExpiresAt <= now). The event, if any, is given the link's tenant
	// and user, and its AuditDetail as Detail, before it is linked.
	UseLink(ctx context.Context, hash []byte, now time.Time, e *AuditEvent) (*Link, error)
	// DeleteStaleLinks deletes every link that was used, or that expired
	// at or before now, and returns how many it deleted. Neither can be
	// used again, and their use is in the audit log.
	DeleteStaleLinks(ctx context.Context, now time.Time) (int, error)
	// UpgradeLinkHashes is APIKeyStore.UpgradeKeyHashes for the links
	// that were unused when this handle applied the migration.
	UpgradeLinkHashes(ctx context.Context, rehash func(plain []byte) []byte) (int, error)

	// Tenant returns a tenant's settings. ErrNotFound.
	Tenant(ctx context.Context, id string) (*Tenant, error)
	// SetPromptKey sets a tenant's sealed prompt key and its master key
	// ID, creating the tenant (CreatedAt = now) if needed, and sets
	// UpdatedAt = now. Other settings stay as they are: each setting is
	// written alone, so that changing one never writes back a stale copy
	// of another (such as a prompt key re-sealed by a rotation meanwhile).
	SetPromptKey(ctx context.Context, tenant string, blob []byte, keyID uint32, now time.Time, e *AuditEvent) error
	// SetReturnURLs sets a tenant's return URLs, likewise.
	SetReturnURLs(ctx context.Context, tenant string, urls []string, now time.Time, e *AuditEvent) error
	// SetRestrictedOnly sets whether a restricted factor (email) may be a
	// user's only one in the tenant, likewise; RestrictedOnly reads it
	// (false for a tenant the store has never seen). Off by default (NIST
	// SP 800-63B rev 4).
	SetRestrictedOnly(ctx context.Context, tenant string, allow bool, now time.Time, e *AuditEvent) error
	RestrictedOnly(ctx context.Context, tenant string) (bool, error)

	// RenameDevice renames one of the user's devices. ErrNotFound.
	RenameDevice(ctx context.Context, ref UserRef, deviceID, name string, e *AuditEvent) error

	// Users returns up to limit users of the tenant whose ID starts with
	// prefix, in ID order, after the ID after, with their devices and
	// backup code counts.
	Users(ctx context.Context, tenant, prefix, after string, limit int) ([]*User, error)
}

// Audit events of the pages.
const (
	EventLinkCreated   EventType = "link_created"
	EventLinkUsed      EventType = "link_used"
	EventDeviceRenamed EventType = "device_renamed"
	EventTenantUpdated EventType = "tenant_updated"
	EventPromptPassed  EventType = "prompt_passed"
)

// LinkTTL is how long a link may wait to be opened.
const LinkTTL = 15 * time.Minute

const linkPrefix = "tfl_"

// CreateLink makes a single-use link token for one user's pages.
func (s *Service) CreateLink(ctx context.Context, ref UserRef, kind LinkKind) (string, *Link, error) {
	if err := ref.Validate(); err != nil {
		return "", nil, err
	}
	if kind != LinkEnroll && kind != LinkManage {
		return "", nil, Errorf(EINVALID, "link kind must be enroll or manage")
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", nil, fmt.Errorf("generating a link: %w", err)
	}
	token := linkPrefix + strings.ToLower(keyEncoding.EncodeToString(raw[:]))
	now := s.now()
	l := &Link{ID: NewID("lnk"), Hash: s.tokenHash(token), Tenant: ref.Tenant, User: ref.User, Kind: kind, CreatedAt: now, ExpiresAt: now.Add(LinkTTL)}
	e := s.event(ctx, EventLinkCreated, ref, "", now)
	e.Detail = l.AuditDetail()
	if err := s.store.CreateLink(ctx, l, e); err != nil {
		return "", nil, err
	}
	return token, l, nil
}

// OpenLink spends a link token and returns its link. Errors: ErrNotFound
// (unknown or already used), ErrExpired. The audit entry names the link
// and its user, which the store fills in.
func (s *Service) OpenLink(ctx context.Context, token string) (*Link, error) {
	if !strings.HasPrefix(token, linkPrefix) || len(token) > 128 {
		return nil, ErrNotFound
	}
	now := s.now()
	e := s.event(ctx, EventLinkUsed, UserRef{}, "", now)
	l, err := s.store.UseLink(ctx, s.tokenHash(token), now, e)
	if err != nil {
		return nil, err
	}
	return l, nil
}

// RenameDevice renames one of the user's devices.
func (s *Service) RenameDevice(ctx context.Context, ref UserRef, deviceID, name string) error {
	if err := ref.Validate(); err != nil {
		return err
	}
	name, err := cleanName("device name", name, maxDeviceName)
	if err != nil {
		return err
	}
	if name == "" {
		return Errorf(EINVALID, "device name is empty")
	}
	e := s.event(ctx, EventDeviceRenamed, ref, deviceID, s.now())
	e.Detail = fmt.Sprintf("to %q", name)
	s.attachNotices(ctx, e, s.userForNotice(ctx, ref), nil)
	return s.store.RenameDevice(ctx, ref, deviceID, name, e)
}

// Users lists a tenant's users for administrators.
func (s *Service) Users(ctx context.Context, tenant, prefix, after string, limit int) ([]*User, error) {
	if err := validateID("tenant", tenant); err != nil {
		return nil, err
	}
	if limit <= 0 || limit > 500 {
		limit = 50
	}
	return s.store.Users(ctx, tenant, prefix, after, limit)
}

func promptKeyAD(tenant string) []byte { return seal.AD("twofa/prompt-key/v1", tenant) }

// NewPromptKey makes a new prompt key for the tenant, replacing any other,
// and returns it once. It is sealed at rest: twofa needs it to check
// requests and sign results.
func (s *Service) NewPromptKey(ctx context.Context, tenant string) ([]byte, error) {
	if err := validateID("tenant", tenant); err != nil {
		return nil, err
	}
	key, err := prompt.NewKey()
	if err != nil {
		return nil, err
	}
	blob, err := s.keys.Seal(key, promptKeyAD(tenant))
	if err != nil {
		return nil, err
	}
	now := s.now()
	e := s.event(ctx, EventTenantUpdated, UserRef{Tenant: tenant}, "", now)
	e.Detail = "new prompt key"
	if err := s.store.SetPromptKey(ctx, tenant, blob, s.keys.ActiveID(), now, e); err != nil {
		return nil, err
	}
	return key, nil
}

// SetReturnURLs registers the URLs the prompt may send the tenant's users
// back to: absolute https URLs (http only for localhost), compared by
// prefix.
func (s *Service) SetReturnURLs(ctx context.Context, tenant string, urls []string) error {
	if err := validateID("tenant", tenant); err != nil {
		return err
	}
	for _, u := range urls {
		if err := checkReturnURL(u); err != nil {
			return err
		}
	}
	now := s.now()
	e := s.event(ctx, EventTenantUpdated, UserRef{Tenant: tenant}, "", now)
	e.Detail = fmt.Sprintf("return URLs %q", urls)
	return s.store.SetReturnURLs(ctx, tenant, urls, now, e)
}

func checkReturnURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.User != nil || u.Fragment != "" {
		return Errorf(EINVALID, "return URL %q must be an absolute URL without credentials or fragment", raw)
	}
	local := u.Hostname() == "localhost" || u.Hostname() == "127.0.0.1" || u.Hostname() == "::1"
	if u.Scheme != "https" && !(u.Scheme == "http" && local) {
		return Errorf(EINVALID, "return URL %q must use https (http only for localhost)", raw)
	}
	if _, ok := returnPath(u); !ok {
		return Errorf(EINVALID, `return URL %q must not have a "." or ".." segment, a backslash, or an encoded "/", "\" or "." in its path`, raw)
	}
	return nil
}

// PromptRequest checks a signed prompt request: its signature under the
// tenant's prompt key, its lifetime, and its return URL against the
// tenant's registered ones. Errors are EINVALID.
func (s *Service) PromptRequest(ctx context.Context, tenant, token string) (*prompt.Request, error) {
	if err := validateID("tenant", tenant); err != nil {
		return nil, err
	}
	key, t, err := s.promptKey(ctx, tenant)
	if err != nil {
		return nil, err
	}
	defer clear(key)
	r, err := prompt.ParseRequest(key, token, s.now())
	if err != nil {
		return nil, Errorf(EINVALID, "%s", strings.TrimPrefix(err.Error(), "prompt: "))
	}
	if r.Tenant != tenant {
		return nil, Errorf(EINVALID, "the request is for another tenant")
	}
	if err := (UserRef{Tenant: tenant, User: r.User}).Validate(); err != nil {
		return nil, err
	}
	for _, allowed := range t.ReturnURLs {
		if returnURLMatches(allowed, r.ReturnURL) {
			return r, nil
		}
	}
	return nil, Errorf(EINVALID, "the return URL is not registered for this tenant")
}

// returnURLMatches compares by prefix at a path boundary, so that
// https://app.example/2fa allows https://app.example/2fa/done but not
// https://app.example/2fa-evil or https://app.example.evil. Paths are
// compared as returnPath gives them: one that could resolve elsewhere
// (https://app.example/2fa/../logout) matches nothing.
func returnURLMatches(allowed, got string) bool {
	a, err1 := url.Parse(allowed)
	g, err2 := url.Parse(got)
	if err1 != nil || err2 != nil || a.Scheme != g.Scheme || a.Host != g.Host || a.User != nil || g.User != nil {
		return false
	}
	ap, ok1 := returnPath(a)
	gp, ok2 := returnPath(g)
	if !ok1 || !ok2 {
		return false
	}
	ap = strings.TrimSuffix(ap, "/")
	return ap == "" || gp == ap || strings.HasPrefix(gp, ap+"/")
}

// returnPath returns a return URL's decoded path, and false when the path
// could name another resource to a browser or the application's server
// than it names to a comparison of strings: a "." or ".." segment (which
// browsers and servers resolve away), also one with ;parameters (which
// some servers drop first), a backslash (which browsers read as "/"), or
// a percent-encoded "/", "\" or "." (which some servers decode before
// they route and others after).
func returnPath(u *url.URL) (string, bool) {
	if u.Opaque != "" {
		return "", false
	}
	raw := strings.ToLower(u.EscapedPath())
	if strings.Contains(u.Path, `\`) || strings.Contains(raw, "%2f") || strings.Contains(raw, "%5c") || strings.Contains(raw, "%2e") {
		return "", false
	}
	for seg := range strings.SplitSeq(u.Path, "/") {
		if seg, _, _ = strings.Cut(seg, ";"); seg == "." || seg == ".." {
			return "", false
		}
	}
	return u.Path, true
}

// PromptResult signs the result of a passed prompt for the application.
func (s *Service) PromptResult(ctx context.Context, r *prompt.Request, v *VerifyResult) (string, error) {
	key, _, err := s.promptKey(ctx, r.Tenant)
	if err != nil {
		return "", err
	}
	defer clear(key)
	now := s.now()
	tok, err := prompt.SignResult(key, prompt.Result{
		Tenant: r.Tenant, User: r.User, Nonce: r.Nonce, Factor: v.Factor, Device: v.Device,
		IssuedAt: now.Unix(), ExpiresAt: now.Add(prompt.ResultLife).Unix(),
	})
	if err != nil {
		return "", err
	}
	e := s.event(ctx, EventPromptPassed, UserRef{Tenant: r.Tenant, User: r.User}, v.Device, now)
	e.Factor = v.Factor
	s.audit(ctx, e)
	return tok, nil
}

func (s *Service) promptKey(ctx context.Context, tenant string) ([]byte, *Tenant, error) {
	t, err := s.store.Tenant(ctx, tenant)
	if errors.Is(err, ErrNotFound) || err == nil && len(t.PromptKey) == 0 {
		return nil, nil, Errorf(EINVALID, "tenant %q has no prompt key: an administrator makes one with twofa tenant prompt-key", tenant)
	}
	if err != nil {
		return nil, nil, err
	}
	key, err := s.keys.Open(t.PromptKey, promptKeyAD(tenant))
	if err != nil {
		return nil, nil, fmt.Errorf("opening the prompt key of tenant %s: %w", tenant, err)
	}
	return key, t, nil
}
