#!/usr/bin/env bash
# run.sh URL — runs the MCP conformance suite's server scenarios against URL
# (an mcpwrap endpoint, e.g. http://127.0.0.1:8080/mcp) and exits non-zero if
# any check failed or a run could not complete.
#
# Two runs, each bounded by `timeout`:
#   1. @modelcontextprotocol/conformance 0.1.16 (stable): server --url URL --suite all
#   2. the 0.2.0 pre-release pinned in package.json as "conformance-next":
#      server --url URL --requirements 2025-11-25
# Each prints one summary line ("conformance 0.1.16 --suite all: 43 passed,
# 0 failed, ..."), then one line per failed check.
#
# The suite sends no Authorization header, so URL must not require a token.
#
# Environment:
#   CONFORMANCE_TIMEOUT  seconds allowed per run (default 600)
#   CONFORMANCE_RESULTS  keep the CLI output and checks.json files in this
#                        directory (default: a temporary directory, removed)
#
# The pinned packages are installed with `npm ci` next to this script when
# node_modules is missing. On Node < 22 the CLI needs node22-polyfill.cjs
# (see that file), which is preloaded automatically.
set -euo pipefail

if [[ $# -ne 1 || -z "$1" ]]; then
	echo "usage: $0 URL" >&2
	exit 2
fi
url=$1
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
limit=${CONFORMANCE_TIMEOUT:-600}

if [[ ! -d "$here/node_modules/@modelcontextprotocol/conformance" || ! -d "$here/node_modules/conformance-next" || ! -d "$here/node_modules/@modelcontextprotocol/client" ]]; then
	echo "conformance: installing the pinned suite (npm ci)" >&2
	(cd "$here" && timeout 600 npm ci --no-audit --no-fund --loglevel=error) >&2
fi

if (($(node -p 'process.versions.node.split(".")[0]') < 22)); then
	export NODE_OPTIONS="${NODE_OPTIONS:+$NODE_OPTIONS }--require=$here/node22-polyfill.cjs"
fi

if [[ -n "${CONFORMANCE_RESULTS:-}" ]]; then
	results=$CONFORMANCE_RESULTS
	mkdir -p "$results"
else
	results=$(mktemp -d)
	trap 'rm -rf "$results"' EXIT
fi

status=0

# run LABEL PACKAGE_DIR CLI_ARGS... runs one CLI invocation and summarizes it.
run() {
	local label=$1 pkg=$2
	shift 2
	local version dir rc=0
	version=$(node -p "require('$here/node_modules/$pkg/package.json').version")
	label="conformance $version $label"
	dir=$(mktemp -d "$results/run.XXXXXX")
	timeout --kill-after=10 "$limit" \
		node "$here/node_modules/$pkg/dist/index.js" server --url "$url" "$@" -o "$dir/checks" \
		>"$dir/output.txt" 2>&1 || rc=$?
	local src=0
	node "$here/summarize.cjs" "$label" "$dir/checks" "$dir/output.txt" "$rc" || src=$?
	if ((src == 2)); then
		echo "  (last lines of the CLI output follow)"
		tail -n 15 "$dir/output.txt" | sed 's/^/  | /'
	fi
	if ((src != 0)); then
		status=1
	fi
}

run "--suite all" "@modelcontextprotocol/conformance" --suite all
run "--requirements 2025-11-25" "conformance-next" --requirements 2025-11-25

exit "$status"
