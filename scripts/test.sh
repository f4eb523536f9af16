#!/usr/bin/env bash
# The whole test suite, as CI runs it: formatting, vet, a tidy go.mod,
# staticcheck, every Go test under the race detector, bounded fuzzing of the
# parsers, and a short benchmark smoke run. Needs Go; the conformance step
# needs Node and npm; authserver's browser tests need Chromium (Debian:
# apt-get install chromium), and with CI=true they fail rather than skip
# without it.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== clients for the sign-in tests"
# Chromium for authserver's pages; the pinned Node OAuth clients (the
# TypeScript SDK, mcp-remote) and the conformance suite for the sign-in
# end-to-end tests, which with CI=true fail rather than skip without them.
if [ ! -x /usr/bin/chromium ]; then
	if [ "$(id -u)" = 0 ]; then
		apt-get update
		apt-get install -y --no-install-recommends chromium
	else
		echo "no /usr/bin/chromium and not root: the browser tests will skip (or fail with CI=true)"
	fi
fi
for dir in oauth/e2e conformance; do
	(cd "$dir" && timeout 600 npm ci --no-audit --no-fund --loglevel=error)
done

echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go'))
if [ -n "$unformatted" ]; then echo "gofmt would change: $unformatted"; exit 1; fi

echo "== go vet"
go vet ./...

echo "== go mod tidy"
# go.mod must say what the code imports: direct dependencies unmarked,
# nothing unused, go.sum complete.
if ! go mod tidy -diff; then echo "go.mod or go.sum is not tidy: run go mod tidy"; exit 1; fi

echo "== staticcheck"
# Pinned, and installed into a directory of its own, so every run checks
# with the same rules whatever else is on PATH. examples/everything has a
# staticcheck.conf for its deliberate use of deprecated MCP features.
staticcheck_version=v0.8.2 # staticcheck 2026.2.2
toolbin="${XDG_CACHE_HOME:-$HOME/.cache}/mcpwrap-tools/staticcheck-$staticcheck_version"
if [ ! -x "$toolbin/staticcheck" ]; then
	GOBIN="$toolbin" go install "honnef.co/go/tools/cmd/staticcheck@$staticcheck_version"
fi
"$toolbin/staticcheck" ./...

echo "== go test -race"
go test -race -count=1 -timeout 20m ./...

echo "== fuzz (bounded)"
# Counts, not durations: a deadline that falls while a worker is still busy
# with an input (FuzzRoute's each run a real child) ends the fuzzer with
# "context deadline exceeded" instead of a verdict.
go test -run '^$' -fuzz '^FuzzParse$' -fuzztime 200000x ./jsonrpc
go test -run '^$' -fuzz '^FuzzLookup$' -fuzztime 100000x ./jsonrpc
go test -run '^$' -fuzz '^FuzzRoute$' -fuzztime 2000x ./session

echo "== MCP conformance suite, through mcpwrap"
# The suite's client sends no token: this instance listens on loopback
# without one, as mcpwrap allows. wrap's tests show the same traffic is
# refused when a token is set.
bin=$(mktemp -d)
go build -o "$bin/mcpwrap" .
go build -o "$bin/everything" ./examples/everything
# Polling on, tiny: the server-sse-polling scenario then applies (its
# test_reconnection call outlasts it, so its stream is closed and resumed).
MCPWRAP_SSE_POLL_AFTER=50ms MCPWRAP_LISTEN=127.0.0.1:0 MCPWRAP_LOG_FORMAT=json "$bin/mcpwrap" -- "$bin/everything" 2>"$bin/mcpwrap.log" &
pid=$!
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; rm -rf "$bin"' EXIT
addr=
for _ in $(seq 100); do
	addr=$(grep -o '"addr":"[^"]*"' "$bin/mcpwrap.log" | head -1 | cut -d'"' -f4) && [ -n "$addr" ] && break
	sleep 0.1
done
[ -n "$addr" ] || { echo "mcpwrap did not start:"; cat "$bin/mcpwrap.log"; exit 1; }
if ! conformance/run.sh "http://$addr/mcp"; then
	echo "--- mcpwrap log"; tail -50 "$bin/mcpwrap.log"
	exit 1
fi

echo "== MCP conformance suite, protocol 2026-07-28: child forced modern, then forced legacy (the bridge)"
conformance/stateless.sh "$bin/mcpwrap" "$bin/everything"

echo "== MCP conformance suite, client authorization scenarios against mcpwrap proxy"
# The suite plays the authorization server and the remote; the shim signs
# in through a stand-in browser (proxy/conformance_test.go drives it).
MCPWRAP_CONFORMANCE_CLIENT=1 go test -count=1 -run '^TestConformanceClientAuth$' -v ./proxy/ | grep -E '^(---|ok|FAIL)|auth suite:|auth/'

echo "== benchmarks (smoke: one short run each, no thresholds)"
go test -run '^$' -bench . -benchtime 1x -timeout 10m ./... > /dev/null
echo "benchmarks ran"
