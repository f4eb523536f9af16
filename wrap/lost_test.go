package wrap

import (
	"encoding/json"
	"testing"

	"github.com/mcpwrap/mcpwrap/session"
)

// A cut reply answers, with an error, exactly the requests its held
// responses do not.
func TestLostAnswersNameWhatHeldResponsesDoNot(t *testing.T) {
	held := []session.Event{{ID: 1, Outbound: session.Outbound{Data: []byte(`{"jsonrpc":"2.0","id":"a","result":{}}`), Response: true}}}
	ids := [][]byte{[]byte(`"a"`), []byte(`7`), []byte(`"c"`)}
	got := lostAnswers(ids, held)
	if len(got) != 2 {
		t.Fatalf("%d answers, want errors for the two requests held responses do not answer", len(got))
	}
	for i, want := range []string{`7`, `"c"`} {
		var m struct {
			ID    json.RawMessage
			Error *struct{ Code int }
		}
		if err := json.Unmarshal(got[i], &m); err != nil || string(m.ID) != want || m.Error == nil {
			t.Errorf("answer %d: %s, want an error for id %s", i, got[i], want)
		}
	}
	if got := lostAnswers(ids[:1], held); len(got) != 0 {
		t.Errorf("%d answers for a request already answered", len(got))
	}
}
