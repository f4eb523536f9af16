// Package testkit is what the end-to-end tests of several packages share:
// building the real programs once, and reading what /proc says of a
// process. Tests only; nothing in mcpwrap itself imports it.
package testkit

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"testing"
	"time"
)

// The programs the end-to-end tests run, by import path.
const (
	Mcpwrap    = "github.com/mcpwrap/mcpwrap"
	Everything = "github.com/mcpwrap/mcpwrap/examples/everything"
)

// Build compiles each package into dir and returns the binaries' paths, in
// the order given. Import paths work from any folder of the module.
func Build(dir string, pkgs ...string) ([]string, error) {
	bins := make([]string, len(pkgs))
	for i, pkg := range pkgs {
		bins[i] = filepath.Join(dir, path.Base(pkg))
		out, err := exec.Command("go", "build", "-o", bins[i], pkg).CombinedOutput()
		if err != nil {
			return nil, fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
		}
	}
	return bins, nil
}

// Alive reports whether a process exists and is not a zombie.
func Alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(b, ')')
	return i > 0 && len(b) > i+2 && b[i+2] != 'Z'
}

// Eventually polls cond until it holds, and fails t if a generous deadline
// passes first. Tests wait with it; they never assert how long things take.
func Eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
