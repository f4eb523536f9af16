package testkit

import (
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Options says how to run mcpwrap.
type Options struct {
	// Env holds MCPWRAP_* settings (and anything else for mcpwrap's own
	// environment) on top of JSON logs on 127.0.0.1:0. The test process's
	// own MCPWRAP_* and EVERYTHING_* variables are never passed on.
	Env map[string]string
	// Token, if set, is MCPWRAP_TOKEN, and what Connect and Send present.
	Token string
	// Command is what mcpwrap wraps; the everything fixture by default.
	Command []string
	// Prefix, if any, is a launcher that runs mcpwrap as its own child
	// (unshare).
	Prefix []string
}

// Process is one running mcpwrap.
type Process struct {
	Pid   int    // mcpwrap's own pid (not a launcher's such as unshare)
	Base  string // http://127.0.0.1:port
	URL   string // the Streamable HTTP endpoint
	Token string // Options.Token
	Logs  *LogBook

	t      testing.TB
	cmd    *exec.Cmd
	exited chan struct{} // closed once Wait returned
	state  *os.ProcessState
}

// Start runs mcpwrap and waits until it logs the address it listens on.
// When the test ends, a process still running is stopped (SIGTERM, then
// SIGKILL for it and whatever it left behind), and a failed test's log
// shows mcpwrap's.
func Start(t testing.TB, o Options) *Process {
	t.Helper()
	bin, fixture := Programs(t)
	env := map[string]string{
		"MCPWRAP_LISTEN":     "127.0.0.1:0",
		"MCPWRAP_LOG_FORMAT": "json",
	}
	if o.Token != "" {
		env["MCPWRAP_TOKEN"] = o.Token
	}
	for k, v := range o.Env {
		env[k] = v
	}
	var environ []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "MCPWRAP_") && !strings.HasPrefix(kv, "EVERYTHING_") {
			environ = append(environ, kv)
		}
	}
	for k, v := range env {
		environ = append(environ, k+"="+v)
	}
	command := o.Command
	if command == nil {
		command = []string{fixture}
	}
	argv := append(append(append(slices.Clone(o.Prefix), bin), "--"), command...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = environ
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &Process{Token: o.Token, Logs: NewLogBook(), t: t, cmd: cmd, exited: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting mcpwrap: %v", err)
	}
	read := make(chan struct{})
	go func() {
		defer close(read)
		p.Logs.Read(stderr)
	}()
	go func() {
		<-read // Wait closes the pipe; read it to the end first
		_ = cmd.Wait()
		p.state = cmd.ProcessState
		close(p.exited)
	}()
	p.Pid = cmd.Process.Pid
	t.Cleanup(p.cleanup)

	line, err := p.Logs.Wait("mcpwrap listening", Patience, func(l Line) bool { return l.Msg() == "mcpwrap listening" })
	if err != nil {
		t.Fatalf("mcpwrap did not start: %v\n%s", err, p.Logs.Dump())
	}
	addr := line.Str("addr")
	if !strings.HasPrefix(addr, "127.0.0.1:") {
		t.Fatalf("mcpwrap listens on %q, want 127.0.0.1:port", addr)
	}
	p.Base = "http://" + addr
	p.URL = p.Base + "/mcp"
	if len(o.Prefix) > 0 {
		// The launcher forks mcpwrap; find it among the launcher's children.
		p.Pid = 0
		Eventually(t, "mcpwrap under its launcher", func() bool {
			for _, q := range Procs() {
				if q.PPid == cmd.Process.Pid {
					p.Pid = q.Pid
				}
			}
			return p.Pid != 0
		})
	}
	return p
}

// Launcher is the pid of the process Start started: mcpwrap's, or that of
// the launcher of Options.Prefix.
func (p *Process) Launcher() int { return p.cmd.Process.Pid }

// cleanup stops mcpwrap if a test left it running, and kills whatever it
// left behind, so that one failed test does not litter the machine for the
// next.
func (p *Process) cleanup() {
	select {
	case <-p.exited:
	default:
		left := Descendants(p.cmd.Process.Pid)
		if p.Pid != 0 {
			_ = syscall.Kill(p.Pid, syscall.SIGTERM)
		}
		select {
		case <-p.exited:
		case <-time.After(Patience):
			p.t.Errorf("mcpwrap pid %d ignored SIGTERM for %v; killing it", p.Pid, Patience)
		}
		if p.Pid != 0 && p.Pid != p.cmd.Process.Pid {
			// Under a launcher, mcpwrap itself must go, or it keeps the
			// log pipe open.
			_ = syscall.Kill(p.Pid, syscall.SIGKILL)
		}
		_ = p.cmd.Process.Kill()
		<-p.exited
		for _, q := range left {
			if q.StillThere() {
				_ = syscall.Kill(q.Pid, syscall.SIGKILL)
			}
		}
	}
	if p.t.Failed() {
		p.t.Logf("mcpwrap (pid %d) log:\n%s", p.Pid, p.Logs.Dump())
	}
}

// Signal sends sig to mcpwrap itself.
func (p *Process) Signal(sig syscall.Signal) {
	p.t.Helper()
	if err := syscall.Kill(p.Pid, sig); err != nil {
		p.t.Fatalf("signalling mcpwrap: %v", err)
	}
}

// WaitExit waits, generously, for mcpwrap to exit and returns its exit
// code (-1 if a signal killed it).
func (p *Process) WaitExit() int {
	p.t.Helper()
	select {
	case <-p.exited:
	case <-time.After(2 * Patience):
		p.t.Fatalf("mcpwrap pid %d still running after %v\n%s", p.Pid, 2*Patience, p.Logs.Dump())
	}
	return p.state.ExitCode()
}

// Stop ends mcpwrap the way a platform stops a machine, SIGTERM, and
// returns its exit code.
func (p *Process) Stop() int {
	p.t.Helper()
	select {
	case <-p.exited:
	default:
		p.Signal(syscall.SIGTERM)
	}
	return p.WaitExit()
}

// Health is GET /healthz: its status and the number of sessions it reports.
func (p *Process) Health(t testing.TB) (status int, sessions int) {
	t.Helper()
	resp, err := http.Get(p.Base + "/healthz")
	if err != nil {
		t.Fatalf("GET /healthz: %v", err)
	}
	defer resp.Body.Close()
	var body struct {
		Sessions int `json:"sessions"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("GET /healthz: %v", err)
	}
	return resp.StatusCode, body.Sessions
}

// Started is the "session started" log line of a session, waited for.
func (p *Process) Started(t testing.TB, session string) Line {
	t.Helper()
	return p.Logs.MustWait(t, "session "+session+" started", func(l Line) bool {
		return l.Msg() == "session started" && l.Str("session") == session
	})
}

// ChildPid is the pid of the child mcpwrap started for a session, from its
// "session started" log line.
func (p *Process) ChildPid(t testing.TB, session string) int {
	t.Helper()
	l := p.Started(t, session)
	if l.Int("pid") <= 0 {
		t.Fatalf("session started without a pid: %v", l)
	}
	return l.Int("pid")
}

// Ended is the "session ended" log line of a session, waited for.
func (p *Process) Ended(t testing.TB, session string) Line {
	t.Helper()
	return p.Logs.MustWait(t, "session "+session+" ended", func(l Line) bool {
		return l.Msg() == "session ended" && l.Str("session") == session
	})
}
