package bridge

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// The ways a requestState is refused. Each becomes a -32602 error whose
// message says which.
var (
	ErrStateTampered = errors.New("requestState failed its integrity check")
	ErrStateExpired  = errors.New("requestState has expired")
	ErrStateReplayed = errors.New("requestState was already used")
	ErrStateForeign  = errors.New("requestState belongs to another caller or another request")
	ErrStateUnknown  = errors.New("requestState names a call this server no longer holds")
)

// Elsewhere is the error for a requestState another instance issued: the
// call is parked there, and the request must be replayed to it.
type Elsewhere struct{ Machine string }

func (e *Elsewhere) Error() string { return "the call is parked on instance " + e.Machine }

// stateClaims is what a requestState vouches for. Machine is read before
// the signature is checked: it only decides where to send the request, and
// the instance there checks the signature with its own key.
type stateClaims struct {
	Machine string `json:"m,omitempty"`
	Park    string `json:"p"`
	Tenant  string `json:"t"`
	Subject string `json:"s,omitempty"`
	Request string `json:"r"` // digest of the method and its salient params
	Expires int64  `json:"e"` // unix milliseconds
}

// sealer signs and checks requestStates with HMAC-SHA256.
type sealer struct{ key []byte }

// newSealer derives the signing key from secret with HKDF, so the key is
// never the secret itself; without a secret every boot draws its own key,
// and states then survive neither a restart nor a hop to another instance.
func newSealer(secret string) (*sealer, error) {
	if secret == "" {
		key := make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return nil, fmt.Errorf("drawing a requestState key: %w", err)
		}
		return &sealer{key: key}, nil
	}
	key, err := hkdf.Key(sha256.New, []byte(secret), nil, "mcpwrap requestState v1", 32)
	if err != nil {
		return nil, fmt.Errorf("deriving the requestState key: %w", err)
	}
	return &sealer{key: key}, nil
}

func (s *sealer) mac(payload string) []byte {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(payload))
	return m.Sum(nil)
}

func (s *sealer) seal(c stateClaims) string {
	b, _ := json.Marshal(c)
	payload := base64.RawURLEncoding.EncodeToString(b)
	return payload + "." + base64.RawURLEncoding.EncodeToString(s.mac(payload))
}

// peek reads the claims without checking them: only Machine may be used
// from the result.
func peek(state string) (stateClaims, error) {
	payload, _, ok := strings.Cut(state, ".")
	if !ok {
		return stateClaims{}, ErrStateTampered
	}
	b, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		return stateClaims{}, ErrStateTampered
	}
	var c stateClaims
	if json.Unmarshal(b, &c) != nil {
		return stateClaims{}, ErrStateTampered
	}
	return c, nil
}

// open checks a state's signature and deadline and returns its claims.
func (s *sealer) open(state string, now time.Time) (stateClaims, error) {
	payload, sig, ok := strings.Cut(state, ".")
	if !ok {
		return stateClaims{}, ErrStateTampered
	}
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || !hmac.Equal(got, s.mac(payload)) {
		return stateClaims{}, ErrStateTampered
	}
	c, err := peek(state)
	if err != nil {
		return c, err
	}
	if now.UnixMilli() > c.Expires {
		return c, ErrStateExpired
	}
	return c, nil
}

// requestDigest names a request by its method and its params, minus what
// legitimately changes between the rounds of one call.
func requestDigest(method string, params []byte) string {
	var m map[string]any
	if len(params) > 0 {
		_ = json.Unmarshal(params, &m)
	}
	delete(m, "_meta")
	delete(m, "inputResponses")
	delete(m, "requestState")
	b, _ := json.Marshal(m) // map keys are sorted: a canonical form
	sum := sha256.Sum256(append([]byte(method+"\x00"), b...))
	return hex.EncodeToString(sum[:16])
}

// randomID is an unguessable identifier.
func randomID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
