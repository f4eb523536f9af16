package deploy_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// replayLimit is the largest request body the Fly.io proxy replays; a larger
// one it can only pass on to the Machine it first chose.
const replayLimit = 1 << 20

// router stands in for the Fly.io proxy in front of several Machines of one
// app. It sends each request to the Machine pick chooses, or to the one a
// fly-force-instance-id request header names. When the answer carries
// fly-replay: instance=<id>, it discards that answer and re-delivers the
// same request to that Machine, adding fly-replay-src: instance=<from>;...
// A replayed request is never replayed again, a body over 1 MB cannot be
// replayed, and neither can one to a Machine that does not exist: each of
// those is an error answer from the router, never the app's own.
type router struct {
	machines map[string]string // Machine id → base URL

	mu      sync.Mutex // guards the fields below
	pick    func(r *http.Request) string
	replays []replay
}

// replay records one re-delivery, for the tests to assert on.
type replay struct {
	Method, From, To string
	Status           int // of the replayed request; 0 when it failed
}

func newRouter(machines map[string]string, pick func(*http.Request) string) *router {
	return &router{machines: machines, pick: pick}
}

// serve puts the router on a loopback listener for the rest of the test and
// returns its URL. At the end, open streams are cut rather than waited for.
func (rt *router) serve(t *testing.T) string {
	front := httptest.NewServer(rt)
	t.Cleanup(func() {
		front.CloseClientConnections()
		front.Close()
	})
	return front.URL
}

func (rt *router) replayed() []replay {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return append([]replay(nil), rt.replays...)
}

func (rt *router) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// Hold up to the replay limit; a longer body streams through unheld.
	held, err := io.ReadAll(io.LimitReader(r.Body, replayLimit+1))
	if err != nil {
		http.Error(w, "router: reading the request: "+err.Error(), http.StatusBadGateway)
		return
	}
	tooBig := len(held) > replayLimit
	body := io.Reader(bytes.NewReader(held))
	if tooBig {
		body = io.MultiReader(bytes.NewReader(held), r.Body)
	}

	rt.mu.Lock()
	first := rt.pick(r)
	rt.mu.Unlock()
	if m := r.Header.Get("Fly-Force-Instance-Id"); m != "" {
		first = m
	}
	resp, err := rt.send(r, first, body, "")
	if err != nil {
		http.Error(w, "router: "+err.Error(), http.StatusBadGateway)
		return
	}
	if to := replayTarget(resp.Header.Get("Fly-Replay")); to != "" {
		resp.Body.Close()
		resp, err = rt.replay(r, first, to, held, tooBig)
		if err != nil {
			http.Error(w, "router: "+err.Error(), http.StatusBadGateway)
			return
		}
	}
	defer resp.Body.Close()
	for k, vs := range resp.Header {
		w.Header()[k] = vs
	}
	w.WriteHeader(resp.StatusCode)
	// Stream as it comes, headers first: SSE responses are long-lived, and
	// a client may wait for a stream's headers before it goes on.
	flusher, _ := w.(http.Flusher)
	if flusher != nil {
		flusher.Flush()
	}
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return
			}
			if flusher != nil {
				flusher.Flush()
			}
		}
		if err != nil {
			return
		}
	}
}

// replay re-delivers a request that from answered with fly-replay, and
// records it, once the replayed request has its answer's headers.
func (rt *router) replay(r *http.Request, from, to string, held []byte, tooBig bool) (*http.Response, error) {
	rec := replay{Method: r.Method, From: from, To: to}
	defer func() {
		rt.mu.Lock()
		rt.replays = append(rt.replays, rec)
		rt.mu.Unlock()
	}()
	if tooBig {
		return nil, fmt.Errorf("a request over 1 MB cannot be replayed")
	}
	src := fmt.Sprintf("instance=%s;t=%d", from, time.Now().UnixMicro())
	resp, err := rt.send(r, to, bytes.NewReader(held), src)
	if err != nil {
		return nil, fmt.Errorf("replay: %w", err)
	}
	if resp.Header.Get("Fly-Replay") != "" {
		resp.Body.Close()
		return nil, fmt.Errorf("a replayed request asked to be replayed again")
	}
	rec.Status = resp.StatusCode
	return resp, nil
}

// send delivers r, with body, to one Machine.
func (rt *router) send(r *http.Request, machine string, body io.Reader, replaySrc string) (*http.Response, error) {
	base, ok := rt.machines[machine]
	if !ok {
		return nil, fmt.Errorf("no Machine %q in this app", machine)
	}
	out, err := http.NewRequestWithContext(r.Context(), r.Method, base+r.URL.RequestURI(), body)
	if err != nil {
		return nil, err
	}
	out.Header = r.Header.Clone()
	out.Header.Del("Fly-Force-Instance-Id")
	out.Header.Del("Fly-Replay-Src") // only the proxy sets it
	if replaySrc != "" {
		out.Header.Set("Fly-Replay-Src", replaySrc)
	}
	if r.ContentLength >= 0 {
		out.ContentLength = r.ContentLength
	}
	if r.Method == http.MethodGet || r.Method == http.MethodDelete || r.Method == http.MethodHead {
		if r.ContentLength <= 0 {
			out.Body, out.ContentLength = nil, 0
		}
	}
	return http.DefaultTransport.RoundTrip(out)
}

// replayTarget is the instance field of a fly-replay header value, or "".
// Fields are key=value pairs separated by semicolons; values may be quoted.
func replayTarget(header string) string {
	for field := range strings.SplitSeq(header, ";") {
		k, v, ok := strings.Cut(strings.TrimSpace(field), "=")
		if ok && strings.EqualFold(k, "instance") {
			return strings.Trim(v, `"`)
		}
	}
	return ""
}
