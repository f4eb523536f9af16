#!/usr/bin/env bash
# Starts mcpwrap on 127.0.0.1 around the bundled example server
# (examples/everything) and prints how to connect. Ctrl-C stops both.
# Settings come from the environment as usual (MCPWRAP_LISTEN, MCPWRAP_TOKEN, ...).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p bin
go build -o bin/mcpwrap .
go build -o bin/everything ./examples/everything

listen=${MCPWRAP_LISTEN:-127.0.0.1:8080}
token=${MCPWRAP_TOKEN:-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')}
url="http://${listen/#:/127.0.0.1:}/mcp"

cat <<MSG
mcpwrap is starting on $listen around examples/everything.

  token:        $token
  endpoint:     $url            (Streamable HTTP, 2025-03-26 … 2025-11-25)
  legacy:       ${url%/mcp}/sse            (HTTP+SSE, 2024-11-05)
  health:       ${url%/mcp}/healthz

  Claude Code:  claude mcp add --transport http everything $url --header "Authorization: Bearer $token"
  Inspector:    npx @modelcontextprotocol/inspector@latest --cli $url --transport http \\
                  --header "Authorization: Bearer $token" --method tools/list
                (@latest: on Node 20, npx may otherwise pick an old Inspector without --header)
  stdio shim:   MCPWRAP_TOKEN=$token bin/mcpwrap proxy $url
  by hand:      curl -si $url -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \\
                  -H 'Accept: application/json, text/event-stream' \\
                  -d '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"curl","version":"1"}}}'

MSG
export MCPWRAP_LISTEN="$listen" MCPWRAP_TOKEN="$token"
exec bin/mcpwrap -- bin/everything
