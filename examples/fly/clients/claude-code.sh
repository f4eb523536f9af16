#!/bin/sh
# Claude Code speaks Streamable HTTP and sends the header itself.
claude mcp add --transport http my-mcp https://my-mcp.fly.dev/mcp \
  --header "Authorization: Bearer $MCP_TOKEN"
