#!/usr/bin/env bash
# The whole test suite, as CI runs it: formatting and vet, every Go test
# under the race detector, bounded fuzzing of the parsers, and a short
# benchmark smoke run. Needs Go; the conformance step needs Node and npm.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go'))
if [ -n "$unformatted" ]; then echo "gofmt would change: $unformatted"; exit 1; fi

echo "== go vet"
go vet ./...

echo "== go test -race"
go test -race -count=1 -timeout 20m ./...

echo "== fuzz (bounded)"
go test -run '^$' -fuzz '^FuzzParse$' -fuzztime 20s ./jsonrpc
go test -run '^$' -fuzz '^FuzzLookup$' -fuzztime 10s ./jsonrpc

echo "== benchmarks (smoke: one short run each, no thresholds)"
go test -run '^$' -bench . -benchtime 100x -timeout 10m ./... > /dev/null
echo "benchmarks ran"
