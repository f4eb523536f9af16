package proxy

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/zalando/go-keyring"
	"golang.org/x/oauth2"
)

// keyringService names mcpwrap's entries in the OS keychain.
const keyringService = "mcpwrap proxy"

// grant is what one sign-in at one authorization server left behind for one
// resource: the client registration and the tokens.
type grant struct {
	Issuer   string `json:"issuer"`
	Resource string `json:"resource"`
	AuthURL  string `json:"authorization_endpoint"`
	TokenURL string `json:"token_endpoint"`
	// The registration. RedirectURI is kept because an authorization server
	// may compare it exactly, port included.
	ClientID     string   `json:"client_id"`
	ClientSecret string   `json:"client_secret,omitempty"`
	AuthStyle    int      `json:"auth_style,omitempty"`
	RedirectURI  string   `json:"redirect_uri"`
	Scopes       []string `json:"scopes,omitempty"`
	// The tokens; empty after a refresh the server refused, while the
	// registration may still serve the next sign-in.
	AccessToken  string    `json:"access_token,omitempty"`
	TokenType    string    `json:"token_type,omitempty"`
	RefreshToken string    `json:"refresh_token,omitempty"`
	Expiry       time.Time `json:"expiry,omitzero"`
}

// config is the OAuth client the grant was made with.
func (g *grant) config() *oauth2.Config {
	return &oauth2.Config{
		ClientID:     g.ClientID,
		ClientSecret: g.ClientSecret,
		Endpoint:     oauth2.Endpoint{AuthURL: g.AuthURL, TokenURL: g.TokenURL, AuthStyle: oauth2.AuthStyle(g.AuthStyle)},
		RedirectURL:  g.RedirectURI,
		Scopes:       g.Scopes,
	}
}

// record is everything stored for one remote URL: a grant per authorization
// server, and which of them the remote sent the shim to last.
type record struct {
	Current string            `json:"current"`
	Grants  map[string]*grant `json:"grants"`
}

// current returns the grant in use, or nil.
func (r *record) current() *grant {
	if r == nil || r.Grants == nil {
		return nil
	}
	return r.Grants[r.Current]
}

// vault keeps records by key; both kinds write a record whole, so a reader
// never sees half of one.
type vault interface {
	load(key string) (*record, error)
	save(key string, r *record) error
	remove(key string) error
	// where says where records are kept, for messages to the user.
	where() string
}

// store keeps the shim's grants, one record per remote URL, and serializes
// the changes that several shims for the same remote make to it.
type store struct {
	dir string // holds the lock files, and the records when v is a fileVault
	v   vault
}

// storeKinds are the values --token-store accepts.
var storeKinds = []string{"auto", "keyring", "file"}

// errNoKeyring is a keychain that cannot be used on this machine.
var errNoKeyring = errors.New("no usable OS keychain")

// openStore opens the store under dir. kind "auto" uses the OS keychain when
// one answers and the files under dir otherwise.
func openStore(dir, kind string) (*store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create %s: %w", dir, err)
	}
	// MkdirAll leaves an existing directory as it was; tokens live here.
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("restrict %s: %w", dir, err)
	}
	files := &store{dir: dir, v: fileVault{dir: dir}}
	switch kind {
	case "file":
		return files, nil
	case "keyring", "auto":
		// A lookup of a name that is never stored tells a working keychain
		// (not found) from a missing one (no D-Bus, no secret service).
		_, err := keyring.Get(keyringService, "mcpwrap probe")
		if err == nil || errors.Is(err, keyring.ErrNotFound) {
			return &store{dir: dir, v: keyringVault{}}, nil
		}
		if kind == "keyring" {
			return nil, fmt.Errorf("%w: %w", errNoKeyring, err)
		}
		return files, nil
	}
	return nil, fmt.Errorf("unknown token store %q", kind)
}

// storeKey names the record of a remote URL; a digest keeps file names
// short and free of the URL's punctuation.
func storeKey(remote string) string {
	sum := sha256.Sum256([]byte(remote))
	return hex.EncodeToString(sum[:12])
}

// load reads the record of remote without taking the lock; a record is
// always written whole, so this sees either the old one or the new one.
func (st *store) load(remote string) (*record, error) {
	return st.v.load(storeKey(remote))
}

// update runs fn on the record of remote while holding the lock that every
// shim for remote takes, reading the record afresh first, since another
// shim may have changed it; fn's changes are saved before the lock is let go.
// fn reports whether it changed the record.
func (st *store) update(remote string, fn func(r *record) (bool, error)) error {
	key := storeKey(remote)
	unlock, err := st.lock(key)
	if err != nil {
		return err
	}
	defer unlock()
	r, err := st.v.load(key)
	if err != nil {
		return err
	}
	if r == nil {
		r = &record{}
	}
	if r.Grants == nil {
		r.Grants = map[string]*grant{}
	}
	changed, err := fn(r)
	if !changed {
		return err
	}
	// fn may change the record and fail too: a refused refresh clears the
	// tokens it refused, and that must stick.
	var serr error
	if len(r.Grants) == 0 {
		serr = st.v.remove(key)
	} else {
		serr = st.v.save(key, r)
	}
	return errors.Join(err, serr)
}

// forget removes everything stored for remote.
func (st *store) forget(remote string) error {
	key := storeKey(remote)
	unlock, err := st.lock(key)
	if err != nil {
		return err
	}
	defer unlock()
	return st.v.remove(key)
}

// lock takes the lock on key's record. The lock file holds nothing; the
// lock is the operating system's, so a shim that dies holding it lets it go.
func (st *store) lock(key string) (func(), error) {
	f, err := os.OpenFile(filepath.Join(st.dir, key+".lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock: %w", err)
	}
	if err := lockFile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", f.Name(), err)
	}
	return func() {
		_ = unlockFile(f)
		f.Close()
	}, nil
}

// fileVault keeps each record in a file of its own, readable by the user
// alone.
type fileVault struct{ dir string }

func (fv fileVault) path(key string) string { return filepath.Join(fv.dir, key+".json") }

func (fv fileVault) where() string { return fv.dir }

func (fv fileVault) load(key string) (*record, error) {
	b, err := os.ReadFile(fv.path(key))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read token file: %w", err)
	}
	var r record
	if err := json.Unmarshal(b, &r); err != nil {
		// Never quote the content: it holds tokens.
		return nil, fmt.Errorf("token file %s is damaged; run mcpwrap proxy logout", fv.path(key))
	}
	return &r, nil
}

// save writes a new file and renames it over the old one, so a reader or a
// crash never meets half a file.
func (fv fileVault) save(key string, r *record) error {
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode tokens: %w", err)
	}
	f, err := os.CreateTemp(fv.dir, key+".*.tmp")
	if err != nil {
		return fmt.Errorf("save tokens: %w", err)
	}
	defer os.Remove(f.Name()) // fails harmlessly once renamed
	// CreateTemp makes the file 0600 already; say so for umasks and
	// platforms where that is not the default.
	if runtime.GOOS != "windows" {
		if err := f.Chmod(0o600); err != nil {
			f.Close()
			return fmt.Errorf("save tokens: %w", err)
		}
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("save tokens: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("save tokens: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("save tokens: %w", err)
	}
	if err := os.Rename(f.Name(), fv.path(key)); err != nil {
		return fmt.Errorf("save tokens: %w", err)
	}
	return nil
}

func (fv fileVault) remove(key string) error {
	if err := os.Remove(fv.path(key)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove tokens: %w", err)
	}
	return nil
}

// keyringVault keeps each record as one secret in the OS keychain.
type keyringVault struct{}

func (keyringVault) where() string { return "the OS keychain" }

func (keyringVault) load(key string) (*record, error) {
	s, err := keyring.Get(keyringService, key)
	if errors.Is(err, keyring.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read keychain: %w", err)
	}
	var r record
	if err := json.Unmarshal([]byte(s), &r); err != nil {
		return nil, errors.New("keychain entry is damaged; run mcpwrap proxy logout")
	}
	return &r, nil
}

func (keyringVault) save(key string, r *record) error {
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode tokens: %w", err)
	}
	if err := keyring.Set(keyringService, key, string(b)); err != nil {
		if errors.Is(err, keyring.ErrSetDataTooBig) {
			// Windows' credential manager holds 2.5 KB a secret.
			return fmt.Errorf("save to keychain: %w; use --token-store file", err)
		}
		return fmt.Errorf("save to keychain: %w", err)
	}
	return nil
}

func (keyringVault) remove(key string) error {
	if err := keyring.Delete(keyringService, key); err != nil && !errors.Is(err, keyring.ErrNotFound) {
		return fmt.Errorf("remove from keychain: %w", err)
	}
	return nil
}
