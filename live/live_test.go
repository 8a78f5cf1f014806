package live

import (
	"context"
	"errors"
	"sync"
	"testing"
)

type recorder struct {
	mu     sync.Mutex
	lost   []uint64
	kicked []string
}

func (r *recorder) Lost(gen uint64, _ error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lost = append(r.lost, gen)
}

func (r *recorder) Kicked(_ uint64, reason string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.kicked = append(r.kicked, reason)
}

func TestZeroSessionHasEnded(t *testing.T) {
	var s Session
	if !errors.Is(s.Err(), ErrTermEnded) {
		t.Fatalf("zero Session: Err = %v, want ErrTermEnded", s.Err())
	}
	select {
	case <-s.Done():
	default:
		t.Fatal("zero Session: Done is not closed")
	}
	s.Lost(errors.New("x")) // no panic, nowhere to report
	s.Kicked("x")
}

func TestTermAndReports(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	r := &recorder{}
	s := New(ctx, 42, 7, r)
	if s.Err() != nil {
		t.Fatalf("live term: Err = %v", s.Err())
	}
	s.Lost(errors.New("session gone"))
	s.Lost(ErrTermEnded) // the end of a term is not a loss
	s.Kicked("another login")
	cancel()
	if !errors.Is(s.Err(), ErrTermEnded) {
		t.Fatalf("ended term: Err = %v", s.Err())
	}
	<-s.Done()
	if len(r.lost) != 1 || r.lost[0] != 7 {
		t.Fatalf("lost reports = %v, want [7]", r.lost)
	}
	if len(r.kicked) != 1 || r.kicked[0] != "another login" {
		t.Fatalf("kick reports = %v", r.kicked)
	}
}
