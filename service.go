package twofa

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"time"

	"github.com/twofa/twofa/otp"
	"github.com/twofa/twofa/seal"
)

// Service is twofa: it enrolls, verifies and revokes second factors. It
// keeps no state of its own beyond keys, so any number of Services may
// share one Store.
type Service struct {
	store   Store
	keys    *seal.Keyring
	policy  Policy
	now     func() time.Time
	log     *slog.Logger
	chain   *AuditChain
	pepper  []byte // the backup-code hashing key
	pageKey []byte // signs the hosted pages' cookies
	// tokenKey keys the stored hashes of API keys and link tokens.
	tokenKey []byte
	// codeKey keys the stored hashes of delivered codes; indexKey the
	// blind indexes of addresses.
	codeKey  []byte
	indexKey []byte

	apiKeys  keyCache
	walks    auditWalks // audit verification, one walk at a time
	webhooks webhookCache
	wake     chan struct{} // Notify wakes DeliverOutbox
	// channels delivered, when limited (Options.Channels).
	channels map[Channel]bool
}

// Options configure a Service. The zero value takes the defaults.
type Options struct {
	Policy *Policy          // nil: DefaultPolicy()
	Now    func() time.Time // nil: time.Now; tests inject a clock
	Logger *slog.Logger     // nil: discard
	// Channels are the channels this deployment delivers (it has a
	// Sender for): a factor that needs another is unavailable, and says
	// so, rather than queueing messages nobody sends. nil: every channel.
	Channels []Channel
}

// Names of the settings the Service keeps sealed in the store.
const (
	settingAuditKey     = "audit_chain_key"
	settingBackupPepper = "backup_code_key"
	settingPageKey      = "page_session_key"
	settingTokenKey     = "token_hash_key"
	settingCodeKey      = "challenge_code_key"
	settingIndexKey     = "address_index_key"
)

// NewService returns a Service on store, sealing secrets with keys. On
// first use of a store it creates, seals and stores the audit chain key
// and the backup-code key; every Service on the store then shares them.
// On a store handle that has just migrated the database to keyed hashes
// of API keys and links, it rehashes the ones stored before.
func NewService(ctx context.Context, store Store, keys *seal.Keyring, opts Options) (*Service, error) {
	s := &Service{store: store, keys: keys, policy: DefaultPolicy(), now: time.Now, log: opts.Logger, wake: make(chan struct{}, 1)}
	if opts.Policy != nil {
		s.policy = *opts.Policy
	}
	if err := s.policy.Validate(); err != nil {
		return nil, err
	}
	if opts.Now != nil {
		s.now = opts.Now
	}
	if opts.Channels != nil {
		s.channels = map[Channel]bool{}
		for _, c := range opts.Channels {
			s.channels[c] = true
		}
	}
	if s.log == nil {
		s.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	auditKey, err := s.initKey(ctx, settingAuditKey)
	if err != nil {
		return nil, err
	}
	s.chain = NewAuditChain(auditKey)
	if s.pepper, err = s.initKey(ctx, settingBackupPepper); err != nil {
		return nil, err
	}
	if s.pageKey, err = s.initKey(ctx, settingPageKey); err != nil {
		return nil, err
	}
	if s.tokenKey, err = s.initKey(ctx, settingTokenKey); err != nil {
		return nil, err
	}
	if s.codeKey, err = s.initKey(ctx, settingCodeKey); err != nil {
		return nil, err
	}
	if s.indexKey, err = s.initKey(ctx, settingIndexKey); err != nil {
		return nil, err
	}
	if err := s.upgradeTokenHashes(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// PageKey returns the key that signs the hosted pages' cookies: the same
// in every process sharing the store, sealed in it like every secret.
func (s *Service) PageKey() []byte { return s.pageKey }

// Policy returns the service's policy.
func (s *Service) Policy() Policy { return s.policy }

// initKey returns the named random key, creating it on first use.
func (s *Service) initKey(ctx context.Context, name string) ([]byte, error) {
	key := make([]byte, 32)
	if _, err := io.ReadFull(rand.Reader, key); err != nil {
		return nil, fmt.Errorf("generating %s: %w", name, err)
	}
	ad := settingAD(name)
	blob, err := s.keys.Seal(key, ad)
	if err != nil {
		return nil, fmt.Errorf("sealing %s: %w", name, err)
	}
	stored, err := s.store.InitSetting(ctx, name, blob)
	if err != nil {
		return nil, fmt.Errorf("storing %s: %w", name, err)
	}
	key, err = s.keys.Open(stored, ad)
	if err != nil {
		return nil, fmt.Errorf("opening %s (is this the master key the store was created with?): %w", name, err)
	}
	return key, nil
}

func settingAD(name string) []byte { return seal.AD("twofa/setting/v1", name) }

// SecretAD is the associated data that binds a device's sealed secret to
// its row and parameters, so a secret copied to another device, user or
// tenant, or under other parameters, does not open. Tools that seal
// secrets outside the Service (bulk seeding, migrations) use it too.
func SecretAD(d *Device) []byte {
	if d.Kind == KindEmail {
		return emailAD(d)
	}
	p := d.Params
	return seal.AD("twofa/totp-secret/v1", d.Tenant, d.User, d.ID, string(d.Kind),
		p.Algorithm.String(), strconv.Itoa(p.Digits), strconv.Itoa(p.Period), strconv.FormatInt(p.T0, 10))
}

// key opens a device's secret and returns its OTP key.
func (s *Service) key(d *Device) (*otp.Key, error) {
	secret, err := s.keys.Open(d.Secret, SecretAD(d))
	if err != nil {
		return nil, fmt.Errorf("opening the secret of device %s: %w", d.ID, err)
	}
	defer clear(secret)
	return otp.NewKey(secret, d.Params)
}

// event returns a prepared audit event carrying the request's Meta, and
// the tenant's webhook message if the tenant has a webhook that wants it
// (webhook_enqueue.go).
func (s *Service) event(ctx context.Context, t EventType, ref UserRef, device string, now time.Time) *AuditEvent {
	m := MetaFrom(ctx)
	e := s.chain.Prepare(&AuditEvent{
		Time: now, Type: t, Tenant: ref.Tenant, User: ref.User, Device: device,
		Actor: m.Actor, IP: m.IP, UserAgent: m.UserAgent,
	})
	s.attachWebhook(ctx, e)
	return e
}

// audit appends events outside another change, logging a failure: the
// caller's answer does not depend on it, but the log should say.
func (s *Service) audit(ctx context.Context, events ...*AuditEvent) {
	if err := s.store.AppendAudit(ctx, events...); err != nil {
		s.log.ErrorContext(ctx, "appending audit events", "type", string(events[0].Type), "err", err)
	}
}

// user loads a user, validating the reference first.
func (s *Service) user(ctx context.Context, ref UserRef) (*User, error) {
	if err := ref.Validate(); err != nil {
		return nil, err
	}
	return s.store.User(ctx, ref)
}

// UserStatus returns a user's factors, lock and backup codes. An unknown
// user is reported as a user with nothing enrolled, not as an error.
func (s *Service) UserStatus(ctx context.Context, ref UserRef) (*User, error) {
	u, err := s.user(ctx, ref)
	if errors.Is(err, ErrNotFound) {
		return &User{Tenant: ref.Tenant, ID: ref.User}, nil
	}
	if err != nil {
		return nil, err
	}
	now := s.now()
	if !u.Locked(now) {
		u.LockedUntil = time.Time{}
	}
	// Expired enrollments are as good as gone.
	live := u.Devices[:0]
	for _, d := range u.Devices {
		if d.Status == StatusActive || d.ExpiresAt.After(now) {
			live = append(live, d)
		}
	}
	u.Devices = live
	for _, d := range u.Devices {
		if d.Kind == KindEmail {
			if d.Address, err = s.address(d); err != nil {
				return nil, err
			}
		}
	}
	return u, nil
}

// RevokeDevice deletes one of the user's devices and its secret.
func (s *Service) RevokeDevice(ctx context.Context, ref UserRef, deviceID string) error {
	if err := ref.Validate(); err != nil {
		return err
	}
	e := s.event(ctx, EventDeviceRevoked, ref, deviceID, s.now())
	if u := s.userForNotice(ctx, ref); u != nil {
		d := u.Device(deviceID)
		if d != nil {
			e.Factor = factorOf(d)
		}
		s.attachNotices(ctx, e, u, d) // the removed address is told too
	}
	if err := s.store.DeleteDevice(ctx, ref, deviceID, e); err != nil {
		return err
	}
	return nil
}

// Disable turns two-factor authentication off for the user: every device
// and backup code is deleted. The failure count and any lock stay.
func (s *Service) Disable(ctx context.Context, ref UserRef) error {
	if err := ref.Validate(); err != nil {
		return err
	}
	e := s.event(ctx, EventDisabled, ref, "", s.now())
	s.attachNotices(ctx, e, s.userForNotice(ctx, ref), nil)
	err := s.store.DeleteFactors(ctx, ref, e)
	if errors.Is(err, ErrNotFound) {
		return nil // nothing to disable: as after a successful Disable
	}
	return err
}

// Unlock clears a user's failures and lock; for administrators.
func (s *Service) Unlock(ctx context.Context, ref UserRef) error {
	if err := ref.Validate(); err != nil {
		return err
	}
	e := s.event(ctx, EventUnlocked, ref, "", s.now())
	s.attachNotices(ctx, e, s.userForNotice(ctx, ref), nil)
	return s.store.Unlock(ctx, ref, e)
}

// SweepExpired deletes enrollments that expired unconfirmed, recording
// their expiry, and links that were used or expired. It returns how many
// enrollments it deleted. Serving processes call it now and then.
func (s *Service) SweepExpired(ctx context.Context) (int, error) {
	now := s.now()
	links, lerr := s.store.DeleteStaleLinks(ctx, now)
	if lerr != nil {
		lerr = fmt.Errorf("sweeping links: %w", lerr)
	} else if links > 0 {
		s.log.InfoContext(ctx, "swept used and expired links", "count", links)
	}
	// Challenges are kept a day after they end, for whoever looks into a
	// sign-in; their codes are useless from the moment they end.
	chs, cerr := s.store.DeleteChallenges(ctx, now.Add(-24*time.Hour))
	if cerr != nil {
		lerr = errors.Join(lerr, fmt.Errorf("sweeping challenges: %w", cerr))
	} else if chs > 0 {
		s.log.InfoContext(ctx, "swept ended challenges", "count", chs)
	}
	// Outbox rows that are done are kept a month, for whoever looks into
	// a delivery; their payloads went when they were sent.
	if n, merr := s.store.DeleteMessages(ctx, now.Add(-MessageRetention)); merr != nil {
		lerr = errors.Join(lerr, fmt.Errorf("sweeping the outbox: %w", merr))
	} else if n > 0 {
		s.log.InfoContext(ctx, "swept old outbox messages", "count", n)
	}
	ds, err := s.store.DeleteExpired(ctx, now)
	if err != nil || len(ds) == 0 {
		return 0, errors.Join(err, lerr)
	}
	s.auditExpired(ctx, ds, now)
	return len(ds), lerr
}

func (s *Service) auditExpired(ctx context.Context, ds []*Device, now time.Time) {
	if len(ds) == 0 {
		return
	}
	events := make([]*AuditEvent, len(ds))
	for i, d := range ds {
		events[i] = s.event(ctx, EventEnrollExpired, d.Ref(), d.ID, now)
		events[i].Actor = "twofa"
	}
	s.audit(ctx, events...)
}

// AuditEvents lists audit events.
func (s *Service) AuditEvents(ctx context.Context, f AuditFilter) ([]*AuditEvent, error) {
	if f.Limit <= 0 || f.Limit > 1000 {
		f.Limit = 100
	}
	return s.store.AuditEvents(ctx, f)
}
