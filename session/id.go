package session

import (
	"strings"

	"github.com/google/uuid"
)

// Session ids are "<instance>.<uuid>" when instances are in use (several
// behind one proxy, such as Fly.io Machines) and a bare UUID otherwise: a
// random one, of visible ASCII only, as the transport asks. The instance
// part lets any instance tell where a session lives without asking anyone.

// newID makes a fresh session id naming machineID.
func newID(machineID string) string {
	if machineID == "" {
		return uuid.NewString()
	}
	return machineID + "." + uuid.NewString()
}

// MachineOf is the instance a session id names, or "" when it names none.
// Instance ids are short lowercase alphanumerics (Fly.io Machine ids are 14
// hex digits).
func MachineOf(id string) string {
	m, _, ok := strings.Cut(id, ".")
	if !ok || !ValidMachineID(m) {
		return ""
	}
	return m
}

// ValidMachineID reports whether m can be an instance id: 1 to 32 lowercase
// letters and digits. Anything else read from a client (a session id, a
// requestState) must not reach a Fly-Replay header, where it could add
// fields of its own.
func ValidMachineID(m string) bool {
	if m == "" || len(m) > 32 {
		return false
	}
	for _, c := range m {
		if (c < '0' || c > '9') && (c < 'a' || c > 'z') {
			return false
		}
	}
	return true
}
