package auth

import (
	"encoding/json"
	"net/http"

	"github.com/mcpwrap/mcpwrap/internal/httpx"
	"github.com/modelcontextprotocol/go-sdk/oauthex"
)

// wellKnownResource is where RFC 9728 puts Protected Resource Metadata.
const wellKnownResource = "/.well-known/oauth-protected-resource"

// MetadataURL is where the challenges send clients for the resource's
// metadata: the path-suffixed form, under the public URL.
func (o *OAuth) MetadataURL() string { return o.metadataURL }

// MetadataPaths are the paths the metadata document is served at: the
// path-suffixed form RFC 9728 derives from the resource, and the bare one
// some clients try first.
func (o *OAuth) MetadataPaths() []string {
	return []string{wellKnownResource + o.opts.Path, wellKnownResource}
}

// Metadata is the Protected Resource Metadata document (RFC 9728).
func (o *OAuth) Metadata() oauthex.ProtectedResourceMetadata {
	return oauthex.ProtectedResourceMetadata{
		Resource:               o.resource,
		AuthorizationServers:   []string{o.opts.Issuer},
		ScopesSupported:        o.Scopes(),
		BearerMethodsSupported: []string{"header"},
		ResourceName:           o.opts.ResourceName,
	}
}

// MetadataHandler serves the metadata document at whatever path it is
// mounted on (see MetadataPaths), to any Host: the document names the
// public URL, not the Host a proxy delivered the request with. Browsers
// may read it from any origin; it is public.
func (o *OAuth) MetadataHandler() http.Handler {
	doc, err := json.Marshal(o.Metadata())
	if err != nil {
		panic(err) // a struct of strings always marshals
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !httpx.ReadOnly(w, r) {
			return
		}
		w.Header().Set("Access-Control-Allow-Origin", "*")
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "public, max-age=300")
		if r.Method == http.MethodHead {
			return
		}
		_, _ = w.Write(doc)
	})
}
