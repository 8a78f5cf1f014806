package onebot

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"path"
	"sort"
	"strconv"
	"sync"
	"time"
)

// Store errors. A Store implementation returns errors matching these.
var (
	ErrNotFound = errors.New("onebot: key not found")
	ErrExists   = errors.New("onebot: key exists or changed")
)

// Store is the state the gateway's replicas share (in production a NATS KV
// bucket). Keys are dot-separated tokens of [A-Za-z0-9_-]. Every key the
// gateway writes is listed in docs/onebot.md.
type Store interface {
	// Get returns the value and its revision, or ErrNotFound.
	Get(ctx context.Context, key string) ([]byte, uint64, error)
	// Create writes the key only if it does not exist, else ErrExists.
	Create(ctx context.Context, key string, value []byte) (uint64, error)
	// Update writes the key only if its revision is rev, else ErrExists.
	Update(ctx context.Context, key string, value []byte, rev uint64) (uint64, error)
	// Put writes the key.
	Put(ctx context.Context, key string, value []byte) error
	// Keys lists the keys matching a NATS-style pattern ("member.987654.*").
	Keys(ctx context.Context, pattern string) ([]string, error)
}

// MemStore is a Store in memory, for a single process and for tests.
type MemStore struct {
	mu  sync.Mutex
	rev uint64
	m   map[string]memEntry
}

type memEntry struct {
	v   []byte
	rev uint64
}

// NewMemStore returns an empty MemStore.
func NewMemStore() *MemStore { return &MemStore{m: map[string]memEntry{}} }

// Get implements Store.
func (s *MemStore) Get(_ context.Context, key string) ([]byte, uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.m[key]
	if !ok {
		return nil, 0, ErrNotFound
	}
	return append([]byte(nil), e.v...), e.rev, nil
}

// Create implements Store.
func (s *MemStore) Create(_ context.Context, key string, value []byte) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[key]; ok {
		return 0, ErrExists
	}
	s.rev++
	s.m[key] = memEntry{append([]byte(nil), value...), s.rev}
	return s.rev, nil
}

// Update implements Store.
func (s *MemStore) Update(_ context.Context, key string, value []byte, rev uint64) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.m[key]; !ok || e.rev != rev {
		return 0, ErrExists
	}
	s.rev++
	s.m[key] = memEntry{append([]byte(nil), value...), s.rev}
	return s.rev, nil
}

// Put implements Store.
func (s *MemStore) Put(_ context.Context, key string, value []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rev++
	s.m[key] = memEntry{append([]byte(nil), value...), s.rev}
	return nil
}

// Keys implements Store (patterns use * for one token, as in NATS; > is
// not supported).
func (s *MemStore) Keys(_ context.Context, pattern string) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	glob := dotsToSlashes(pattern)
	var out []string
	for k := range s.m {
		if ok, _ := path.Match(glob, dotsToSlashes(k)); ok {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out, nil
}

func dotsToSlashes(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c == '.' {
			b[i] = '/'
		}
	}
	return string(b)
}

// MsgRef is what a message_id resolves to (key "msg.<message_id>"): the
// qqbridge event id (or "sent:<request id>" for a message the gateway
// sent), and enough of the message for get_msg.
type MsgRef struct {
	Ref         string    `json:"ref"`
	Time        int64     `json:"time"`
	MessageType string    `json:"message_type"`
	UserID      int64     `json:"user_id,omitempty"`
	GroupID     int64     `json:"group_id,omitempty"`
	DiscussID   int64     `json:"discuss_id,omitempty"`
	Nickname    string    `json:"nickname,omitempty"`
	Message     []Segment `json:"message"`
}

// maxProbes bounds the probing for a free message_id.
const maxProbes = 16

// MessageIDOf returns the message_id of ref: the 31-bit FNV-1a hash of ref
// (never 0), or, when that number already names another message, the next
// free one after it (linear probing through the store's Create, so every
// replica computes the same number for the same ref). It records m under
// "msg.<id>" so that the id resolves back (Resolve).
func MessageIDOf(ctx context.Context, st Store, m MsgRef) (int32, error) {
	h := fnv.New32a()
	h.Write([]byte(m.Ref))
	id := int32(h.Sum32() & 0x7fffffff)
	val, err := json.Marshal(m)
	if err != nil {
		return 0, err
	}
	for range maxProbes {
		if id == 0 {
			id = 1
		}
		key := "msg." + strconv.FormatInt(int64(id), 10)
		_, err := st.Create(ctx, key, val)
		if err == nil {
			return id, nil
		}
		if !errors.Is(err, ErrExists) {
			return 0, err
		}
		got, _, err := st.Get(ctx, key)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return 0, err
		}
		var other MsgRef
		if err == nil && json.Unmarshal(got, &other) == nil && other.Ref == m.Ref {
			return id, nil
		}
		id = (id + 1) & 0x7fffffff
	}
	return 0, fmt.Errorf("onebot: no free message_id near the hash of %q after %d probes", truncate(m.Ref, 64), maxProbes)
}

// Resolve returns what message_id id names, or ErrNotFound.
func Resolve(ctx context.Context, st Store, id int32) (MsgRef, error) {
	var m MsgRef
	b, _, err := st.Get(ctx, "msg."+strconv.FormatInt(int64(id), 10))
	if err != nil {
		return m, err
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("onebot: message %d: %w", id, err)
	}
	return m, nil
}

// echoRecord is the value of "echo.<hash>": the request id given to the
// first send with that echo and content, and when.
type echoRecord struct {
	ID   string `json:"id"`
	Time int64  `json:"time"`
}

// RequestID returns the qqbridge request id (the idempotency key) of a send
// action. With no echo it is a new random id. With an echo it is the id
// recorded under "echo.<sha256 of echo, action and params>" when that record
// is younger than window, else a new random id recorded there: so a bot that
// repeats a send with the same echo and content within window (after a
// reconnect) gets the same id, and the bridge sends the message once, while
// a bot whose echo counter restarted and that sends the same text much later
// is not silenced.
func RequestID(ctx context.Context, st Store, echo []byte, action string, params []byte, window time.Duration, now time.Time) (string, error) {
	if len(echo) == 0 || string(echo) == "null" {
		return newID(), nil
	}
	sum := sha256.New()
	for _, p := range [][]byte{echo, []byte(action), params} {
		sum.Write([]byte(strconv.Itoa(len(p))))
		sum.Write([]byte{':'})
		sum.Write(p)
	}
	key := "echo." + hex.EncodeToString(sum.Sum(nil)[:16])
	for range 4 {
		rec := echoRecord{ID: newID(), Time: now.UnixMilli()}
		val, _ := json.Marshal(rec)
		b, rev, err := st.Get(ctx, key)
		switch {
		case errors.Is(err, ErrNotFound):
			if _, err := st.Create(ctx, key, val); err == nil {
				return rec.ID, nil
			} else if !errors.Is(err, ErrExists) {
				return "", err
			}
			continue
		case err != nil:
			return "", err
		}
		var old echoRecord
		if json.Unmarshal(b, &old) == nil && old.ID != "" && now.Sub(time.UnixMilli(old.Time)) < window {
			return old.ID, nil
		}
		if _, err := st.Update(ctx, key, val, rev); err == nil {
			return rec.ID, nil
		} else if !errors.Is(err, ErrExists) {
			return "", err
		}
	}
	return "", fmt.Errorf("onebot: echo record %s keeps changing", key)
}

func newID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return "onebot-" + hex.EncodeToString(b[:])
}

// Member is what the gateway knows of a group member (key
// "member.<group_id>.<user_id>"): what it saw when the member last spoke.
type Member struct {
	Nickname     string `json:"nickname"`
	Card         string `json:"card,omitempty"`
	LastSentTime int64  `json:"last_sent_time"`
}
