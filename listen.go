package main

// Listening: the connection cap and the host names served without a token.

import (
	"net/url"
	"slices"
	"syscall"

	"github.com/mcpwrap/mcpwrap/config"
)

// allowedHosts are the host names served without a token: the configured
// ones and that of the public URL.
func allowedHosts(cfg config.Config) []string {
	hosts := slices.Clone(cfg.AllowedHosts)
	if u, err := url.Parse(cfg.PublicURL); err == nil && u.Hostname() != "" {
		hosts = append(hosts, u.Hostname())
	}
	return hosts
}

// maxConnections is the connection cap: the configured one, or half of
// the file descriptors the process may open, so that the other half stays
// for the children's pipes and a flood of connections cannot starve them.
func maxConnections(configured int) int {
	if configured > 0 {
		return configured
	}
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil || lim.Cur > 1<<20 {
		return 1 << 19
	}
	return max(int(lim.Cur/2), 8)
}
