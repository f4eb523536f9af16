package bridge

import (
	"context"
	"encoding/json"
	"slices"
	"sync"

	"github.com/mcpwrap/mcpwrap/jsonrpc"
)

// filter is what a subscriptions/listen request opts in to.
type filter struct {
	ToolsListChanged     bool     `json:"toolsListChanged,omitempty"`
	PromptsListChanged   bool     `json:"promptsListChanged,omitempty"`
	ResourcesListChanged bool     `json:"resourcesListChanged,omitempty"`
	ResourceSubs         []string `json:"resourceSubscriptions,omitempty"`
}

func (f filter) wants(msg jsonrpc.Message) bool {
	switch msg.Method {
	case "notifications/tools/list_changed":
		return f.ToolsListChanged
	case "notifications/prompts/list_changed":
		return f.PromptsListChanged
	case "notifications/resources/list_changed":
		return f.ResourcesListChanged
	case "notifications/resources/updated":
		var p struct {
			URI string `json:"uri"`
		}
		_ = json.Unmarshal(msg.Params, &p)
		return slices.Contains(f.ResourceSubs, p.URI)
	}
	return false
}

// maxChangeNote bounds one change notification, so that a listener's
// queue (noteQueue of them) stays small in bytes too.
const maxChangeNote = 64 << 10

// listener is one open listen stream.
type listener struct {
	tenant string
	f      filter
	out    chan jsonrpc.Message
}

// hub gathers the change notifications of a tenant's legacy children for
// its listen streams.
type hub struct {
	mu        sync.Mutex // guards the fields below
	listeners map[*listener]struct{}
	closed    chan struct{}
}

func newHub() *hub {
	return &hub{listeners: map[*listener]struct{}{}, closed: make(chan struct{})}
}

func (h *hub) add(l *listener) {
	h.mu.Lock()
	h.listeners[l] = struct{}{}
	h.mu.Unlock()
}

func (h *hub) remove(l *listener) {
	h.mu.Lock()
	delete(h.listeners, l)
	h.mu.Unlock()
}

// publish hands msg to every listener of tenant that asked for it. Several
// children may report the same change; a listener drops what it cannot
// take rather than hold a child's reader up.
func (h *hub) publish(tenant string, msg jsonrpc.Message) {
	if len(msg.Raw) > maxChangeNote {
		return // no change notification is that big; it would only fill queues
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for l := range h.listeners {
		if l.tenant == tenant && l.f.wants(msg) {
			select {
			case l.out <- msg:
			default:
			}
		}
	}
}

// uris are the resources a tenant's listeners follow, which every new
// child of the tenant subscribes to.
func (h *hub) uris(tenant string) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for l := range h.listeners {
		if l.tenant == tenant {
			for _, u := range l.f.ResourceSubs {
				if !slices.Contains(out, u) {
					out = append(out, u)
				}
			}
		}
	}
	return out
}

func (h *hub) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	select {
	case <-h.closed:
	default:
		close(h.closed)
	}
}

// listen serves subscriptions/listen for a legacy child: acknowledge what
// the server can report, then relay the tenant's change notifications
// until the client leaves or the bridge closes.
func (b *Bridge) listen(ctx context.Context, p *pool, req Request, sink Sink) ([]byte, error) {
	var params struct {
		Notifications filter `json:"notifications"`
	}
	_ = json.Unmarshal(req.Msg.Params, &params)
	k, err := p.acquire(ctx, false, true)
	if err != nil {
		return nil, err
	}
	var caps struct {
		Tools     struct{ ListChanged bool } `json:"tools"`
		Prompts   struct{ ListChanged bool } `json:"prompts"`
		Resources struct {
			ListChanged bool `json:"listChanged"`
			Subscribe   bool `json:"subscribe"`
		} `json:"resources"`
	}
	_ = json.Unmarshal(k.info.Capabilities, &caps)
	want := params.Notifications
	f := filter{
		ToolsListChanged:     want.ToolsListChanged && caps.Tools.ListChanged,
		PromptsListChanged:   want.PromptsListChanged && caps.Prompts.ListChanged,
		ResourcesListChanged: want.ResourcesListChanged && caps.Resources.ListChanged,
	}
	if caps.Resources.Subscribe {
		f.ResourceSubs = want.ResourceSubs
	}
	l := &listener{tenant: req.Tenant, f: f, out: make(chan jsonrpc.Message, noteQueue)}
	b.hub.add(l)
	defer b.hub.remove(l)
	for _, uri := range f.ResourceSubs {
		b.subscribeAll(ctx, req.Tenant, uri)
	}

	ack, _ := json.Marshal(map[string]any{"notifications": f, "_meta": map[string]any{metaSubscription: json.RawMessage(req.Msg.ID)}})
	if err := sink(notification("notifications/subscriptions/acknowledged", ack)); err != nil {
		return nil, err
	}
	for {
		select {
		case m := <-l.out:
			if err := sink(withMeta(m, metaSubscription, req.Msg.ID)); err != nil {
				return nil, err
			}
		case <-b.hub.closed:
			return listenEnd(req.Msg.ID), nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// subscribeAll subscribes every live child of a tenant to uri.
func (b *Bridge) subscribeAll(ctx context.Context, tenant, uri string) {
	var all []*conn
	b.mu.Lock()
	for key, p := range b.pools {
		if key.tenant == tenant {
			all = append(all, p.conns...)
		}
	}
	b.mu.Unlock()
	params, _ := json.Marshal(map[string]string{"uri": uri})
	for _, k := range all {
		_, _ = k.roundTrip(ctx, request("resources/subscribe", params))
	}
}
