// Package testkit is what the end-to-end tests of several packages share:
// building the real programs once, running mcpwrap as a process and reading
// its JSON log, talking to it with the official Go SDK client or by hand,
// and reading what /proc says of a process. Tests only; nothing in mcpwrap
// itself imports it.
package testkit

import (
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sync"
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

// The binaries Programs built, once per test binary, and where.
var programs struct {
	once                sync.Once
	dir                 string
	mcpwrap, everything string
	err                 error
}

// Programs returns mcpwrap and the everything fixture built from this tree,
// building them on the first call. A test binary that calls it runs its
// tests through Main, which removes them at the end.
func Programs(t testing.TB) (mcpwrap, everything string) {
	t.Helper()
	p := &programs
	p.once.Do(func() {
		if p.dir, p.err = os.MkdirTemp("", "mcpwrap-test-"); p.err != nil {
			return
		}
		var bins []string
		if bins, p.err = Build(p.dir, Mcpwrap, Everything); p.err == nil {
			p.mcpwrap, p.everything = bins[0], bins[1]
		}
	})
	if p.err != nil {
		t.Fatalf("building the programs: %v", p.err)
	}
	return p.mcpwrap, p.everything
}

// Main runs the tests and then removes what Programs built; a TestMain
// returns its result to os.Exit.
func Main(m *testing.M) int {
	code := m.Run()
	if programs.dir != "" {
		os.RemoveAll(programs.dir)
	}
	return code
}

// Eventually polls cond until it holds, and fails t if a generous deadline
// passes first. Tests wait with it; they never assert how long things take.
func Eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	if !poll(cond) {
		t.Fatalf("timed out waiting for %s", what)
	}
}

// Patience bounds every wait of the tests: far beyond what anything takes
// on a loaded machine, it only stops a broken test from hanging.
const Patience = 30 * time.Second
