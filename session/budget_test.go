package session

import (
	"strings"
	"testing"

	"github.com/mcpwrap/mcpwrap/child"
	"github.com/mcpwrap/mcpwrap/internal/testkit"
	"github.com/mcpwrap/mcpwrap/jsonrpc"
)

// A child that fills its session's stream past the byte budget while
// nobody listens, then answers two requests, then says so on the stream.
const sessStreamFiller = `pad=$(head -c 2000 /dev/zero | tr '\0' x)
i=0
while [ $i -lt 40 ]; do
	printf '{"jsonrpc":"2.0","method":"notifications/resources/updated","params":{"uri":"%s"}}\n' "$pad"
	i=$((i+1))
done
for n in 1 2; do
	read -r line
	id=$(printf '%s' "$line" | sed 's/.*"id":\([0-9]*\).*/\1/')
	printf '{"jsonrpc":"2.0","id":%s,"result":{"pad":"%s"}}\n' "$id" "$pad"
done
printf '{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}\n'
cat >/dev/null # stdout stays open: the session lives on`

// When the session's own stream holds its whole byte budget, the responses
// to a batch still reach the reply that waits for them: the stream's
// oldest messages, which nobody has asked for yet, make room. (A reply's
// first message always fits; the second needs the room.)
func TestAReplyTakesRoomFromTheSessionsStream(t *testing.T) {
	opts := sessOptions
	opts.MaxQueue = 0 // bounded by bytes alone
	cmd := child.Command{Path: "/bin/sh", Args: []string{"-c", sessStreamFiller}, Env: []string{"PATH=/usr/bin:/bin"}}
	s := sessStartWith(t, opts, Streamable, cmd)

	ex, err := s.Send(t.Context(), []jsonrpc.Message{
		sessMsg(t, `{"jsonrpc":"2.0","id":"r-1","method":"tools/call"}`),
		sessMsg(t, `{"jsonrpc":"2.0","id":"r-2","method":"tools/call"}`),
	})
	if err != nil {
		t.Fatal(err)
	}
	// Nothing reads the reply until both responses were routed: a read
	// would free the first and leave room for the second.
	testkit.Eventually(t, "the child's last message on the stream", func() bool {
		evs, _, _ := s.stream.After(0)
		return len(evs) > 0 && strings.Contains(string(evs[len(evs)-1].Data), "list_changed")
	})
	got := sessCollect(t, ex)
	if len(got) != 2 || !got[0].Response || !got[1].Response {
		t.Fatalf("reply got %d messages, want its two responses", len(got))
	}
	if n := s.stream.Len(); n == 0 || n >= 41 {
		t.Errorf("the stream holds %d of 41 notifications; want the oldest gone and the newest kept", n)
	}
	// A reply's first message is taken whether it fits or not; beyond
	// that, the budget holds.
	if used, over := s.queued.Used(), int64(sessQueueBytes+2100); used > over {
		t.Errorf("%d bytes queued, over the session's budget and one message (%d)", used, over)
	}
}
