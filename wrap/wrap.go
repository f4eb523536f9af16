// Package wrap is mcpwrap's HTTP front door: the Streamable HTTP endpoint
// (protocol versions 2025-03-26 to 2025-11-25 with sessions, and 2026-07-28
// without, checked here and served by package bridge), the deprecated HTTP+SSE
// endpoints (2024-11-05), Origin checks, session affinity across instances
// (fly-replay), and the health and metrics endpoints. Who a request comes
// from is package auth's to say; everything behind the door — child
// processes and message routing — belongs to package session.
package wrap

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/mcpwrap/mcpwrap/auth"
	"github.com/mcpwrap/mcpwrap/internal/httpx"
	"github.com/mcpwrap/mcpwrap/metrics"
	"github.com/mcpwrap/mcpwrap/session"
	"github.com/rs/zerolog"
	"golang.org/x/sync/semaphore"
)

// Options configure the front door.
type Options struct {
	Path        string // Streamable HTTP endpoint
	SSEPath     string // HTTP+SSE stream endpoint
	MessagePath string // HTTP+SSE message endpoint
	// Auth says who each request comes from; nil lets everyone in (an
	// instance on loopback without a token).
	Auth           Authenticator
	AllowedOrigins []string // besides loopback origins; "*" allows any
	MaxMessage     int      // largest request body
	// MaxBodyBytes bounds the request-body bytes held at once across all
	// requests (0: no bound); beyond it a request gets 503 + Retry-After.
	MaxBodyBytes int64
	// BodyTimeout bounds reading one request body (0: no bound), so that a
	// client trickling a body cannot hold a connection forever.
	BodyTimeout time.Duration
	// Hosts are the host names this server answers to when nobody needs a
	// token (Auth is nil), besides IP addresses and localhost: a page that
	// rebinds its own name to 127.0.0.1 then still cannot reach it.
	Hosts     []string
	KeepAlive time.Duration
	// SSERetry is the reconnection delay (retry:) the /mcp streams give
	// their clients; 0 sends none.
	SSERetry time.Duration
	// SSEPollAfter, when set, closes a reply's stream of protocol
	// 2025-11-25 after this long, and a resumed one too: the client
	// resumes by GET, and no connection stays open longer.
	SSEPollAfter   time.Duration
	RequestTimeout time.Duration // 0: wait for the child as long as the client does
	// SlowReaderTimeout bounds each write to a client (0: no bound): a
	// client that stops reading its stream is cut after it.
	SlowReaderTimeout time.Duration
	// MaxBatch is the most messages one JSON-RPC batch may hold (0: no
	// bound); a longer one is refused with 400.
	MaxBatch int
	// MachineID names this instance among several behind one proxy (Fly.io's
	// FLY_MACHINE_ID). Session ids then start with it, and a request for a
	// session another instance owns is sent there with a fly-replay header.
	MachineID string
	// Stateless, when set, serves requests of protocol 2026-07-28 (package
	// bridge); without it they get the stateful era's answer.
	Stateless Stateless
	// Metrics, when set, counts requests and is served at /metrics behind
	// the same token as the MCP endpoints (see also MetricsHandler).
	Metrics *metrics.Metrics
}

// An Authenticator decides who sent a request. It refuses one with an
// *auth.Refusal, which carries the status and challenge the client gets.
type Authenticator interface {
	Authenticate(r *http.Request) (auth.Principal, error)
}

// Sessions is what the front door needs of the session registry.
type Sessions interface {
	Start(context.Context, session.Transport, session.Owner) (*session.Session, error)
	Get(id string) (*session.Session, error)
	Len() int
	Full() bool
	Healthy() error
}

// Handler serves every endpoint on one listener.
type Handler struct {
	opts   Options
	reg    Sessions
	log    zerolog.Logger
	mux    *http.ServeMux
	bodies *semaphore.Weighted // MaxBodyBytes; nil for no bound
	primes atomic.Int64        // serial of priming events (see prime)
}

// New builds the handler.
func New(opts Options, reg Sessions, log zerolog.Logger) *Handler {
	if opts.KeepAlive <= 0 {
		opts.KeepAlive = 25 * time.Second
	}
	h := &Handler{opts: opts, reg: reg, log: log, mux: http.NewServeMux(), bodies: newBodyBudget(opts.MaxBodyBytes)}
	h.mux.HandleFunc("/healthz", h.health)
	h.mux.Handle(opts.Path, h.guard(observe(opts.Metrics, http.HandlerFunc(h.endpoint))))
	h.mux.Handle(opts.SSEPath, h.guard(observe(opts.Metrics, http.HandlerFunc(h.sseStream))))
	h.mux.Handle(opts.MessagePath, h.guard(observe(opts.Metrics, http.HandlerFunc(h.sseMessage))))
	if opts.Metrics != nil {
		h.mux.Handle("/metrics", h.guard(h.adminOnly(MetricsHandler(opts.Metrics))))
	}
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
		if site := r.Header.Get("Sec-Fetch-Site"); h.opts.Auth == nil && r.Header.Get("Origin") == "" && (site == "cross-site" || site == "same-site") {
			// A page elsewhere that embeds a URL (an <img> or <script>
			// sends no Origin) must not start children of a server nobody
			// needs a token for; the browser says where it comes from. A
			// request with an Origin was judged by it above (local tools
			// such as the Inspector send theirs).
			writeError(w, http.StatusForbidden, nil, codeBadRequest, "Forbidden: requests from other sites are not served without a token")
			return
		}
		if h.opts.Auth == nil && !h.hostAllowed(r.Host) {
			// Without a token, the address is the only protection: a page
			// whose name was rebound to this address must not get in.
			h.log.Warn().Str("host", r.Host).Str("remote", r.RemoteAddr).Msg("refused a request for a foreign Host")
			writeError(w, http.StatusForbidden, nil, codeBadRequest, "Forbidden: Host "+r.Host+" is not served here")
			return
		}
		who, err := h.authenticate(r)
		if err != nil {
			status, challenge := http.StatusUnauthorized, `Bearer realm="mcpwrap"`
			var ref *auth.Refusal
			if errors.As(err, &ref) {
				status, challenge = ref.Status, ref.Challenge
			}
			if status >= 500 {
				// Not the client's fault: the operator needs to know why.
				cause := err
				if ref != nil && ref.Cause != nil {
					cause = ref.Cause
				}
				h.log.Warn().Err(cause).Int("status", status).Msg("cannot authenticate requests")
			} else {
				h.log.Debug().Str("remote", r.RemoteAddr).Int("status", status).Str("why", err.Error()).Msg("refused a request")
			}
			if challenge != "" {
				w.Header().Set("WWW-Authenticate", challenge)
			}
			// Nobody who has not shown a credential keeps a connection.
			w.Header().Set("Connection", "close")
			writeError(w, status, nil, codeBadRequest, http.StatusText(status)+": "+err.Error())
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, who)))
	})
}

type principalKey struct{}

// principalOf is who a request authenticated as (empty without auth).
func principalOf(r *http.Request) auth.Principal {
	p, _ := r.Context().Value(principalKey{}).(auth.Principal)
	return p
}

// ownerOf is whom the sessions a request opens belong to: the tenant and,
// when signed in by OAuth, the one user of it.
func ownerOf(r *http.Request) session.Owner {
	p := principalOf(r)
	return session.Owner{Tenant: p.Tenant, User: p.Subject, Env: p.Env}
}

// authenticate asks the authenticator who sent r.
func (h *Handler) authenticate(r *http.Request) (auth.Principal, error) {
	if h.opts.Auth == nil {
		return auth.Principal{}, nil
	}
	return h.opts.Auth.Authenticate(r)
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

// hostAllowed accepts a Host that no DNS answer can have pointed here
// behind the user's back: an IP address, localhost, or a configured name.
func (h *Handler) hostAllowed(hostport string) bool {
	host := hostport
	if hp, _, err := net.SplitHostPort(hostport); err == nil {
		host = hp
	}
	host = strings.TrimSuffix(strings.Trim(host, "[]"), ".")
	if host == "" || net.ParseIP(host) != nil {
		return true // HTTP/1.0 without Host, or an address
	}
	if strings.EqualFold(host, "localhost") || strings.HasSuffix(strings.ToLower(host), ".localhost") {
		return true // resolved to loopback by the client itself (RFC 6761)
	}
	for _, allowed := range h.opts.Hosts {
		if strings.EqualFold(host, allowed) {
			return true
		}
	}
	return false
}

func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// find returns the live session a request names, when the request's token
// owns it and it belongs to this door's transport.
// Otherwise it answers the request itself: a session another instance owns
// is replayed there (fly-replay), and anything else is 404, which tells the
// client to start a new session. Another tenant's session is 404 too: its
// existence is none of this client's business.
func (h *Handler) find(w http.ResponseWriter, r *http.Request, id string, t session.Transport) (*session.Session, bool) {
	s, err := h.reg.Get(id)
	if err == nil && s.BelongsTo(ownerOf(r)) && s.Transport() == t {
		return s, true
	}
	if err != nil {
		if m := session.MachineOf(id); h.opts.MachineID != "" && m != "" && m != h.opts.MachineID && r.Header.Get("Fly-Replay-Src") == "" {
			// The proxy re-delivers the request to that instance; the body
			// of this answer is for anyone who calls without a proxy.
			w.Header().Set("Fly-Replay", "instance="+m)
			writeError(w, http.StatusMisdirectedRequest, nil, codeBadRequest, "Misdirected Request: the session lives on instance "+m)
			return nil, false
		}
	}
	writeError(w, http.StatusNotFound, nil, codeSessionNotFound, "Session not found")
	return nil, false
}

// health answers whether this instance can serve: 200 while it runs and
// the wrapped command is there, 503 when it is shutting down or cannot start
// children. A full instance is still healthy — it serves the sessions it
// holds, and a health check that took it out of rotation would cut them off
// — so fullness is reported, not failed: a new session gets 503 with
// Retry-After from initialize itself.
func (h *Handler) health(w http.ResponseWriter, r *http.Request) {
	if !httpx.ReadOnly(w, r) {
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
		Full     bool   `json:"full"`
		Problem  string `json:"problem,omitempty"`
	}{state, h.reg.Len(), h.reg.Full(), problem})
}

// adminOnly lets through the deployment's own token, or anyone where no
// token is needed: the figures name every tenant, which no tenant may see
// of the others. (MCPWRAP_METRICS_LISTEN serves them without a token, on
// an address meant to be private.)
func (h *Handler) adminOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h.opts.Auth != nil && !principalOf(r).Admin {
			writeError(w, http.StatusForbidden, nil, codeBadRequest, "Forbidden: /metrics needs the deployment's token (MCPWRAP_TOKEN) or MCPWRAP_METRICS_LISTEN")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// MetricsHandler serves m in the Prometheus text format.
func MetricsHandler(m *metrics.Metrics) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !httpx.ReadOnly(w, r) {
			return
		}
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		_, _ = m.WriteTo(w)
	})
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
	case errors.Is(err, session.ErrStartsBusy):
		w.Header().Set("Retry-After", "1")
		return http.StatusServiceUnavailable
	case outOfDescriptors(err):
		w.Header().Set("Retry-After", "1")
		return http.StatusServiceUnavailable
	default:
		return http.StatusInternalServerError
	}
}
