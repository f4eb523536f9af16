// Package deploy holds no code, only tests: they check mcpwrap the way it
// is deployed. Real mcpwrap binaries wrap the example server and are driven
// by the official Go SDK client over HTTP on 127.0.0.1: several instances
// behind a router that replays requests the way the Fly.io proxy does
// (fly-replay), the idle timeout and exit-when-idle that let a Machine stop,
// per-token child environments, and the deployment files in the repository
// (Dockerfile.example, examples/docker, examples/fly, examples/kubernetes)
// against what the build produces and what the binary accepts.
package deploy
