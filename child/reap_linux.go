package child

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"
)

// ReapOrphans reaps zombies that are our children but belong to no Child,
// until ctx ends. Run it only as PID 1, where every orphaned grandchild of
// every child is re-parented to us and nothing else would reap it.
//
// It never calls wait4(-1): that would steal the exit status of a child its
// Child is waiting for. Instead it finds our zombie children in /proc and
// reaps only those whose pid is not registered by Start. Children
// started by other code in this process (not through Start) would be
// reaped too, so every child must be started through Start.
func ReapOrphans(ctx context.Context, log zerolog.Logger) {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGCHLD)
	defer signal.Stop(sigs)
	self := os.Getpid()
	for {
		reapPass(self, log)
		select {
		case <-ctx.Done():
			return
		case <-sigs:
		case <-reapPoke:
		}
	}
}

// reapPass reaps every zombie child of self that no Child owns.
func reapPass(self int, log zerolog.Logger) {
	var zombies []int
	eachStat(func(pid int, state byte, ppid, pgrp int) bool {
		if ppid == self && state == 'Z' {
			zombies = append(zombies, pid)
		}
		return true
	})
	for _, pid := range zombies {
		// Holding starting keeps Start from forking a child it has
		// not yet registered between our check and the wait. A zombie's pid cannot be handed to a new
		// process, so an unowned zombie stays unowned.
		ownedPids.starting.Lock()
		ownedPids.mu.Lock()
		_, owned := ownedPids.pids[pid]
		ownedPids.mu.Unlock()
		var ws unix.WaitStatus
		var err error
		if !owned {
			_, err = unix.Wait4(pid, &ws, unix.WNOHANG, nil)
		}
		ownedPids.starting.Unlock()
		if owned {
			continue
		}
		if err != nil && !errors.Is(err, unix.ECHILD) {
			log.Warn().Err(err).Int("pid", pid).Msg("reaping orphan")
			continue
		}
		log.Debug().Int("pid", pid).Msg("reaped orphan")
	}
}

// eachStat calls fn with fields of /proc/<pid>/stat for every process
// until fn returns false. Processes that vanish while we look are skipped.
func eachStat(fn func(pid int, state byte, ppid, pgrp int) bool) {
	d, err := os.Open("/proc")
	if err != nil {
		return
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return
	}
	buf := make([]byte, 512)
	for _, name := range names {
		pid, err := strconv.Atoi(name)
		if err != nil || pid <= 0 {
			continue
		}
		state, ppid, pgrp, ok := readStat(name, buf)
		if !ok {
			continue
		}
		if !fn(pid, state, ppid, pgrp) {
			return
		}
	}
}

// readStat parses "pid (comm) state ppid pgrp ..."; comm may hold spaces
// and parentheses, so the fields start after the last ')'.
func readStat(pid string, buf []byte) (state byte, ppid, pgrp int, ok bool) {
	fd, err := unix.Open("/proc/"+pid+"/stat", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, 0, 0, false
	}
	n, err := unix.Read(fd, buf)
	unix.Close(fd)
	if err != nil || n <= 0 {
		return 0, 0, 0, false
	}
	b := buf[:n]
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, 0, false
	}
	f := bytes.Fields(b[i+1:])
	if len(f) < 3 || len(f[0]) != 1 {
		return 0, 0, 0, false
	}
	ppid, err1 := strconv.Atoi(string(f[1]))
	pgrp, err2 := strconv.Atoi(string(f[2]))
	if err1 != nil || err2 != nil {
		return 0, 0, 0, false
	}
	return f[0][0], ppid, pgrp, true
}
