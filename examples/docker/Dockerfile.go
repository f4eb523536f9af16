# mcpwrap in front of a Go MCP server binary, on a distroless image: two
# static binaries, no shell, no package manager.
#
#   docker build -f examples/docker/Dockerfile.go -t my-mcp-go .   (from the repository root)
#   docker run --rm -p 8080:8080 -e MCPWRAP_TOKEN=$(openssl rand -hex 32) my-mcp-go
#
# The server here is this repository's example, examples/everything. For
# your own, build it in this stage instead, for example:
#   RUN CGO_ENABLED=0 GOBIN=/out go install github.com/you/your-mcp-server@v1.2.3

FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/mcpwrap . \
 && CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/everything ./examples/everything

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/mcpwrap /usr/local/bin/mcpwrap
COPY --from=build /out/everything /usr/local/bin/everything

ENV MCPWRAP_LISTEN=:8080 \
    MCPWRAP_LOG_FORMAT=json \
    MCPWRAP_SESSION_IDLE_TIMEOUT=30m \
    MCPWRAP_SHUTDOWN_TIMEOUT=9s
# distroless's unprivileged user (65532).
USER nonroot:nonroot
EXPOSE 8080

# No HEALTHCHECK: the image has nothing to run it with. Point your
# orchestrator's HTTP check at GET /healthz (no token needed).
# MCPWRAP_TOKEN comes at run time. As PID 1, mcpwrap reaps orphans itself.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/mcpwrap", "--", "/usr/local/bin/everything"]
