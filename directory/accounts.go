package directory

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// errNotResolved is a QQ number lookup that failed recently (remembered for
// the negative TTL): not a finding about the person, only that QQ did not
// tell.
var errNotResolved = errors.New("directory: QQ number not resolved")

// accountOf returns the QQ number of uin in the current session, from the
// cache or from get_friend_uin2. A failed lookup is remembered for the
// negative TTL (unless ctx ended or the session is gone) and answers 0 with
// the error.
func (d *Directory) accountOf(ctx context.Context, uin int64) (int64, error) {
	if uin <= 0 {
		return 0, fmt.Errorf("%w: uin %d", errNotResolved, uin)
	}
	key, _ := d.keyFor(ctx)
	d.mu.RLock()
	e, ok := d.acct[uin]
	sess := d.acctSess
	d.mu.RUnlock()
	if sess != key { // a new session whose lists are not loaded yet: its own numbers
		d.mu.Lock()
		if d.acctSess != key {
			d.acct, d.byQQ, d.acctSess = map[int64]acctEntry{}, map[int64]int64{}, key
		}
		d.mu.Unlock()
		sess, ok = key, false
	}
	if ok && (e.qq > 0 || time.Now().Before(e.retryAt)) {
		if e.qq == 0 {
			return 0, fmt.Errorf("%w: uin %d (failed recently)", errNotResolved, uin)
		}
		return e.qq, nil
	}
	qq, err := retryLimited(ctx, func() (int64, error) { return d.c.AccountOf(ctx, uin) })
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.acctSess != sess { // a refresh into a new session ran meanwhile
		return qq, err
	}
	if err != nil {
		if !fatal(ctx, err) {
			d.acct[uin] = acctEntry{retryAt: time.Now().Add(d.negativeTTL)}
			d.log.Debug().Err(err).Int64("uin", uin).Msg("QQ number not resolved")
		}
		return 0, err
	}
	d.acct[uin] = acctEntry{qq: qq}
	d.byQQ[qq] = uin
	return qq, nil
}

// cachedQQ returns the QQ number of uin when it is known without a request.
func (d *Directory) cachedQQ(uin int64) int64 {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.acct[uin].qq
}

// findUIN returns the uin among uins whose QQ number is qq, resolving QQ
// numbers not yet known; 0 when none. A fatal error (see fatal) is returned
// as it is. When none matched but some QQ numbers could not be resolved, the
// error wraps ErrIncomplete: qq may be one of them.
func (d *Directory) findUIN(ctx context.Context, qq int64, uins []int64) (int64, error) {
	d.mu.RLock()
	uin, ok := d.byQQ[qq]
	d.mu.RUnlock()
	if ok {
		for _, u := range uins {
			if u == uin {
				return uin, nil
			}
		}
	}
	unresolved := 0
	var first error
	for _, u := range uins {
		got, err := d.accountOf(ctx, u)
		if err != nil {
			if fatal(ctx, err) {
				return 0, err
			}
			if unresolved++; first == nil {
				first = err
			}
			continue
		}
		if got == qq {
			return u, nil
		}
	}
	if unresolved > 0 {
		return 0, fmt.Errorf("%w: %d of %d QQ numbers could not be resolved (%v)", ErrIncomplete, unresolved, len(uins), first)
	}
	return 0, nil
}

// resolveConcurrency bounds the QQ number lookups ResolveAccounts makes at
// once: a few, well under QQ's request rate (the client's retries back off
// when QQ says too fast).
const resolveConcurrency = 4

// ResolveAccounts looks up the QQ numbers of the uins not known yet (and not
// failed recently) together, at most resolveConcurrency requests at a time,
// so that a batch of events from new senders waits for one round of lookups
// rather than one after another. The lookups then answer from the cache;
// failures are remembered as accountOf does.
func (d *Directory) ResolveAccounts(ctx context.Context, uins []int64) {
	seen := make(map[int64]bool, len(uins))
	var todo []int64
	now := time.Now()
	d.mu.RLock()
	for _, u := range uins {
		if u <= 0 || seen[u] {
			continue
		}
		seen[u] = true
		if e, ok := d.acct[u]; ok && (e.qq > 0 || now.Before(e.retryAt)) {
			continue
		}
		todo = append(todo, u)
	}
	d.mu.RUnlock()
	if len(todo) <= 1 {
		return // one lookup is made where it is needed
	}
	sem := make(chan struct{}, resolveConcurrency)
	var wg sync.WaitGroup
	for _, u := range todo {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return
		}
		wg.Go(func() {
			defer func() { <-sem }()
			_, _ = d.accountOf(ctx, u)
		})
	}
	wg.Wait()
}
