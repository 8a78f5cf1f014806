package session

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/qqbridge/qqbridge/qqclient"
)

// Errors of DecodeSaved (and of a Manager that restores a saved session). A
// Manager that meets one logs it and falls back to a new login.
var (
	// ErrWrongKey: the saved session is encrypted with another key.
	ErrWrongKey = errors.New("session: saved session cannot be decrypted with this key")
	// ErrNoKey: the saved session is encrypted and no session key is set.
	ErrNoKey = errors.New("session: saved session is encrypted and no session key is set")
	// ErrBadSaved: the saved value is not a saved session this package wrote.
	ErrBadSaved = errors.New("session: saved session is malformed")
	// ErrKeySize: a key is not KeySize bytes long.
	ErrKeySize = errors.New("session: session key must be 32 bytes (use DeriveKey)")
)

// KeySize is the length of a session key: AES-256.
const KeySize = 32

// Algorithms of the saved-session envelope ("alg").
const (
	algNone   = "none"
	algAESGCM = "A256GCM"
)

// savedVersion is the envelope version ("v").
const savedVersion = 1

// maxSavedBytes bounds what DecodeSaved reads.
const maxSavedBytes = 1 << 20

// aad binds a ciphertext to its purpose.
var aad = []byte("qqbridge/session/v1")

// savedEnvelope is the value stored under key "session": the session in
// clear (alg "none") or sealed with AES-256-GCM (alg "A256GCM": Nonce is the
// random 12-byte nonce, Data the ciphertext with its tag).
type savedEnvelope struct {
	V       int               `json:"v"`
	Alg     string            `json:"alg"`
	Nonce   []byte            `json:"nonce,omitempty"`
	Data    []byte            `json:"data,omitempty"`
	Session *qqclient.Session `json:"session,omitempty"`
}

// DeriveKey turns the operator's secret (--session-key, QQBRIDGE_SESSION_KEY)
// into a session key: its SHA-256. An empty secret gives nil (no
// encryption).
func DeriveKey(secret string) []byte {
	if secret == "" {
		return nil
	}
	sum := sha256.Sum256([]byte(secret))
	return sum[:]
}

// EncodeSaved encodes a session for the session bucket: a small JSON
// envelope holding the session sealed with AES-256-GCM under key (a random
// nonce each time), or — with a nil key — the session in clear. key must be
// nil or KeySize bytes.
func EncodeSaved(s *qqclient.Session, key []byte) ([]byte, error) {
	if s == nil {
		return nil, fmt.Errorf("%w: nil session", ErrBadSaved)
	}
	if len(key) == 0 {
		return json.Marshal(savedEnvelope{V: savedVersion, Alg: algNone, Session: s})
	}
	aead, err := newAEAD(key)
	if err != nil {
		return nil, err
	}
	plain, err := json.Marshal(s)
	if err != nil {
		return nil, fmt.Errorf("session: encode saved session: %w", err)
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("session: nonce: %w", err)
	}
	return json.Marshal(savedEnvelope{
		V: savedVersion, Alg: algAESGCM, Nonce: nonce, Data: aead.Seal(nil, nonce, plain, aad),
	})
}

// DecodeSaved decodes a value written by EncodeSaved. An encrypted value
// needs the key it was sealed with: another key gives ErrWrongKey, none
// gives ErrNoKey. A value in clear decodes with or without a key. Anything
// else gives ErrBadSaved. The errors never contain the value.
func DecodeSaved(data []byte, key []byte) (*qqclient.Session, error) {
	if len(data) > maxSavedBytes {
		return nil, fmt.Errorf("%w: %d bytes", ErrBadSaved, len(data))
	}
	var env savedEnvelope
	if err := json.Unmarshal(data, &env); err != nil {
		return nil, fmt.Errorf("%w: not a JSON envelope", ErrBadSaved)
	}
	if env.V != savedVersion {
		return nil, fmt.Errorf("%w: version %d", ErrBadSaved, env.V)
	}
	var s *qqclient.Session
	switch env.Alg {
	case algNone:
		s = env.Session
	case algAESGCM:
		if len(key) == 0 {
			return nil, ErrNoKey
		}
		aead, err := newAEAD(key)
		if err != nil {
			return nil, err
		}
		if len(env.Nonce) != aead.NonceSize() {
			return nil, fmt.Errorf("%w: nonce of %d bytes", ErrBadSaved, len(env.Nonce))
		}
		plain, err := aead.Open(nil, env.Nonce, env.Data, aad)
		if err != nil {
			return nil, ErrWrongKey
		}
		s = new(qqclient.Session)
		if err := json.Unmarshal(plain, s); err != nil {
			return nil, fmt.Errorf("%w: sealed value is not a session", ErrBadSaved)
		}
	default:
		return nil, fmt.Errorf("%w: unknown algorithm", ErrBadSaved)
	}
	if s == nil || s.UIN <= 0 || s.PtWebQQ == "" || s.VFWebQQ == "" || s.PSessionID == "" {
		return nil, fmt.Errorf("%w: incomplete session", ErrBadSaved)
	}
	return s, nil
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	if len(key) != KeySize {
		return nil, ErrKeySize
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("session: cipher: %w", err)
	}
	return cipher.NewGCM(block)
}
