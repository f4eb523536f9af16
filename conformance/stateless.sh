#!/usr/bin/env bash
# stateless.sh MCPWRAP SERVER — runs the MCP conformance suite's protocol
# 2026-07-28 server scenarios (the pinned 0.2.0 pre-release, --requirements
# 2026-07-28) through the mcpwrap binary MCPWRAP wrapping the stdio server
# SERVER, twice: with the child forced modern (requests pass through) and
# forced legacy (the bridge initializes it and turns its requests to the
# client into input_required results).
#
# Each run prints one summary line, then one line per failed check. A run
# fails on any failing scored scenario; scenarios the CLI does not score
# (extensions, pending) are shown but excused, and so, for the legacy child
# only, are those in baseline-legacy-2026.txt, each with its reason. After
# each run the TypeScript SDK 2 client pinned to 2026-07-28 (ts-client.mjs)
# makes calls that need its input, against the same instance.
#
# Environment: CONFORMANCE_TIMEOUT (seconds per run, default 600).
set -euo pipefail

if [[ $# -ne 2 ]]; then
	echo "usage: $0 MCPWRAP SERVER" >&2
	exit 2
fi
mcpwrap=$1
server=$2
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
limit=${CONFORMANCE_TIMEOUT:-600}

if [[ ! -d "$here/node_modules/conformance-next" || ! -d "$here/node_modules/@modelcontextprotocol/client" ]]; then
	echo "conformance: installing the pinned suite (npm ci)" >&2
	(cd "$here" && timeout 600 npm ci --no-audit --no-fund --loglevel=error) >&2
fi
if (($(node -p 'process.versions.node.split(".")[0]') < 22)); then
	export NODE_OPTIONS="${NODE_OPTIONS:+$NODE_OPTIONS }--require=$here/node22-polyfill.cjs"
fi

work=$(mktemp -d)
pid=
cleanup() {
	if [[ -n "$pid" ]]; then
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	fi
	rm -rf "$work"
}
trap cleanup EXIT

status=0
# run ERA [BASELINE] starts mcpwrap with the child forced to ERA, runs the
# suite against it and stops it.
run() {
	local era=$1 baseline=${2:-} dir="$work/$1" addr= rc=0 src=0
	mkdir -p "$dir"
	# The suite's client sends no token: mcpwrap listens on loopback without one.
	MCPWRAP_LISTEN=127.0.0.1:0 MCPWRAP_LOG_FORMAT=json MCPWRAP_CHILD_ERA=$era \
		"$mcpwrap" -- "$server" 2>"$dir/mcpwrap.log" &
	pid=$!
	for _ in $(seq 100); do
		addr=$(grep -o '"addr":"[^"]*"' "$dir/mcpwrap.log" | head -1 | cut -d'"' -f4) && [[ -n "$addr" ]] && break
		sleep 0.1
	done
	if [[ -z "$addr" ]]; then
		echo "mcpwrap did not start:"
		cat "$dir/mcpwrap.log"
		status=1
		return
	fi
	local version
	version=$(node -p "require('$here/node_modules/conformance-next/package.json').version")
	timeout --kill-after=10 "$limit" \
		node "$here/node_modules/conformance-next/dist/index.js" server --url "http://$addr/mcp" \
		--requirements 2026-07-28 -o "$dir/checks" >"$dir/output.txt" 2>&1 || rc=$?
	SUMMARIZE_SCORED_ONLY=1 SUMMARIZE_BASELINE=$baseline \
		node "$here/summarize.cjs" "conformance $version --requirements 2026-07-28, child $era" \
		"$dir/checks" "$dir/output.txt" "$rc" || src=$?
	if ((src == 2)); then
		echo "  (last lines of the CLI output follow)"
		tail -n 15 "$dir/output.txt" | sed 's/^/  | /'
	fi
	if ! timeout 120 node "$here/ts-client.mjs" "http://$addr/mcp" 2>&1 | sed "s/\$/ (child $era)/"; then
		src=1
	fi
	if ((src != 0)); then
		status=1
		echo "  --- mcpwrap log"
		tail -n 30 "$dir/mcpwrap.log" | sed 's/^/  | /'
	fi
	kill "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	pid=
}

run modern
run legacy "$here/baseline-legacy-2026.txt"
exit "$status"
