package session

import "testing"

func TestIDsNameTheirMachine(t *testing.T) {
	if id := newID(""); MachineOf(id) != "" || len(id) != 36 {
		t.Errorf("without a machine: %q names %q", id, MachineOf(id))
	}
	if id := newID("148e21df423e89"); MachineOf(id) != "148e21df423e89" {
		t.Errorf("%q names %q", id, MachineOf(id))
	}
	for _, id := range []string{"", ".x", "UPPER.x", "a-b.x", "nodot", "0123456789abcdef0123456789abcdef0.x"} {
		if m := MachineOf(id); m != "" {
			t.Errorf("MachineOf(%q) = %q, want none", id, m)
		}
	}
	for _, c := range newID("m1") {
		if c < 0x21 || c > 0x7e {
			t.Fatalf("session id has %q, outside visible ASCII", c)
		}
	}
}
