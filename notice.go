package twofa

import (
	"context"
	"errors"
)

// Notices: whenever a factor is confirmed, removed or renamed, backup
// codes are regenerated or run low, two-factor authentication is turned
// off, the user is locked, or an administrator unlocks them, every
// confirmed email address of the user is told, through the outbox, in
// the same transaction as the change (the messages ride on its audit
// event). A user with no email address gets none.

// lowBackupCodes is how few unused backup codes make a notice.
const lowBackupCodes = 2

// attachNotices adds a notice of e to every active email device of u,
// and to extra (a device the change concerns that is not active, such as
// one being confirmed or removed), unless it is one of them already.
func (s *Service) attachNotices(ctx context.Context, e *AuditEvent, u *User, extra *Device) {
	if e == nil || u == nil {
		return
	}
	var to []*Device
	for _, d := range u.Devices {
		if d.Kind == KindEmail && (d.Status == StatusActive || extra != nil && d.ID == extra.ID) {
			to = append(to, d)
		}
	}
	for _, d := range to {
		addr, err := s.address(d)
		if err != nil {
			// The change goes ahead: a notice that cannot be addressed is
			// not a reason to refuse it. The log says why.
			s.log.ErrorContext(ctx, "addressing a notice", "device", d.ID, "err", err)
			continue
		}
		m := &Message{ID: NewID("msg"), Tenant: u.Tenant, User: u.ID, Channel: ChannelEmail, Kind: KindNotice}
		body := MessageBody{To: addr, Event: noticeOf(e, m.ID)}
		if err := s.SealMessage(m, body); err != nil {
			s.log.ErrorContext(ctx, "sealing a notice", "device", d.ID, "err", err)
			continue
		}
		e.Messages = append(e.Messages, m)
	}
	if len(to) > 0 {
		s.Notify()
	}
}

// noticeOf tells the event as a notice or webhook does.
func noticeOf(e *AuditEvent, id string) *NoticeEvent {
	return &NoticeEvent{
		ID: id, Type: e.Type, Time: e.Time, Tenant: e.Tenant, User: e.User, Device: e.Device, Factor: e.Factor,
		Reason: e.Reason, Actor: e.Actor, IP: e.IP, UserAgent: e.UserAgent, Detail: e.Detail,
	}
}

// userForNotice loads the user a change is about to notify, or nil if
// there is none to tell: a failure to load them must not stop the change.
func (s *Service) userForNotice(ctx context.Context, ref UserRef) *User {
	u, err := s.store.User(ctx, ref)
	if err != nil {
		if !errors.Is(err, ErrNotFound) {
			s.log.WarnContext(ctx, "loading a user to notify", "err", err)
		}
		return nil
	}
	return u
}

// factorOf names a device's factor for the audit log.
func factorOf(d *Device) string {
	if d.Kind == KindEmail {
		return FactorEmail
	}
	return string(d.Kind)
}
