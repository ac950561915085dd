package twofa

import (
	"context"
	"fmt"
	"sync"
)

// RotationProgress reports a key rotation as it goes.
type RotationProgress struct {
	Done  int // values re-sealed (or found gone) so far
	Total int // values that were under an old key when the rotation began
}

// RotateKeys re-seals every sealed value that is not under the keyring's
// active key, so the old keys can then be retired. It is safe while other
// processes serve: each value is replaced only if it is unchanged since it
// was read, and one deleted or re-sealed meanwhile is skipped. It is
// resumable: run it again and it picks up what is left. progress, if not
// nil, is called after each batch.
func (s *Service) RotateKeys(ctx context.Context, progress func(RotationProgress)) (RotationProgress, error) {
	active := s.keys.ActiveID()
	_, stale, err := s.store.CountSealed(ctx, active)
	if err != nil {
		return RotationProgress{}, err
	}
	p := RotationProgress{Total: stale}
	if progress != nil {
		progress(p)
	}
	after := ""
	for {
		batch, err := s.store.SealedSecrets(ctx, active, after, 500)
		if err != nil {
			return p, err
		}
		if err := s.resealAll(ctx, batch); err != nil {
			return p, err
		}
		p.Done += len(batch)
		if len(batch) > 0 {
			after = batch[len(batch)-1].Ref
		}
		if p.Done > p.Total {
			p.Total = p.Done // values added under an old key meanwhile
		}
		if progress != nil {
			progress(p)
		}
		if len(batch) < 500 {
			break
		}
	}
	e := s.event(ctx, EventKeysRotated, UserRef{}, "", s.now())
	e.Detail = fmt.Sprintf("%d values re-sealed under key %d", p.Done, active)
	s.audit(ctx, e)
	return p, nil
}

// rotationWorkers is how many values are re-sealed at once. Each
// replacement is a compare-and-set of its own, so they may run in any
// order; several at once let a database commit them together (SQLite's
// group commit, PostgreSQL's concurrent transactions) rather than wait
// for one commit after another.
const rotationWorkers = 8

// resealAll re-seals the values of a batch, rotationWorkers at a time,
// and returns the first error.
func (s *Service) resealAll(ctx context.Context, batch []SealedSecret) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	work := make(chan SealedSecret)
	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error
	)
	for range min(rotationWorkers, len(batch)) {
		wg.Go(func() {
			for v := range work {
				if err := s.reseal(ctx, v); err != nil {
					once.Do(func() { first = err; cancel() })
				}
			}
		})
	}
	for _, v := range batch {
		if ctx.Err() != nil {
			break
		}
		work <- v
	}
	close(work)
	wg.Wait()
	if first == nil {
		first = ctx.Err()
	}
	return first
}

func (s *Service) reseal(ctx context.Context, v SealedSecret) error {
	var ad []byte
	switch {
	case v.Device != nil:
		ad = SecretAD(v.Device)
	case v.Message != nil:
		ad = MessageAD(v.Message)
	case v.Setting != "":
		ad = settingAD(v.Setting)
	case v.PromptKeyOf != "":
		ad = promptKeyAD(v.PromptKeyOf)
	case v.WebhookOf != "":
		ad = webhookSecretAD(v.WebhookOf)
	default:
		return fmt.Errorf("sealed value %s: not a device, a message, a setting, a prompt key or a webhook secret", v.Ref)
	}
	blob, changed, err := s.keys.Reseal(v.Blob, ad)
	if err != nil {
		return fmt.Errorf("re-sealing %s: %w", v.Ref, err)
	}
	if !changed {
		return nil
	}
	_, err = s.store.ReplaceSealed(ctx, v, blob, s.keys.ActiveID())
	return err
}

// KeyStatus says how many sealed values are under the active key.
func (s *Service) KeyStatus(ctx context.Context) (active uint32, total, stale int, err error) {
	active = s.keys.ActiveID()
	total, stale, err = s.store.CountSealed(ctx, active)
	return active, total, stale, err
}
