package authserver

import (
	"crypto"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/go-jose/go-jose/v4"
)

// Every key is derived from the secret with its own HKDF info string, so a
// value sealed for one purpose can never be opened as another: a code is
// not a refresh token, and a registration is not a code.
const (
	infoSigning      = "mcpwrap access token signing"
	infoRegistration = "mcpwrap client registration"
	infoCode         = "mcpwrap authorization code"
	infoRefresh      = "mcpwrap refresh token"
	infoRequest      = "mcpwrap authorization request"
	infoGrant        = "mcpwrap signed-in grant"
	infoUpstream     = "mcpwrap upstream sign-in state"
	infoCSRF         = "mcpwrap form token"
)

// MinSecretLen is the shortest MCPWRAP_AUTH_SECRET accepted: 32 bytes, as
// much as the keys derived from it.
const MinSecretLen = 32

var (
	// ErrShortSecret is a secret (current or previous) under MinSecretLen bytes.
	ErrShortSecret = errors.New("authserver: the secret must be at least 32 bytes")
	// errUnsealed is anything that did not open: forged, corrupted, sealed
	// under a secret no longer held, or for another purpose.
	errUnsealed = errors.New("not sealed by this server")
)

func derive(secret []byte, info string, n int) []byte {
	k, err := hkdf.Key(sha256.New, secret, nil, info, n)
	if err != nil {
		// Only a length beyond 255 hash blocks fails; ours are constants.
		panic(fmt.Sprintf("hkdf: %v", err))
	}
	return k
}

// keyring is every key of one purpose: the current secret's first, then the
// previous secret's, which still opens and verifies but never seals.
type keyring [][]byte

func newKeyring(secrets [][]byte, info string) keyring {
	var k keyring
	for _, s := range secrets {
		k = append(k, derive(s, info, 32))
	}
	return k
}

// seal encrypts v (JSON) as a compact JWE, dir + A256GCM, under the current key.
func (k keyring) seal(v any) (string, error) {
	enc, err := jose.NewEncrypter(jose.A256GCM, jose.Recipient{Algorithm: jose.DIRECT, Key: k[0]}, nil)
	if err != nil {
		return "", fmt.Errorf("sealing: %w", err)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("sealing: %w", err)
	}
	obj, err := enc.Encrypt(b)
	if err != nil {
		return "", fmt.Errorf("sealing: %w", err)
	}
	return obj.CompactSerialize()
}

// open decrypts what seal made under any key of the ring into v.
func (k keyring) open(sealed string, v any) error {
	if sealed == "" || len(sealed) > 16<<10 {
		return errUnsealed
	}
	obj, err := jose.ParseEncryptedCompact(sealed, []jose.KeyAlgorithm{jose.DIRECT}, []jose.ContentEncryption{jose.A256GCM})
	if err != nil {
		return errUnsealed
	}
	for _, key := range k {
		if b, err := obj.Decrypt(key); err == nil {
			if json.Unmarshal(b, v) != nil {
				return errUnsealed
			}
			return nil
		}
	}
	return errUnsealed
}

// mac binds a form token to a browser cookie and to the sealed value the form
// carries, under the current key.
func (k keyring) mac(parts ...string) string {
	return macWith(k[0], parts...)
}

// verifyMAC compares in constant time against every key of the ring.
func (k keyring) verifyMAC(got string, parts ...string) bool {
	ok := false
	for _, key := range k {
		if hmac.Equal([]byte(got), []byte(macWith(key, parts...))) {
			ok = true
		}
	}
	return ok
}

func macWith(key []byte, parts ...string) string {
	h := hmac.New(sha256.New, key)
	for _, p := range parts {
		// Length-prefixed, so that ("ab","c") and ("a","bc") differ.
		fmt.Fprintf(h, "%d:%s", len(p), p)
	}
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil))
}

// signingKey is one Ed25519 key pair for access tokens and its key id.
type signingKey struct {
	private ed25519.PrivateKey
	public  ed25519.PublicKey
	kid     string
}

func newSigningKeys(secrets [][]byte) []signingKey {
	var keys []signingKey
	for _, s := range secrets {
		priv := ed25519.NewKeyFromSeed(derive(s, infoSigning, ed25519.SeedSize))
		pub := priv.Public().(ed25519.PublicKey)
		sum := sha256.Sum256(pub)
		keys = append(keys, signingKey{private: priv, public: pub, kid: base64.RawURLEncoding.EncodeToString(sum[:12])})
	}
	return keys
}

func (k signingKey) jwk() jose.JSONWebKey {
	return jose.JSONWebKey{Key: k.public, KeyID: k.kid, Algorithm: string(jose.EdDSA), Use: "sig"}
}

func publicKeys(keys []signingKey) []crypto.PublicKey {
	out := make([]crypto.PublicKey, len(keys))
	for i, k := range keys {
		out[i] = k.public
	}
	return out
}
