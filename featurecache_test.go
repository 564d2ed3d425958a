package snapvlm

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestFeatureCacheSingleflight: callers asking for the same key at once run
// the encoder once and all get its result; a leader cancelled by its own
// caller hands over to a live waiter instead of failing it.
func TestFeatureCacheSingleflight(t *testing.T) {
	tests := []struct {
		name       string
		size       int // cache size (0: disabled; singleflight still applies)
		cancelLead bool
		wantRuns   int32
	}{
		{"cache on", 4, false, 1},
		{"cache off", -1, false, 1},
		{"leader cancelled", 4, true, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newFeatureCache(tc.size)
			var runs atomic.Int32
			release := make(chan struct{})
			started := make(chan struct{}, 8)
			key := [32]byte{1}
			leadCtx, cancelLead := context.WithCancel(context.Background())
			defer cancelLead()
			encode := func(ctx context.Context) func() (*featureEntry, error) {
				return func() (*featureEntry, error) {
					runs.Add(1)
					started <- struct{}{}
					select {
					case <-release:
						return &featureEntry{frames: 3}, nil
					case <-ctx.Done():
						return nil, ctx.Err()
					}
				}
			}
			// The leader starts first and blocks in encode.
			type out struct {
				ent      *featureEntry
				computed bool
				err      error
			}
			leader := make(chan out, 1)
			go func() {
				e, c, err := c.do(leadCtx, key, encode(leadCtx))
				leader <- out{e, c, err}
			}()
			<-started
			const waiters = 7
			var wg sync.WaitGroup
			results := make([]out, waiters)
			for i := range waiters {
				wg.Add(1)
				go func() {
					defer wg.Done()
					e, comp, err := c.do(context.Background(), key, encode(context.Background()))
					results[i] = out{e, comp, err}
				}()
			}
			time.Sleep(50 * time.Millisecond) // let the waiters queue on the call
			if tc.cancelLead {
				cancelLead()
				<-started // one waiter took over
			}
			close(release)
			wg.Wait()
			l := <-leader
			if tc.cancelLead {
				if !errors.Is(l.err, context.Canceled) {
					t.Errorf("cancelled leader: err %v, want context.Canceled", l.err)
				}
			} else if l.err != nil || !l.computed || l.ent.frames != 3 {
				t.Errorf("leader: %+v, want computed frames 3", l)
			}
			computed := 0
			for i, r := range results {
				if r.err != nil || r.ent == nil || r.ent.frames != 3 {
					t.Errorf("waiter %d: %+v", i, r)
				}
				if r.computed {
					computed++
				}
			}
			if want := map[bool]int{false: 0, true: 1}[tc.cancelLead]; computed != want {
				t.Errorf("%d waiters ran the encoder, want %d", computed, want)
			}
			if got := runs.Load(); got != tc.wantRuns {
				t.Errorf("encoder ran %d times, want %d", got, tc.wantRuns)
			}
			_, cached := c.get(key)
			if cached != (tc.size > 0) {
				t.Errorf("cached after the call: %v, want %v", cached, tc.size > 0)
			}
		})
	}
}
