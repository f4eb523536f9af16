#!/usr/bin/env bash
# Runs the benchmark matrix against bench/echoserver spoken to directly over
# its pipes, through mcpwrap, answering over HTTP itself (the native-HTTP
# floor: the same logic, no pipes, no child), and through supergateway and
# mcp-proxy when npm can install them, then prints a markdown table of
# ratios to direct and of mcpwrap to the floor. A second table times session setup for users
# arriving one by one, with and without MCPWRAP_WARM_CHILDREN, for the echo
# child and for @modelcontextprotocol/server-everything started through npx
# (installed into a local folder first, so npx downloads nothing).
# Every figure comes from this one run, so the ratios compare like with like.
#
# Environment:
#   QUICK=1        a short smoke run: small counts, short caps, one round
#   ROUNDS=N       rounds of the whole matrix (default 3); the table shows
#                  the median over rounds of each ratio
#   CHILD=sdk      the echo child (and the floor) built on the Go SDK instead
#                  of the hand-written lean one (CHILD=lean, the default):
#                  the lean child costs next to nothing per call, so what
#                  the hot-path cells measure is the wrapper
#   PEERS=0        skip supergateway and mcp-proxy
#   PEERS_DIR=dir  reuse (or install into) this npm prefix instead of a temp one
#   CELLS="..."    run only these cells: seq par8 many open held req1m resp1m
#                  setup npxsetup
#   NPX=0          skip the npx setup row
#   BENCH_CMD      the load tool (default: bin/mcpwrap bench)
#   OUT=dir        keep the per-cell JSON reports and logs there
#
# Each cell has a call count and a --max-duration cap; the script only
# stops processes it started, by pid.
set -euo pipefail
cd "$(dirname "$0")/.."

quick=${QUICK:-0}
if [ "$quick" = 1 ]; then
	seq_calls=300 par_calls=400 many_sessions=10 many_calls=20 open_sessions=20
	held_sessions=50 big_calls=3 cap=15s held_cap=30s hold=1s rounds=${ROUNDS:-1}
	setup_sessions=5 npx_sessions=3
else
	seq_calls=10000 par_calls=10000 many_sessions=50 many_calls=100 open_sessions=200
	held_sessions=1000 big_calls=20 cap=20s held_cap=120s hold=2s rounds=${ROUNDS:-3}
	setup_sessions=20 npx_sessions=8
fi
# Users arriving one by one: a pause between sessions long enough for the
# warm set to refill, and warm children enough to absorb a late refill.
setup_every=300ms npx_every=2500ms warm_children=2

work=$(mktemp -d)
out=${OUT:-$work/out}
mkdir -p "$out"
out=$(cd "$out" && pwd) # absolute: some cells run from another folder
started=() # pids this script started; the only ones it signals

stop_pid() {
	local pid=$1
	kill -TERM "$pid" 2>/dev/null || return 0
	for _ in $(seq 100); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

cleanup() {
	for pid in "${started[@]}"; do stop_pid "$pid"; done
	[ -n "${OUT:-}" ] || rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "== build" >&2
go build -o bin/mcpwrap .
go build -o bin/echoserver ./bench/echoserver
echo_bin=$PWD/bin/echoserver
child_kind=${CHILD:-lean}
case $child_kind in
lean) echo_cmd="$echo_bin -lean" ;;
sdk) echo_cmd=$echo_bin ;;
*)
	echo "CHILD must be lean or sdk" >&2
	exit 2
	;;
esac
read -r -a echo_argv <<<"$echo_cmd"
read -r -a bench <<<"${BENCH_CMD:-$PWD/bin/mcpwrap bench}"
token=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')

# free_port picks a loopback port nothing answers on.
free_port() {
	local p
	for _ in $(seq 50); do
		p=$((20000 + RANDOM % 20000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return 0
		fi
	done
	return 1
}

# wait_http waits, bounded, until url answers at all.
wait_http() {
	local url=$1 pid=$2
	for _ in $(seq 150); do
		kill -0 "$pid" 2>/dev/null || return 1
		curl -s -o /dev/null --max-time 1 "$url" && return 0
		sleep 0.2
	done
	return 1
}

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

# jget reads one number or word from a flat one-line JSON report.
jget() { sed -n 's/.*"'"$2"'":"\{0,1\}\([^,}"]*\).*/\1/p' "$1" 2>/dev/null | head -1; }

# Per target: its URL, its pid, and the header that carries its key.
# Direct targets have no URL.
declare -A url_of pid_of header_of
targets=(direct)
pid_of[direct]=0

# run_cell NAME TARGET [bench flags...] runs one cell into
# $out/TARGET.NAME.rROUND.json, capped at $cell_cap (default $cap).
# With background=1 it returns at once, leaving the tool's pid in cell_pid.
run_cell() {
	local name=$1 target=$2 c=${cell_cap:-$cap}
	shift 2
	local json=$out/$target.$name.r$round.json
	local where=(-- "${echo_argv[@]}")
	[ -z "${direct_cmd:-}" ] || read -r -a where <<<"-- $direct_cmd"
	if [ "${url_of[$target]:-}" != "" ]; then
		where=("${url_of[$target]}")
		[ -z "${header_of[$target]:-}" ] || where=(--header "${header_of[$target]}" "${where[@]}")
	fi
	echo "-- round $round: $name $target" >&2
	if [ -n "${background:-}" ]; then
		"${bench[@]}" --json --max-duration "$c" --timeout 30s "$@" "${where[@]}" >"$json" 2>"$out/$target.$name.r$round.err" &
		cell_pid=$!
		started+=("$cell_pid")
		return 0
	fi
	"${bench[@]}" --json --max-duration "$c" --timeout 30s "$@" "${where[@]}" >"$json" 2>"$out/$target.$name.r$round.err" || true
	if [ ! -s "$json" ]; then
		echo "   no report; stderr:" >&2
		tail -5 "$out/$target.$name.r$round.err" >&2
	fi
}

# run_held runs the many-sessions cell and reads the server's RSS while
# every session is open.
run_held() {
	local target=$1 pid=${pid_of[$1]}
	local ready=$work/$target.ready before=0 held=0
	rm -f "$ready"
	[ "$pid" = 0 ] || before=$(rss_kib "$pid")
	# Opening a thousand sessions at once takes some targets far longer than
	# the other cells' cap; the tool's own --timeout bounds each session.
	cell_cap=$held_cap background=1 run_cell held "$target" --sessions "$held_sessions" --calls 1 --hold "$hold" \
		--ready-file "$ready" --quiet
	local bpid=$cell_pid
	for _ in $(seq 1200); do
		[ -e "$ready" ] && break
		kill -0 "$bpid" 2>/dev/null || break
		sleep 0.1
	done
	if [ -e "$ready" ] && [ "$pid" != 0 ]; then held=$(rss_kib "$pid"); fi
	wait "$bpid" || true
	echo "$before $held" >"$out/$target.held.r$round.rss"
}

# start_server NAME URL HEALTH_URL command... starts a wrapper and records
# its idle RSS once it answers.
start_server() {
	local name=$1 url=$2 health=$3
	shift 3
	echo "== start $name" >&2
	"$@" >"$out/$name.log" 2>&1 &
	local pid=$!
	started+=("$pid")
	if ! wait_http "$health" "$pid"; then
		echo "   $name did not come up; log:" >&2
		tail -20 "$out/$name.log" >&2
		stop_pid "$pid"
		return 0
	fi
	sleep 0.5
	rss_kib "$pid" >"$out/$name.idle.rss"
	[ -n "${side:-}" ] || targets+=("$name")
	url_of[$name]=$url
	pid_of[$name]=$pid
}

port=$(free_port)
export MCPWRAP_TOKEN=$token # read by mcpwrap and by the load tool
MCPWRAP_LISTEN=127.0.0.1:$port MCPWRAP_LOG_LEVEL=warn start_server mcpwrap \
	"http://127.0.0.1:$port/mcp" "http://127.0.0.1:$port/healthz" bin/mcpwrap -- "${echo_argv[@]}"

# The floor: the child's own logic answered over HTTP by the server itself.
port=$(free_port)
start_server floor "http://127.0.0.1:$port/mcp" "http://127.0.0.1:$port/mcp" "${echo_argv[@]}" -http "127.0.0.1:$port"

# For the setup rows: mcpwrap with warm children beside the cold one.
port=$(free_port)
MCPWRAP_LISTEN=127.0.0.1:$port MCPWRAP_LOG_LEVEL=warn MCPWRAP_WARM_CHILDREN=$warm_children side=1 start_server mcpwrap-warm \
	"http://127.0.0.1:$port/mcp" "http://127.0.0.1:$port/healthz" bin/mcpwrap -- "${echo_argv[@]}"

# The npx rows: server-everything installed into a folder of its own, then
# started by npx from there without a download.
npx_dir=$work/npx
npx_cmd="npx --no-install @modelcontextprotocol/server-everything stdio"
if [ "${NPX:-1}" != 0 ]; then
	echo "== npm install @modelcontextprotocol/server-everything" >&2
	mkdir -p "$npx_dir"
	if timeout 300 npm install --prefix "$npx_dir" --no-audit --no-fund --loglevel=error \
		@modelcontextprotocol/server-everything >"$out/npx-npm.log" 2>&1; then
		for w in 0 "$warm_children"; do
			port=$(free_port)
			name=mcpwrap-npx-cold
			[ "$w" = 0 ] || name=mcpwrap-npx-warm
			# shellcheck disable=SC2086
			MCPWRAP_LISTEN=127.0.0.1:$port MCPWRAP_LOG_LEVEL=warn MCPWRAP_WARM_CHILDREN=$w MCPWRAP_CHILD_DIR=$npx_dir side=1 \
				start_server "$name" "http://127.0.0.1:$port/mcp" "http://127.0.0.1:$port/healthz" bin/mcpwrap -- $npx_cmd
		done
	else
		echo "   npm install failed; npx rows skipped" >&2
		tail -5 "$out/npx-npm.log" >&2
	fi
fi

peers=${PEERS_DIR:-$work/peers}
if [ "${PEERS:-1}" != 0 ]; then
	echo "== npm install supergateway mcp-proxy" >&2
	mkdir -p "$peers"
	if ! timeout 300 npm install --prefix "$peers" --no-audit --no-fund --loglevel=error \
		supergateway@4 mcp-proxy@6 >"$out/npm.log" 2>&1; then
		echo "   npm install failed; peers skipped" >&2
		tail -5 "$out/npm.log" >&2
	fi
fi

# supergateway has no host option: this preload binds its listener to
# loopback, where the benchmark's traffic stays.
cat >"$work/loopback.cjs" <<'JS'
const net = require('net');
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  if (typeof args[0] === 'number' && (args.length === 1 || typeof args[1] === 'function')) {
    args.splice(1, 0, '127.0.0.1');
  }
  return listen.apply(this, args);
};
JS

if [ "${PEERS:-1}" != 0 ] && [ -x "$peers/node_modules/.bin/supergateway" ]; then
	port=$(free_port)
	NODE_OPTIONS="--require=$work/loopback.cjs" start_server supergateway \
		"http://127.0.0.1:$port/mcp" "http://127.0.0.1:$port/healthz" \
		"$peers/node_modules/.bin/supergateway" --stdio "$echo_cmd" --outputTransport streamableHttp \
		--stateful --port "$port" --healthEndpoint /healthz --logLevel none
fi

if [ "${PEERS:-1}" != 0 ] && [ -x "$peers/node_modules/.bin/mcp-proxy" ]; then
	port=$(free_port)
	start_server mcp-proxy "http://127.0.0.1:$port/mcp" "http://127.0.0.1:$port/ping" \
		"$peers/node_modules/.bin/mcp-proxy" --host 127.0.0.1 --port "$port" --server stream \
		--apiKey "$token" -- "${echo_argv[@]}"
	header_of[mcp-proxy]="X-API-Key: $token"
fi

# Each cell runs against every target back to back, direct first, so that
# a machine busy with something else skews a cell's ratios less than it
# would if each target's whole matrix ran at a different time.
# Rounds repeat the whole matrix; a ratio is taken within a round and the
# median over rounds is shown.
echo "== matrix: ${targets[*]}, $rounds round(s)" >&2
cells=${CELLS:-seq par8 many open held req1m resp1m setup npxsetup}
want() { [[ " $cells " == *" $1 "* ]]; }
for round in $(seq "$rounds"); do
	if want seq; then for t in "${targets[@]}"; do run_cell seq "$t" --sessions 1 --calls "$seq_calls" --inflight 1 --payload 64; done; fi
	if want par8; then for t in "${targets[@]}"; do run_cell par8 "$t" --sessions 1 --calls "$par_calls" --inflight 8 --payload 64; done; fi
	if want many; then for t in "${targets[@]}"; do run_cell many "$t" --sessions "$many_sessions" --calls "$many_calls" --inflight 1 --payload 64; done; fi
	if want open; then for t in "${targets[@]}"; do run_cell open "$t" --sessions "$open_sessions" --calls 1; done; fi
	if want held; then for t in "${targets[@]}"; do run_held "$t"; done; fi
	if want req1m; then for t in "${targets[@]}"; do run_cell req1m "$t" --sessions 1 --calls "$big_calls" --payload 1048576; done; fi
	if want resp1m; then for t in "${targets[@]}"; do run_cell resp1m "$t" --sessions 1 --calls "$big_calls" --response 1048576; done; fi
	if want setup; then
		for t in direct mcpwrap mcpwrap-warm; do
			[ "$t" = direct ] || [ -n "${url_of[$t]:-}" ] || continue
			run_cell setup "$t" --sessions "$setup_sessions" --open-inflight 1 --open-every "$setup_every" --calls 1
		done
	fi
	if want npxsetup && [ -n "${url_of[mcpwrap-npx-cold]:-}" ]; then
		# Direct spawns run from the install folder, as mcpwrap's children do.
		(cd "$npx_dir" && direct_cmd=$npx_cmd cell_cap=120s run_cell npxsetup direct --sessions "$npx_sessions" \
			--open-inflight 1 --open-every "$npx_every" --calls 1 --tool echo --args '{"message":"hi"}')
		for t in mcpwrap-npx-cold mcpwrap-npx-warm; do
			cell_cap=120s run_cell npxsetup "$t" --sessions "$npx_sessions" --open-inflight 1 --open-every "$npx_every" \
				--calls 1 --tool echo --args '{"message":"hi"}'
		done
	fi
done

# ---- the table

# num keeps three significant figures, enough for a ratio table.
num() { awk -v a="$1" 'BEGIN { if (a == "") print "n/a"; else if (a >= 100) printf "%.0f", a; else printf "%.3g", a }'; }

# median of the numbers on stdin, one a line; empty when there are none.
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print ""; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# per_round TARGET CELL KEY prints KEY of each round's report, one a line.
# A zero is a figure with no samples behind it (nothing succeeded), so it
# is left out rather than counted as infinitely fast.
per_round() {
	local r f v
	for r in $(seq "$rounds"); do
		f=$out/$1.$2.r$r.json
		[ -s "$f" ] || continue
		v=$(jget "$f" "$3")
		awk -v v="$v" 'BEGIN { if (v + 0 > 0) print v }'
	done
}

# ratio_rounds TARGET CELL KEY [BASE] prints, for each round with both
# reports, the target's KEY over BASE's (direct's by default).
ratio_rounds() {
	local r a b
	for r in $(seq "$rounds"); do
		a=$(jget "$out/$1.$2.r$r.json" "$3")
		b=$(jget "$out/${4:-direct}.$2.r$r.json" "$3")
		awk -v a="$a" -v b="$b" 'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "%.4f\n", a / b }'
	done
}

# errs notes errors by kind over all rounds, and rounds the cap cut short.
errs() {
	local r f cut=0 kinds
	kinds=$(for r in $(seq "$rounds"); do
		f=$out/$1.$2.r$r.json
		[ -s "$f" ] && sed -n 's/.*"errors":{\([^}]*\)}.*/\1/p' "$f" | tr -d '"' | tr ',' '\n'
	done | awk -F: 'NF == 2 { n[$1] += $2 } END { for (k in n) printf "%s%s %d", (s++ ? ", " : ""), k, n[k] }')
	for r in $(seq "$rounds"); do
		f=$out/$1.$2.r$r.json
		[ -s "$f" ] && [ "$(jget "$f" cut_short)" = true ] && cut=$((cut + 1))
	done
	[ -z "$kinds" ] || printf '; errors: %s' "$kinds"
	[ "$cut" = 0 ] || printf '; %s round(s) cut by the cap' "$cut"
}

# cell_row LABEL CELL KEY UNIT prints one row: direct's median figure, and
# for each wrapper the median over rounds of its ratio to direct, with its
# median figure.
cell_row() {
	local label=$1 name=$2 key=$3 unit=$4 t r v
	printf '| %s | %s %s%s |' "$label" "$(num "$(per_round direct "$name" "$key" | median)")" "$unit" "$(errs direct "$name")"
	for t in "${targets[@]:1}"; do
		r=$(ratio_rounds "$t" "$name" "$key" | median)
		v=$(per_round "$t" "$name" "$key" | median)
		if [ -z "$v" ]; then
			printf ' n/a%s |' "$(errs "$t" "$name")"
			continue
		fi
		printf ' %s× (%s %s%s) |' "$(awk -v r="$r" 'BEGIN { if (r == "") print "n/a"; else printf "%.2f", r }')" "$(num "$v")" "$unit" "$(errs "$t" "$name")"
	done
	echo
}

{
	echo
	echo "Ratios to direct from one run: $(nproc) cores, QUICK=$quick, median of $rounds round(s), each ratio taken within its round."
	echo "Rates: higher is better; latencies: lower is better."
	echo
	printf '| cell | direct |'
	for t in "${targets[@]:1}"; do printf ' %s |' "$t"; done
	echo
	printf '|---|---|'
	for _ in "${targets[@]:1}"; do printf -- '---|'; done
	echo
	cell_row "sequential, 1 session: calls/s" seq calls_per_sec "/s"
	cell_row "sequential: call p50" seq call_p50_ms ms
	cell_row "8 in flight, 1 session: calls/s" par8 calls_per_sec "/s"
	cell_row "$many_sessions sessions × $many_calls calls: calls/s" many calls_per_sec "/s"
	cell_row "$open_sessions sessions opened at once: setup p50" open setup_p50_ms ms
	cell_row "$held_sessions sessions held: setup p50" held setup_p50_ms ms
	cell_row "1 MiB request: call p50" req1m call_p50_ms ms
	cell_row "1 MiB response: call p50" resp1m call_p50_ms ms

	printf '| sequential: added p50 latency | – |'
	for t in "${targets[@]:1}"; do
		added=$(for r in $(seq "$rounds"); do
			awk -v a="$(jget "$out/$t.seq.r$r.json" call_p50_ms)" -v b="$(jget "$out/direct.seq.r$r.json" call_p50_ms)" \
				'BEGIN { if (a != "" && b != "") printf "%.4f\n", a - b }'
		done | median)
		printf ' %s ms |' "$(num "$added")"
	done
	echo
	printf '| %s sessions held: opened (worst round) | %s |' "$held_sessions" "$(per_round direct held sessions_opened | sort -g | head -1)"
	for t in "${targets[@]:1}"; do printf ' %s |' "$(per_round "$t" held sessions_opened | sort -g | head -1)"; done
	echo
	printf '| wrapper RSS idle | – |'
	for t in "${targets[@]:1}"; do printf ' %s MiB |' "$(awk -v k="$(cat "$out/$t.idle.rss")" 'BEGIN { printf "%.1f", k / 1024 }')"; done
	echo
	printf '| wrapper RSS per held session (beyond the child) | – |'
	for t in "${targets[@]:1}"; do
		per=$(for r in $(seq "$rounds"); do
			[ -s "$out/$t.held.r$r.rss" ] || continue
			read -r before held <"$out/$t.held.r$r.rss"
			opened=$(jget "$out/$t.held.r$r.json" sessions_opened)
			awk -v b="$before" -v h="$held" -v n="${opened:-0}" 'BEGIN { if (h > 0 && n > 0) printf "%.2f\n", (h - b) / n }'
		done | median)
		printf ' %s KiB |' "$(num "$per")"
	done
	echo
	echo
	echo "RSS is the wrapper process's own VmRSS (children not counted), read while all held sessions are open, less the RSS just before; direct has no wrapper; the floor's includes its sessions' servers."

	# mcpwrap against the floor: what is left to gain on the hot path.
	if [ -n "${url_of[floor]:-}" ]; then
		echo
		echo "mcpwrap against the native-HTTP floor (bench/echoserver -http: the child's own logic ($child_kind) answered over HTTP by a server of its own, no pipes, no child); median over rounds of the ratio within each round. The last row adds to the floor one round trip over the child's pipes as direct measures it: no wrapper can do better than that."
		echo
		echo "| cell | floor | mcpwrap ÷ floor |"
		echo "|---|---|---|"
		floor_row() {
			local r
			r=$(ratio_rounds mcpwrap "$2" "$3" floor | median)
			printf '| %s | %s %s | %s |\n' "$1" "$(num "$(per_round floor "$2" "$3" | median)")" "$4" \
				"$(awk -v r="$r" 'BEGIN { if (r == "") print "n/a"; else printf "%.2f×", r }')"
		}
		want seq && floor_row "sequential: calls/s" seq calls_per_sec /s
		want par8 && floor_row "8 in flight: calls/s" par8 calls_per_sec /s
		want open && floor_row "$open_sessions sessions opened at once: setup p50" open setup_p50_ms ms
		want resp1m && floor_row "1 MiB response: call p50" resp1m call_p50_ms ms
		if want seq; then
			# Within each round: 1 / (1/floor + 1/direct) calls/s, and
			# mcpwrap's rate over it.
			bound=$(for r in $(seq "$rounds"); do
				awk -v f="$(jget "$out/floor.seq.r$r.json" calls_per_sec)" -v d="$(jget "$out/direct.seq.r$r.json" calls_per_sec)" \
					'BEGIN { if (f + 0 > 0 && d + 0 > 0) printf "%.1f\n", 1 / (1 / f + 1 / d) }'
			done | median)
			r=$(for r in $(seq "$rounds"); do
				awk -v m="$(jget "$out/mcpwrap.seq.r$r.json" calls_per_sec)" -v f="$(jget "$out/floor.seq.r$r.json" calls_per_sec)" -v d="$(jget "$out/direct.seq.r$r.json" calls_per_sec)" \
					'BEGIN { if (m + 0 > 0 && f + 0 > 0 && d + 0 > 0) printf "%.4f\n", m * (1 / f + 1 / d) }'
			done | median)
			printf '| sequential: calls/s of the floor plus one pipe round trip | %s /s | %s |\n' "$(num "$bound")" \
				"$(awk -v r="$r" 'BEGIN { if (r == "") print "n/a"; else printf "%.2f×", r }')"
		fi
	fi

	# Setup for users arriving one by one, cold and warm.
	if want setup || want npxsetup; then
		echo
		echo "Session setup (initialize answered) for users arriving one by one: one session every $setup_every (echo child, $setup_sessions sessions) or $npx_every (server-everything through npx, $npx_sessions sessions); warm: MCPWRAP_WARM_CHILDREN=$warm_children. Median over rounds of each p50, and of the warm ÷ cold ratio within each round."
		echo
		echo "| child | direct spawn: setup p50 | mcpwrap cold: setup p50 | mcpwrap warm: setup p50 | warm ÷ cold |"
		echo "|---|---|---|---|---|"
		setup_row() {
			local label=$1 cell=$2 cold=$3 warm=$4 r
			r=$(ratio_rounds "$warm" "$cell" setup_p50_ms "$cold" | median)
			printf '| %s | %s ms%s | %s ms%s | %s ms%s | %s |\n' "$label" \
				"$(num "$(per_round direct "$cell" setup_p50_ms | median)")" "$(errs direct "$cell")" \
				"$(num "$(per_round "$cold" "$cell" setup_p50_ms | median)")" "$(errs "$cold" "$cell")" \
				"$(num "$(per_round "$warm" "$cell" setup_p50_ms | median)")" "$(errs "$warm" "$cell")" \
				"$(awk -v r="$r" 'BEGIN { if (r == "") print "n/a"; else printf "%.2f×", r }')"
		}
		want setup && setup_row "bench/echoserver (Go)" setup mcpwrap mcpwrap-warm
		want npxsetup && [ -n "${url_of[mcpwrap-npx-cold]:-}" ] &&
			setup_row "server-everything via npx (Node)" npxsetup mcpwrap-npx-cold mcpwrap-npx-warm
	fi
	[ -z "${OUT:-}" ] || echo "Reports: $out"
} | tee "$out/table.md"
