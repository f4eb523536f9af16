package auth

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/oauthex"
)

// maxDocument bounds what is read of a metadata, JWKS or introspection
// answer.
const maxDocument = 1 << 20

// errNotFound marks a metadata location the issuer does not serve.
var errNotFound = errors.New("not found")

// fetchServerMetadata reads an issuer's metadata where RFC 8414 puts it,
// then where OpenID Connect Discovery does, and checks that it describes
// that issuer (RFC 8414 §3.3).
func fetchServerMetadata(ctx context.Context, client *http.Client, issuer string) (*oauthex.AuthServerMeta, error) {
	u, err := url.Parse(issuer)
	if err != nil {
		return nil, err
	}
	path := strings.TrimSuffix(u.Path, "/")
	at := func(p string) string {
		v := *u
		v.Path, v.RawPath = p, ""
		return v.String()
	}
	locations := []string{
		at("/.well-known/oauth-authorization-server" + path),
		at(path + "/.well-known/openid-configuration"),
	}
	if path != "" {
		locations = append(locations, at("/.well-known/openid-configuration"+path))
	}
	var tried []string
	for _, loc := range locations {
		var meta oauthex.AuthServerMeta
		err := getJSON(ctx, client, loc, &meta)
		if errors.Is(err, errNotFound) {
			tried = append(tried, loc)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", loc, err)
		}
		if meta.Issuer != issuer {
			return nil, fmt.Errorf("%s describes issuer %q, not %q", loc, meta.Issuer, issuer)
		}
		return &meta, nil
	}
	return nil, fmt.Errorf("no metadata at %s", strings.Join(tried, " or "))
}

// getJSON reads a JSON document; a 404 or 410 is errNotFound.
func getJSON(ctx context.Context, client *http.Client, loc string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, loc, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone {
		return errNotFound
	}
	return decodeJSON(resp, v)
}

// decodeJSON reads a 200 response holding a JSON document.
func decodeJSON(resp *http.Response, v any) error {
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %s", resp.Status)
	}
	if mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return fmt.Errorf("content type %q is not application/json", resp.Header.Get("Content-Type"))
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxDocument)).Decode(v); err != nil {
		return fmt.Errorf("decoding: %w", err)
	}
	return nil
}

// jwksRefresh is the least time between two fetches of the issuer's keys.
// go-oidc fetches them again whenever a token names a key it does not hold;
// without this, every forged token with a made-up key id would cost the
// issuer a request.
const jwksRefresh = 10 * time.Second

// jwksClient fetches the issuer's keys, at most once per o.jwksRefresh:
// within it, the previous answer is replayed.
func (o *OAuth) jwksClient() *http.Client {
	base := o.client.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	return &http.Client{Timeout: o.client.Timeout, Transport: &throttled{base: base, every: o.jwksRefresh}}
}

type throttled struct {
	base  http.RoundTripper
	every time.Duration

	mu     sync.Mutex // guards the fields below, and serializes fetches
	at     time.Time
	header http.Header
	body   []byte // of the last successful fetch; nil before one
}

func (t *throttled) RoundTrip(req *http.Request) (*http.Response, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.body == nil || time.Since(t.at) >= t.every {
		resp, err := t.base.RoundTrip(req)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode != http.StatusOK {
			return resp, nil
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, maxDocument))
		resp.Body.Close()
		if err != nil {
			return nil, err
		}
		t.at, t.header, t.body = time.Now(), resp.Header.Clone(), body
	}
	return &http.Response{
		Status:        "200 OK",
		StatusCode:    http.StatusOK,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        t.header.Clone(),
		Body:          io.NopCloser(bytes.NewReader(t.body)),
		ContentLength: int64(len(t.body)),
		Request:       req,
	}, nil
}
