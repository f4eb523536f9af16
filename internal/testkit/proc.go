package testkit

import (
	"bytes"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Proc is what /proc/<pid>/stat says of one process.
type Proc struct {
	Pid, PPid, PGrp int
	State           byte
	Start           uint64 // start time in clock ticks: with Pid, names the process uniquely
	Comm            string
}

// ReadProc reads one process; false if there is none of that pid.
func ReadProc(pid int) (Proc, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return Proc{}, false
	}
	open, end := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 0 || end < open {
		return Proc{}, false
	}
	f := strings.Fields(string(b[end+1:]))
	if len(f) < 20 {
		return Proc{}, false
	}
	p := Proc{Pid: pid, State: f[0][0], Comm: string(b[open+1 : end])}
	p.PPid, _ = strconv.Atoi(f[1])
	p.PGrp, _ = strconv.Atoi(f[2])
	p.Start, _ = strconv.ParseUint(f[19], 10, 64)
	return p, true
}

// Alive reports whether a process exists and is not a zombie.
func Alive(pid int) bool {
	p, ok := ReadProc(pid)
	return ok && p.State != 'Z'
}

// Procs reads every process.
func Procs() []Proc {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []Proc
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if p, ok := ReadProc(pid); ok {
			out = append(out, p)
		}
	}
	return out
}

// Descendants lists every process whose chain of parents leads to root.
func Descendants(root int) []Proc {
	table := Procs()
	byPid := make(map[int]Proc, len(table))
	for _, p := range table {
		byPid[p.Pid] = p
	}
	var out []Proc
	for _, p := range table {
		for q, hops := p, 0; q.PPid > 1 && hops < 64; hops++ {
			if q.PPid == root {
				out = append(out, p)
				break
			}
			var ok bool
			if q, ok = byPid[q.PPid]; !ok {
				break
			}
		}
	}
	return out
}

// StillThere reports whether the very same process (pid and start time)
// still exists, zombie or not.
func (p Proc) StillThere() bool {
	q, ok := ReadProc(p.Pid)
	return ok && q.Start == p.Start
}

// InGroups lists the processes, zombies included, in any of the groups.
func InGroups(pgids []int) []Proc {
	var out []Proc
	for _, p := range Procs() {
		if slices.Contains(pgids, p.PGrp) {
			out = append(out, p)
		}
	}
	return out
}

// AssertGone fails unless none of procs exists any more and no process is
// left in any of the groups, waiting for the kernel to finish.
func AssertGone(t testing.TB, what string, procs []Proc, pgids []int) {
	t.Helper()
	var left []Proc
	gone := func() bool {
		left = InGroups(pgids)
		for _, p := range procs {
			if p.StillThere() && !slices.ContainsFunc(left, func(q Proc) bool { return q.Pid == p.Pid }) {
				left = append(left, p)
			}
		}
		return len(left) == 0
	}
	if poll(gone) {
		return
	}
	for _, p := range left {
		if q, ok := ReadProc(p.Pid); ok {
			p = q
		}
		t.Errorf("%s: process %d (%s) state %c ppid %d pgrp %d is still there", what, p.Pid, p.Comm, p.State, p.PPid, p.PGrp)
	}
}

// poll is Eventually without the failure: whether cond came to hold
// within Patience.
func poll(cond func() bool) bool {
	deadline := time.Now().Add(Patience)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}
