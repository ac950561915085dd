package web_test

// TEMPORARY: an in-memory PageStore over the SQLite store, until the
// sqlite package implements PageStore. Delete this file then.

import (
	"bytes"
	"context"
	"sync"
	"time"

	"github.com/twofa/twofa"
)

type pagesShim struct {
	twofa.Store
	mu      sync.Mutex
	links   []*twofa.Link
	tenants map[string]*twofa.Tenant
	names   map[string]string
}

func withPageStore(st twofa.Store) twofa.Store {
	if _, ok := st.(twofa.PageStore); ok {
		return st
	}
	return &pagesShim{Store: st, tenants: map[string]*twofa.Tenant{}, names: map[string]string{}}
}

func (p *pagesShim) User(ctx context.Context, ref twofa.UserRef) (*twofa.User, error) {
	u, err := p.Store.User(ctx, ref)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, d := range u.Devices {
		if n, ok := p.names[d.ID]; ok {
			d.Name = n
		}
	}
	return u, nil
}

func (p *pagesShim) CreateLink(ctx context.Context, l *twofa.Link, e *twofa.AuditEvent) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	c := *l
	p.links = append(p.links, &c)
	return nil
}

func (p *pagesShim) UseLink(ctx context.Context, hash []byte, now time.Time, e *twofa.AuditEvent) (*twofa.Link, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, l := range p.links {
		if bytes.Equal(l.Hash, hash) && l.UsedAt.IsZero() {
			if !l.ExpiresAt.After(now) {
				return nil, twofa.ErrExpired
			}
			l.UsedAt = now
			c := *l
			return &c, nil
		}
	}
	return nil, twofa.ErrNotFound
}

func (p *pagesShim) Tenant(ctx context.Context, id string) (*twofa.Tenant, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	t, ok := p.tenants[id]
	if !ok {
		return nil, twofa.ErrNotFound
	}
	c := *t
	return &c, nil
}

func (p *pagesShim) PutTenant(ctx context.Context, t *twofa.Tenant, e *twofa.AuditEvent) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	c := *t
	p.tenants[t.ID] = &c
	return nil
}

func (p *pagesShim) RenameDevice(ctx context.Context, ref twofa.UserRef, deviceID, name string, e *twofa.AuditEvent) error {
	u, err := p.Store.User(ctx, ref)
	if err != nil || u.Device(deviceID) == nil {
		return twofa.ErrNotFound
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.names[deviceID] = name
	return nil
}

func (p *pagesShim) Users(ctx context.Context, tenant, prefix, after string, limit int) ([]*twofa.User, error) {
	return nil, nil
}
