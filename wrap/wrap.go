// Package wrap is mcpwrap's HTTP front door: the Streamable HTTP endpoint
// (protocol versions 2025-03-26 to 2025-11-25), the deprecated HTTP+SSE
// endpoints (2024-11-05), bearer-token auth, Origin checks and the health
// endpoint. Everything behind the door — child processes and message
// routing — belongs to package session.
package wrap

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/mcpwrap/mcpwrap/session"
	"github.com/rs/zerolog"
)

// Options configure the front door.
type Options struct {
	Path           string   // Streamable HTTP endpoint
	SSEPath        string   // HTTP+SSE stream endpoint
	MessagePath    string   // HTTP+SSE message endpoint
	Tokens         []string // accepted bearer tokens; none means no auth
	AllowedOrigins []string // besides loopback origins; "*" allows any
	MaxMessage     int      // largest request body
	KeepAlive      time.Duration
	RequestTimeout time.Duration // 0: wait for the child as long as the client does
}

// Handler serves every endpoint on one listener.
type Handler struct {
	opts    Options
	reg     *session.Registry
	log     zerolog.Logger
	digests [][sha256.Size]byte
	mux     *http.ServeMux
}

// New builds the handler.
func New(opts Options, reg *session.Registry, log zerolog.Logger) *Handler {
	if opts.KeepAlive <= 0 {
		opts.KeepAlive = 25 * time.Second
	}
	h := &Handler{opts: opts, reg: reg, log: log, mux: http.NewServeMux()}
	for _, t := range opts.Tokens {
		h.digests = append(h.digests, sha256.Sum256([]byte(t)))
	}
	h.mux.HandleFunc("/healthz", h.health)
	h.mux.Handle(opts.Path, h.guard(http.HandlerFunc(h.streamable)))
	h.mux.Handle(opts.SSEPath, h.guard(http.HandlerFunc(h.sseStream)))
	h.mux.Handle(opts.MessagePath, h.guard(http.HandlerFunc(h.sseMessage)))
	return h
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mux.ServeHTTP(w, r)
}

// guard runs the checks every MCP request passes before anything else:
// Origin first (a browser page must not even learn whether a token is
// right), then the bearer token.
func (h *Handler) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if origin := r.Header.Get("Origin"); origin != "" && !h.originAllowed(origin) {
			h.log.Warn().Str("origin", origin).Str("remote", r.RemoteAddr).Msg("refused a foreign Origin")
			writeError(w, http.StatusForbidden, nil, codeBadRequest, "Forbidden: Origin "+origin+" is not allowed")
			return
		}
		if !h.authorized(r) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="mcpwrap"`)
			writeError(w, http.StatusUnauthorized, nil, codeBadRequest, "Unauthorized: a valid bearer token is required")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// authorized compares the presented token with every configured one, in
// constant time and without stopping at the first match, so that neither
// the token nor which token matched leaks through timing.
func (h *Handler) authorized(r *http.Request) bool {
	if len(h.digests) == 0 {
		return true
	}
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	got := sha256.Sum256([]byte(strings.TrimSpace(token)))
	match := 0
	for _, d := range h.digests {
		match |= subtle.ConstantTimeCompare(got[:], d[:])
	}
	return match == 1
}

// originAllowed accepts loopback origins (local tools such as the MCP
// Inspector) and the configured ones. Everything else a browser sends is a
// page from elsewhere, possibly rebinding DNS to reach this server.
func (h *Handler) originAllowed(origin string) bool {
	for _, o := range h.opts.AllowedOrigins {
		if o == "*" || strings.EqualFold(strings.TrimSuffix(o, "/"), origin) {
			return true
		}
	}
	u, err := url.Parse(origin)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return false
	}
	return isLoopbackHost(u.Hostname())
}

func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// health answers whether a new session could be served now: not shutting
// down, below the session limit, and the wrapped command is there to run.
func (h *Handler) health(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	status, state := http.StatusOK, "ok"
	var problem string
	if err := h.reg.Healthy(); err != nil {
		status, state, problem = http.StatusServiceUnavailable, "unavailable", err.Error()
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(struct {
		Status   string `json:"status"`
		Sessions int    `json:"sessions"`
		Problem  string `json:"problem,omitempty"`
	}{state, h.reg.Len(), problem})
}

// startStatus turns a failure to start a session into a status: full or
// shutting down is temporary (503, try again), a child that cannot run is not.
func startStatus(w http.ResponseWriter, err error) int {
	switch {
	case errors.Is(err, session.ErrTooManySessions):
		w.Header().Set("Retry-After", "5")
		return http.StatusServiceUnavailable
	case errors.Is(err, session.ErrClosed):
		w.Header().Set("Retry-After", "5")
		return http.StatusServiceUnavailable
	default:
		return http.StatusInternalServerError
	}
}
