package twofa

import (
	"context"
	"time"
)

// Store keeps twofa's state. Every method is atomic: it happens in one
// database transaction, or not at all. The atomic steps that security rests
// on happen in the database, not in the Service, so that any number of
// processes sharing one database behave as one: a time step is accepted at
// most once (compare-and-set), a backup code is spent at most once, and an
// attempt is counted no later than it is checked.
//
// Errors: methods return the sentinels of this package (ErrNotFound,
// ErrReplayed, ErrDeviceLimit, ErrExpired, LockedError), wrapped or not, for
// the outcomes they document, and other errors for failures of the store.
//
// Audit events passed to a method are appended in the same transaction as
// its change and are linked into the chain there (AuditEvent.Link), with the
// log's head held so that concurrent writers, even in other processes,
// never fork the chain. A nil event appends nothing. When a method returns
// an error, nothing it was given is written.
//
// Times are kept at microsecond precision.
type Store interface {
	DeviceStore
	AttemptStore
	BackupCodeStore
	LimitStore
	AuditStore
	SecretStore
	APIKeyStore
	PageStore
	ChallengeStore
	WebhookStore
	OutboxStore
}

// DeviceStore keeps users and their devices.
type DeviceStore interface {
	// User returns the user with all their devices (oldest first) and the
	// number of their unused backup codes. ErrNotFound if the store has
	// never seen the user.
	User(ctx context.Context, ref UserRef) (*User, error)

	// CreateDevice adds the pending device d, creating its user if needed.
	// Expired pending devices of the user (ExpiresAt <= now) are deleted
	// first and returned, so the caller can record their expiry. Returns
	// ErrDeviceLimit, adding nothing, when the user already has max devices
	// (active, or pending and unexpired).
	CreateDevice(ctx context.Context, d *Device, max int, now time.Time, e *AuditEvent) (expired []*Device, err error)

	// ActivateDevice confirms a pending device: it becomes active with
	// LastStep = a.Step and ConfirmedAt = LastUsedAt = a.Now. See Activation.
	// ErrNotFound when the user has no such pending device; ErrExpired,
	// after deleting the device, when it expired (ExpiresAt <= Now).
	ActivateDevice(ctx context.Context, a Activation) (issued bool, err error)

	// DeleteDevice deletes one device of the user. ErrNotFound.
	DeleteDevice(ctx context.Context, ref UserRef, deviceID string, e *AuditEvent) error

	// DeleteFactors deletes all of the user's devices and backup codes,
	// keeping the user's failure count and lock. ErrNotFound.
	DeleteFactors(ctx context.Context, ref UserRef, e *AuditEvent) error

	// DeleteExpired deletes every pending device that expired at or before
	// now and returns them.
	DeleteExpired(ctx context.Context, now time.Time) ([]*Device, error)
}

// Activation is a confirmed enrollment.
type Activation struct {
	Ref      UserRef
	DeviceID string
	Step     uint64 // the confirmed code's step: becomes LastStep, burning the code
	Now      time.Time
	// BackupCodes are hashes of a first set of backup codes, stored only if
	// the user has no unused backup code; ActivateDevice reports whether it
	// stored them.
	BackupCodes [][]byte
	Event       *AuditEvent // enrollment confirmed
	IssueEvent  *AuditEvent // backup codes issued; appended only when they are
}

// AttemptStore makes attempts on a user's factors: the one path by which
// every factor is checked, counted, locked and audited.
type AttemptStore interface {
	// Attempt makes one attempt on the user's factors, atomically: in one
	// transaction that holds the user against every other attempt and
	// every other change to their failure count, from any process, it
	// reads the user as User would, with the factor state a.Reads names,
	// calls check with them, and writes the Outcome check returns. So an
	// attempt is checked and counted in one step, and parallel guesses
	// are taken one at a time and cannot outrun the lockout. check runs
	// while the store holds the user (and, in an embedded store, every
	// writer): it must be quick and must not call the store.
	//
	// Before the check it counts a.Hits and reads a.Peeks, as Hit and
	// Peek would at a.Now, and gives check their counts (AttemptState).
	// The hits stay counted whatever check decides, its errors included,
	// and when the user is unknown or an effect's condition fails; a
	// failure of the store itself may lose them. A store may count them
	// in the attempt's transaction or just before it (one that would
	// otherwise hold a counter's row, shared by many users, until its
	// commit).
	//
	// If check returns an error, nothing else is written and Attempt
	// returns the error as it is. ErrNotFound, without calling check, if
	// the user is unknown. Otherwise the store writes the Outcome: its
	// effects, each under its condition (see Effect); if a condition no
	// longer holds (a change that does not hold the user, such as an
	// enrollment's confirmation, came in between), ErrReplayed, writing
	// nothing but the hits; trying again sees the change. Then the
	// failure count and lock, if they changed, Outcome.Hits and the
	// events. Attempt returns Outcome.Err once all that is committed.
	Attempt(ctx context.Context, a AttemptRequest, check func(*AttemptState) (*Outcome, error)) error

	// Unlock clears the user's failure count and lock. ErrNotFound.
	Unlock(ctx context.Context, ref UserRef, e *AuditEvent) error
}

// AttemptRequest is what AttemptStore.Attempt needs besides the check.
type AttemptRequest struct {
	Ref UserRef
	Now time.Time // the time counters are read and counted at
	// Hits are counted before the check, whatever it decides; Peeks are
	// read, not counted, for limits that only some outcomes count
	// (Outcome.Hits).
	Hits  []LimitHit
	Peeks []LimitHit
	// Reads names the factor state the check needs beyond the user and
	// their devices.
	Reads AttemptReads
}

// AttemptReads names factor state an attempt reads in its transaction.
// A new factor whose check needs state of its own adds a field here and
// one to AttemptState, and each store reads it (docs/architecture.md,
// "Adding a factor").
type AttemptReads struct {
	// BackupCode is the hash of a typed backup code: AttemptState's
	// BackupCodeFound says whether the user has an unused code with it.
	BackupCode []byte
	// Challenge is the ID of one of the user's challenges, which
	// AttemptState.Challenge holds with its live codes (nil when the
	// user has no such challenge).
	Challenge string
}

// AttemptState is what an attempt's check sees, read in the attempt's
// transaction.
type AttemptState struct {
	User *User
	// Hits and Peeks are the counts of the request's limits, in order:
	// for hits, this attempt included.
	Hits  []int
	Peeks []int
	// BackupCodeFound: AttemptReads.BackupCode is an unused code of the
	// user's.
	BackupCodeFound bool
	// Challenge is AttemptReads.Challenge's challenge.
	Challenge *Challenge
}

// LimitHit is one event to count, as LimitStore.Hit counts it.
type LimitHit struct {
	Key    string
	Window time.Duration
	// Buckets, when above 1, makes the window roll: counts are kept in
	// Buckets slots of Window/Buckets each, and a count is the sum of the
	// last Buckets slots, so that old events leave the count a slot at a
	// time rather than all at once at the end of a fixed window.
	Buckets int
}

// Outcome is what one attempt changes (AttemptStore.Attempt).
type Outcome struct {
	// Effects change factor state, each under its condition.
	Effects []Effect
	// Failures and LockedUntil are the user's consecutive failure count and
	// lock after the attempt; the store writes them only if they changed.
	Failures    int
	LockedUntil time.Time
	// Hits are counted with the outcome, for limits that count only some
	// outcomes (AttemptRequest.Peeks).
	Hits []LimitHit
	// Events are appended to the audit log in the attempt's transaction.
	Events []*AuditEvent
	// Err, when set, is the attempt's answer, returned by Attempt once the
	// rest of the outcome is written: a refusal that still counts.
	Err error
	// Over, when set, is a limit counted with the outcome that decides
	// the answer: if its count, this event included, exceeds Max,
	// Attempt returns Over.Err instead of Err. It lets a limit that only
	// some outcomes reach (malformed input) cost nothing to the others.
	Over *OverLimit
}

// OverLimit is a limit an outcome counts and checks (Outcome.Over).
type OverLimit struct {
	Hit LimitHit
	Max int
	Err error
}

// Effect is a change of factor state that an attempt's outcome makes,
// under a condition that the store checks as it writes (a
// compare-and-set): the second line of defence behind the user's lock.
// The effects are AcceptStep, SpendBackupCode and those of challenges
// (challenge.go); a new factor adds its own, and each store writes it.
type Effect interface{ effect() }

// AcceptStep accepts a TOTP step of an active device: LastStep becomes
// Step, burning it and every earlier step, with the learned Drift and
// LastUsedAt = the attempt's Now. Condition: the device is an active
// device of the user and Step is greater than its LastStep.
type AcceptStep struct {
	DeviceID string
	Step     uint64
	Drift    int
}

// SpendBackupCode marks the user's backup code with this hash used at the
// attempt's Now. Condition: it is unused.
type SpendBackupCode struct {
	Hash []byte
}

func (AcceptStep) effect()      {}
func (SpendBackupCode) effect() {}

// BackupCodeStore keeps hashed backup codes. They are spent by an
// attempt (SpendBackupCode).
type BackupCodeStore interface {
	// ReplaceBackupCodes replaces all of the user's backup codes, used or
	// not, with a new set. ErrNotFound if the user is unknown.
	ReplaceBackupCodes(ctx context.Context, ref UserRef, hashes [][]byte, now time.Time, e *AuditEvent) error
}

// LimitStore counts events in fixed time windows, for rate limits that
// every process shares.
type LimitStore interface {
	// Hit counts one event for key in the window of the given length that
	// contains now (windows start at multiples of the length since the
	// Unix epoch) and returns the count in that window, this one included.
	Hit(ctx context.Context, key string, window time.Duration, now time.Time) (int, error)
}

// AuditStore keeps the audit log.
type AuditStore interface {
	// AppendAudit appends events, in order, in one transaction.
	AppendAudit(ctx context.Context, events ...*AuditEvent) error

	// AuditEvents returns events matching f in Seq order.
	AuditEvents(ctx context.Context, f AuditFilter) ([]*AuditEvent, error)

	// CountAudit returns how many events match f, whatever its Limit.
	CountAudit(ctx context.Context, f AuditFilter) (int64, error)

	// AuditCheckpoints returns the stored checkpoints of a kind, at most
	// one a chain, in chain order, as they were stored: the store checks
	// no MAC.
	AuditCheckpoints(ctx context.Context, kind CheckpointKind) ([]AuditCheckpoint, error)

	// PutAuditCheckpoint stores cp as its kind's checkpoint of its chain
	// if none is stored, if the stored one's Seq is below cp's, or if the
	// stored one's MAC is old (what the caller read before; nil matches
	// nothing). So concurrent walks only move a checkpoint on, and a walk
	// that found a checkpoint bad may replace it. It reports whether it
	// stored cp.
	PutAuditCheckpoint(ctx context.Context, cp AuditCheckpoint, old []byte) (bool, error)

	// AuditChains returns how many chains the log is kept in: events are
	// in chains 0 to AuditChains()-1. Walking one chain at a time, in
	// pages by Seq, sees every entry of the chain committed before the
	// walk reached it; walking the whole log by Seq while other processes
	// append may pass an entry of one chain that commits after an entry of
	// another with a greater Seq.
	AuditChains() int
}

// SecretStore keeps sealed values and lets the Service re-seal them under a
// new master key while serving.
type SecretStore interface {
	// InitSetting stores value under name unless a value is stored
	// already, and returns the stored value: of several processes starting
	// at once, all end up with the same one.
	InitSetting(ctx context.Context, name string, value []byte) ([]byte, error)

	// SealedSecrets returns up to limit sealed values whose key ID is not
	// keyID, ordered by Ref, after the Ref after ("" for the start): the
	// devices' secrets, the payloads of outbox messages not yet sent, the
	// settings and the tenants' prompt keys.
	SealedSecrets(ctx context.Context, keyID uint32, after string, limit int) ([]SealedSecret, error)

	// ReplaceSealed replaces a sealed value with blob, under key ID keyID,
	// only if it still equals s.Blob (compare-and-set), and reports whether
	// it did. A value deleted or changed meanwhile is left alone.
	ReplaceSealed(ctx context.Context, s SealedSecret, blob []byte, keyID uint32) (bool, error)

	// CountSealed returns the number of sealed values, and of those not
	// under keyID.
	CountSealed(ctx context.Context, keyID uint32) (total, stale int, err error)
}

// SealedSecret is a sealed value and what its associated data is made of.
type SealedSecret struct {
	Ref         string // opaque, unique and ordered: "device:<id>", "message:<id>", "setting:<name>", "tenant:<id>" or "webhook:<tenant>"
	Setting     string // the setting's name, for settings
	Device      *Device
	PromptKeyOf string // the tenant, for a tenant's prompt key (stores that keep tenants)
	WebhookOf   string // the tenant, for a tenant's webhook secret
	// Message is an outbox message whose payload is not yet cleared (a
	// queued or failed one): its ID, Tenant, User, Channel and Kind, which
	// make its MessageAD.
	Message *Message
	Blob    []byte
	KeyID   uint32
}
