#!/usr/bin/env bash
# The llm-proxy benchmark: one run, loopback only, three targets measured the
# same way with wrk —
#   direct     nginx answering POST /v1/chat/completions with a canned completion
#   nginx      a second nginx doing plain proxy_pass to the first (one HTTP hop's floor)
#   llm-proxy  `llm-proxy serve` with an openai-compatible connection to the first
#              nginx and a virtual key WITH limits (tps + monthly token limit), so
#              limit checks and usage recording are on
# — then the same llm-proxy with its limit state shared through Redis (a second
# `serve --redis` on a redis-server this script starts: every admission and
# settlement a script call to Redis), then streaming (time to first event, per-event pacing), memory with 1,000
# concurrent open streams, and an optional soak.
#
# Usage: bash bench/run.sh [--soak SECONDS]
# Environment (defaults):
#   LLM_PROXY_BIN       binary to measure (else builds Release into build-bench/)
#   BENCH_DURATION=10s  length of each wrk run
#   BENCH_THREADS=1     llm-proxy serve --threads (nginx runs 1 worker)
#   BENCH_CONNECTIONS=32
#   BENCH_STREAMS=1000  concurrent open streams for the memory check
#   BENCH_TTFB_N=500    requests per time-to-first-event measurement
#   BENCH_JOBS=2        build parallelism when building
#   BENCH_KEEP=1        keep the work directory (configs, logs, db)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; }

soak=0
while (($#)); do
  case $1 in
    --soak) soak=${2:?--soak needs SECONDS}; shift 2 ;;
    --soak=*) soak=${1#--soak=}; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "bench: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
  esac
done
[[ $soak =~ ^[0-9]+$ ]] || { echo "bench: --soak takes whole seconds" >&2; exit 2; }

DURATION=${BENCH_DURATION:-10s}
THREADS=${BENCH_THREADS:-1}
CONNS=${BENCH_CONNECTIONS:-32}
STREAMS=${BENCH_STREAMS:-1000}
TTFB_N=${BENCH_TTFB_N:-500}
JOBS=${BENCH_JOBS:-2}
command_line="BENCH_DURATION=$DURATION BENCH_THREADS=$THREADS BENCH_CONNECTIONS=$CONNS"
command_line+=" BENCH_STREAMS=$STREAMS BENCH_TTFB_N=$TTFB_N"
[[ -n ${LLM_PROXY_BIN:-} ]] && command_line+=" LLM_PROXY_BIN=$LLM_PROXY_BIN"
command_line+=" bash bench/run.sh"
((soak > 0)) && command_line+=" --soak $soak"

log() { printf 'bench: %s\n' "$*" >&2; }
die() { printf 'bench: error: %s\n' "$*" >&2; exit 1; }

# --- tools -------------------------------------------------------------------
bash "$root/packaging/install-deps.sh" bench
NGINX=/usr/sbin/nginx
WRK=/usr/bin/wrk
[[ -x $NGINX ]] || die "$NGINX not found (Debian's nginx-light)"
[[ -x $WRK ]] || die "$WRK not found (Debian's wrk)"
command -v python3 >/dev/null || die "python3 not found"
command -v curl >/dev/null || die "curl not found"
PY=(python3 "$here/bench.py")

if [[ -n ${LLM_PROXY_BIN:-} ]]; then
  bin=$LLM_PROXY_BIN
else
  log "building llm-proxy (Release) into build-bench/"
  cmake -S "$root" -B "$root/build-bench" -G Ninja -DCMAKE_BUILD_TYPE=Release -DLLM_PROXY_TESTS=OFF >/dev/null
  cmake --build "$root/build-bench" -j"$JOBS" --target llm-proxy >/dev/null
  bin=$root/build-bench/llm-proxy
fi
[[ -x $bin ]] || die "llm-proxy binary '$bin' is not executable"
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")

# 1,000 streams need ~2,000 descriptors in the proxy (client + upstream side).
need_fds=$((2 * STREAMS + 512))
if (($(ulimit -n) < need_fds)); then
  ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
  (($(ulimit -n) >= need_fds)) || log "warning: ulimit -n is $(ulimit -n), below the $need_fds that $STREAMS streams need"
fi

# --- work directory and cleanup ------------------------------------------------
work=$(mktemp -d "${TMPDIR:-/tmp}/llm-proxy-bench.XXXXXX")
pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for _ in $(seq 50); do
    local alive=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    ((alive)) || break
    sleep 0.1
  done
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  if [[ ${BENCH_KEEP:-0} == 1 ]]; then log "work directory kept: $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- helpers -------------------------------------------------------------------
CLK_TCK=$(getconf CLK_TCK)
cpu_ticks() { # utime + stime of a process (all its threads), in clock ticks
  local s
  s=$(<"/proc/$1/stat")
  s=${s##*) }
  local -a f
  read -r -a f <<<"$s"
  echo $((f[11] + f[12]))
}
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
mib() { awk -v k="$1" 'BEGIN {printf "%.1f", k / 1024}'; }
wait_port() {
  local port=$1
  for _ in $(seq 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  die "nothing listening on port $port"
}
worker_of() { # the single worker process of an nginx master
  local w
  for _ in $(seq 100); do
    w=$(ps -o pid= --ppid "$1" | head -1 | tr -d ' ')
    [[ -n $w ]] && { echo "$w"; return 0; }
    sleep 0.1
  done
  die "nginx master $1 has no worker"
}
# Background sampler of a process's peak RSS, written to a file.
rss_peak_start() {
  local pid=$1 out=$2
  (
    max=0
    while kill -0 "$pid" 2>/dev/null; do
      v=$(rss_kib "$pid" 2>/dev/null || echo 0)
      ((v > max)) && max=$v
      echo "$max" >"$out"
      sleep 0.5
    done
  ) &
  sampler=$!
  pids+=("$sampler")
}
rss_peak_stop() { kill "$sampler" 2>/dev/null || true; wait "$sampler" 2>/dev/null || true; }

read -r ORIGIN_PORT PROXY_PORT SLOW_PORT REDIS_PORT < <("${PY[@]}" freeports 4)

# --- canned upstream and nginx proxy_pass -----------------------------------------
CANNED='{"id":"chatcmpl-bench","object":"chat.completion","created":1700000000,"model":"gpt-bench","choices":[{"index":0,"message":{"role":"assistant","content":"Hello! How can I help you today?","refusal":null},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":9,"total_tokens":21},"system_fingerprint":"fp_bench"}'
chunk() { printf 'data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1700000000,"model":"gpt-bench","choices":[%s]%s}\\n\\n' "$1" "${2:-}"; }
SSE=$(chunk '{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}')
for w in Hello! How can I help you today?; do
  SSE+=$(chunk "{\"index\":0,\"delta\":{\"content\":\"$w \"},\"finish_reason\":null}")
done
SSE+=$(chunk '{"index":0,"delta":{},"finish_reason":"stop"}')
SSE+=$(chunk '' ',"usage":{"prompt_tokens":12,"completion_tokens":7,"total_tokens":19}')
SSE+='data: [DONE]\n\n'

nginx_common() { # $1: instance directory
  cat <<EOF
worker_processes 1;
daemon off;
pid $1/nginx.pid;
error_log $1/error.log warn;
events { worker_connections 8192; }
http {
  access_log off;
  client_body_temp_path $1/tmp/body;
  proxy_temp_path $1/tmp/proxy;
  fastcgi_temp_path $1/tmp/fastcgi;
  uwsgi_temp_path $1/tmp/uwsgi;
  scgi_temp_path $1/tmp/scgi;
  keepalive_requests 10000000;
  keepalive_timeout 75s;
EOF
}
mkdir -p "$work/origin/tmp" "$work/proxy/tmp"
chmod 755 "$work" "$work/origin" "$work/proxy"
{
  nginx_common "$work/origin"
  cat <<EOF
  server {
    listen 127.0.0.1:$ORIGIN_PORT;
    location = /v1/chat/completions { default_type application/json; return 200 '$CANNED'; }
    location = /sse/v1/chat/completions { default_type text/event-stream; return 200 '$SSE'; }
    location / { return 404; }
  }
}
EOF
} >"$work/origin/nginx.conf"
{
  nginx_common "$work/proxy"
  cat <<EOF
  upstream origin {
    server 127.0.0.1:$ORIGIN_PORT;
    keepalive 64;
    keepalive_requests 10000000;
  }
  server {
    listen 127.0.0.1:$PROXY_PORT;
    location / {
      proxy_pass http://origin;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
    }
  }
}
EOF
} >"$work/proxy/nginx.conf"

start_nginx() { # $1: instance directory; sets nginx_master
  "$NGINX" -t -q -p "$1" -c "$1/nginx.conf" -e "$1/error.log" || die "nginx rejected $1/nginx.conf"
  "$NGINX" -p "$1" -c "$1/nginx.conf" -e "$1/error.log" &
  nginx_master=$!
  pids+=("$nginx_master")
}
start_nginx "$work/origin"
wait_port "$ORIGIN_PORT"
origin_worker=$(worker_of "$nginx_master")
start_nginx "$work/proxy"
wait_port "$PROXY_PORT"
proxy_worker=$(worker_of "$nginx_master")

"${PY[@]}" slow-upstream "$SLOW_PORT" --hold-events 120 2>"$work/slow.err" &
pids+=($!)
wait_port "$SLOW_PORT"

# --- llm-proxy -------------------------------------------------------------------
unset LLM_PROXY_DB DB_TYPE DB_DSN MASTER_KEY
db="sqlite://$work/bench.db"
lp() { "$bin" --db "$db" "$@"; }
lp connection add --name nginx --provider openai-compatible --endpoint "http://127.0.0.1:$ORIGIN_PORT/v1" \
  --api-key sk-bench-upstream >/dev/null
lp connection add --name nginx-sse --provider openai-compatible --endpoint "http://127.0.0.1:$ORIGIN_PORT/sse/v1" >/dev/null
lp connection add --name slow --provider openai-compatible --endpoint "http://127.0.0.1:$SLOW_PORT/fast/v1" >/dev/null
lp connection add --name hold --provider openai-compatible --endpoint "http://127.0.0.1:$SLOW_PORT/hold/v1" >/dev/null
lp model add --name bench --remote gpt-bench --conn-id nginx --input-price 0.15 --output-price 0.6 >/dev/null
lp model add --name bench-sse --remote gpt-bench --conn-id nginx-sse >/dev/null
lp model add --name slow --remote slow-1 --conn-id slow >/dev/null
lp model add --name hold --remote hold-1 --conn-id hold >/dev/null
KEY=$(lp --json vkey add --name bench --model-id bench --model-id bench-sse --model-id slow --model-id hold \
  --tps 1000000 --token-limit 1000000000000 --token-window month |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["key"])')

# start_serve NAME [ARGS...]: sets serve_pid and serve_port. The access log
# (on by default, JSON on stdout) is formatted but discarded: its cost is
# measured, without filling the disk over a soak.
start_serve() {
  local name=$1
  shift
  "$bin" --db "$db" serve --listen 127.0.0.1:0 --threads "$THREADS" "$@" >/dev/null 2>"$work/$name.err" &
  serve_pid=$!
  pids+=("$serve_pid")
  for _ in $(seq 100); do
    grep -q 'listening on' "$work/$name.err" && break
    kill -0 "$serve_pid" 2>/dev/null || die "llm-proxy serve exited: $(cat "$work/$name.err")"
    sleep 0.1
  done
  serve_port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$work/$name.err" | head -1)
  [[ -n $serve_port ]] || die "llm-proxy serve did not start: $(cat "$work/$name.err")"
}
start_serve serve
LP_PORT=$serve_port
LP_PID=$serve_pid

# The same key's limits shared through Redis, by a second instance.
mkdir -p "$work/redis"
/usr/bin/redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
  --dir "$work/redis" >"$work/redis/log" 2>&1 &
redis_pid=$!
pids+=("$redis_pid")
wait_port "$REDIS_PORT"
start_serve serve-redis --redis "redis://127.0.0.1:$REDIS_PORT/0"
LPR_PORT=$serve_port
serve_redis_pid=$serve_pid
serve_pid=$LP_PID

BODY='{"model":"bench","messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Say hello in one short sentence."}]}'
declare -A URL=(
  [direct]="http://127.0.0.1:$ORIGIN_PORT/v1/chat/completions"
  [nginx]="http://127.0.0.1:$PROXY_PORT/v1/chat/completions"
  [llm-proxy]="http://127.0.0.1:$LP_PORT/v1/chat/completions"
  [redis]="http://127.0.0.1:$LPR_PORT/v1/chat/completions"
)
declare -A PID=([direct]=$origin_worker [nginx]=$proxy_worker [llm-proxy]=$serve_pid
  [redis]=$serve_redis_pid)
targets=(direct nginx llm-proxy redis)

for t in "${targets[@]}"; do # every target answers the canned completion
  out=$(curl -sS -w '\n%{http_code}' -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
    -d "$BODY" "${URL[$t]}")
  [[ ${out##*$'\n'} == 200 && $out == *'"usage"'* ]] || die "$t did not answer 200 with a completion: $out"
done

cat >"$work/post.lua" <<EOF
wrk.method = "POST"
wrk.body = '$BODY'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $KEY"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("WRKSTATS requests=%.0f duration_us=%.0f non2xx=%.0f sockerr=%.0f p50_us=%.0f p99_us=%.0f\n",
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
EOF

declare -A R
# wrk_run TARGET THREADS CONNS PREFIX [DURATION]: fills R[TARGET.PREFIX.*]
wrk_run() {
  local t=$1 threads=$2 conns=$3 p=$4 d=${5:-$DURATION} out line kv
  out=$("$WRK" -t"$threads" -c"$conns" -d"$d" --latency -s "$work/post.lua" "${URL[$t]}")
  echo "$out" >>"$work/wrk.log"
  line=$(grep '^WRKSTATS' <<<"$out") || die "wrk printed no summary for $t: $out"
  for kv in ${line#WRKSTATS }; do R[$t.$p.${kv%%=*}]=${kv#*=}; done
  if ((R[$t.$p.non2xx] > 0 || R[$t.$p.sockerr] > 0)); then
    log "warning: $t at $conns connections: ${R[$t.$p.non2xx]} non-2xx replies, ${R[$t.$p.sockerr]} socket errors"
  fi
}

load_start=$(cut -d' ' -f1-3 /proc/loadavg)
log "ports: origin $ORIGIN_PORT, nginx proxy $PROXY_PORT, llm-proxy $LP_PORT (threads $THREADS), slow upstream $SLOW_PORT"
sleep 1
for t in "${targets[@]}"; do R[$t.rss_idle]=$(rss_kib "${PID[$t]}"); done

for t in "${targets[@]}"; do
  log "$t: warm-up, then $CONNS connections for $DURATION, then 1 connection for $DURATION"
  wrk_run "$t" 1 4 warm 2s
  rss_peak_start "${PID[$t]}" "$work/rss_peak"
  before=$(cpu_ticks "${PID[$t]}")
  redis_before=$(cpu_ticks "$redis_pid")
  wrk_run "$t" 2 "$CONNS" c32
  after=$(cpu_ticks "${PID[$t]}")
  redis_after=$(cpu_ticks "$redis_pid")
  rss_peak_stop
  R[$t.redis_cpu_us]=$(awk -v d=$((redis_after - redis_before)) -v hz="$CLK_TCK" -v n="${R[$t.c32.requests]}" \
    'BEGIN {printf "%.1f", d * 1e6 / hz / n}')
  R[$t.rss_load]=$(<"$work/rss_peak")
  R[$t.cpu_us]=$(awk -v d=$((after - before)) -v hz="$CLK_TCK" -v n="${R[$t.c32.requests]}" \
    'BEGIN {printf "%.1f", d * 1e6 / hz / n}')
  R[$t.rps]=$(awk -v n="${R[$t.c32.requests]}" -v us="${R[$t.c32.duration_us]}" 'BEGIN {printf "%.0f", n / (us / 1e6)}')
  wrk_run "$t" 1 1 c1
done
R[llm-proxy.rss_after]=$(rss_kib "$serve_pid")
kill -TERM "$serve_redis_pid"
serve_redis_rc=0
wait "$serve_redis_pid" || serve_redis_rc=$?

# --- streaming --------------------------------------------------------------------
log "streaming: time to first event (${TTFB_N} requests each)"
R[direct.ttfb]=$("${PY[@]}" ttfb --port "$ORIGIN_PORT" --path /sse/v1/chat/completions --n "$TTFB_N")
R[nginx.ttfb]=$("${PY[@]}" ttfb --port "$PROXY_PORT" --path /sse/v1/chat/completions --n "$TTFB_N")
R[llm-proxy.ttfb]=$("${PY[@]}" ttfb --port "$LP_PORT" --path /v1/chat/completions --key "$KEY" \
  --model bench-sse --n "$TTFB_N")
jget() { python3 -c 'import json, sys; d = json.loads(sys.argv[1]); print(d[sys.argv[2]])' "$1" "$2"; }
fmt_us() { awk -v v="$1" 'BEGIN {printf "%.0f", v}'; }

log "streaming: pacing of an upstream that sends an event every 50 ms"
# Delay from the upstream writing each paced event to the client reading it.
pace_direct=$("${PY[@]}" pacing --port "$SLOW_PORT" --path /fast/v1/chat/completions)
pace_proxy=$("${PY[@]}" pacing --port "$LP_PORT" --path /v1/chat/completions --key "$KEY" --model slow)
fmt_ms() { awk -v v="$1" 'BEGIN {printf "%.2f", v}'; }
pacing_lag=$(fmt_ms "$(jget "$pace_proxy" max_ms)")
pacing_p50=$(fmt_ms "$(jget "$pace_proxy" p50_ms)")
pacing="upstream write → client read per event: direct p50 $(fmt_ms "$(jget "$pace_direct" p50_ms)") ms"
pacing+=" / max $(fmt_ms "$(jget "$pace_direct" max_ms)") ms, via llm-proxy p50 $(fmt_ms "$(jget "$pace_proxy" p50_ms)") ms"
pacing+=" / max $pacing_lag ms ($(jget "$pace_proxy" events) events, 50 ms apart)"

log "streaming: $STREAMS concurrent open streams through llm-proxy"
R[streams]=$("${PY[@]}" streams --port "$LP_PORT" --path /v1/chat/completions --key "$KEY" --model hold \
  --pid "$serve_pid" --count "$STREAMS")
R[llm-proxy.rss_idle_end]=$(rss_kib "$serve_pid")

# --- soak ----------------------------------------------------------------------------
soak_line="not run (use --soak 600)"
if ((soak > 0)); then
  log "soak: $CONNS connections for ${soak}s, RSS every 10 s"
  "$WRK" -t2 -c"$CONNS" -d"${soak}s" -s "$work/post.lua" "${URL[llm-proxy]}" >"$work/soak.wrk" &
  soak_wrk=$!
  pids+=("$soak_wrk")
  : >"$work/soak.rss"
  elapsed=0
  while kill -0 "$soak_wrk" 2>/dev/null && ((elapsed < soak)); do
    sleep 10
    elapsed=$((elapsed + 10))
    echo "$elapsed $(rss_kib "$serve_pid")" >>"$work/soak.rss"
  done
  wait "$soak_wrk" || true
  soak_reqs=$(sed -n 's/^WRKSTATS requests=\([0-9]*\).*/\1/p' "$work/soak.wrk")
  soak_line=$(awk -v reqs="${soak_reqs:-?}" 'NR == 1 {first = $2; t1 = $1} {last = $2; tl = $1; if ($2 > max) max = $2}
    END {printf "RSS at %ds %.1f MiB, at %ds %.1f MiB (peak %.1f MiB, growth %+.1f MiB) over %s requests",
         t1, first / 1024, tl, last / 1024, max / 1024, (last - first) / 1024, reqs}' "$work/soak.rss")
  R[soak_growth_kib]=$(awk 'NR == 1 {f = $2} {l = $2} END {print l - f}' "$work/soak.rss")
  # Six evenly spaced samples, so a plateau can be told from a steady climb.
  soak_series=$(awk '{t[NR] = $1; v[NR] = $2} END {for (i = 0; i <= 5; i++) {
      k = 1 + int(i * (NR - 1) / 5); printf "%s%ds %.1f", (i ? ", " : ""), t[k], v[k] / 1024}}' "$work/soak.rss")
fi

# --- shut down llm-proxy, check what it recorded ------------------------------------------
kill -TERM "$serve_pid"
serve_rc=0
wait "$serve_pid" || serve_rc=$?
lp_sent=$((2 + ${R[llm-proxy.warm.requests]} + ${R[llm-proxy.c32.requests]} + ${R[llm-proxy.c1.requests]} + ${soak_reqs:-0}))
lp_sent=$((lp_sent + ${R[redis.warm.requests]} + ${R[redis.c32.requests]} + ${R[redis.c1.requests]}))
usage_bench=$(lp --json usage --by model |
  python3 -c 'import json, sys; print(sum(g["requests"] for g in json.load(sys.stdin) if g["group"] == "bench"))')

# --- report ----------------------------------------------------------------------------
verdict() { if awk -v a="$1" -v b="$2" 'BEGIN {exit !(a <= b)}'; then echo PASS; else echo FAIL; fi; }
ttfb_p50() { fmt_us "$(jget "${R[$1.ttfb]}" p50_us)"; }
ttfb_p99() { fmt_us "$(jget "${R[$1.ttfb]}" p99_us)"; }
s_json=${R[streams]}
s_rss=$(jget "$s_json" rss_kib_max)
s_open=$(jget "$s_json" open_at_sample)
s_failed=$(jget "$s_json" failed)
s_after=$(jget "$s_json" rss_kib_after_close)

added_p50=$((${R[llm-proxy.c1.p50_us]} - ${R[direct.c1.p50_us]}))
nginx_added_p50=$((${R[nginx.c1.p50_us]} - ${R[direct.c1.p50_us]}))
cpu_ratio=$(awk -v a="${R[llm-proxy.cpu_us]}" -v b="${R[nginx.cpu_us]}" 'BEGIN {printf "%.2f", a / b}')
ttfb_added=$(($(ttfb_p50 llm-proxy) - $(ttfb_p50 direct)))
redis_added_p50=$((${R[redis.c1.p50_us]} - ${R[llm-proxy.c1.p50_us]}))
redis_rps_pct=$(awk -v a="${R[redis.rps]}" -v b="${R[llm-proxy.rps]}" 'BEGIN {printf "%.0f", 100 * a / b}')

{
  echo
  echo "## llm-proxy benchmark — $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo
  echo "Command: \`$command_line\`"
  echo
  echo "Machine: $(nproc) cores ($(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)), $(uname -sr);" \
    "load average at start $load_start (a shared machine: other jobs may have run during the measurement)."
  echo "nginx $("$NGINX" -v 2>&1 | sed 's/.*nginx\///') with 1 worker per instance (origin and proxy_pass are separate" \
    "instances, so each worker's CPU is its own), wrk $("$WRK" -v 2>&1 | head -1 | awk '{print $2}'), llm-proxy" \
    "$(git -C "$root" describe --always --dirty 2>/dev/null || echo '?') with --threads $THREADS," \
    "key limits on (--tps 1000000, --token-limit 1e12/month), usage recorded to SQLite."
  echo "Throughput: wrk -t2 -c$CONNS -d$DURATION; latency: wrk -t1 -c1 -d$DURATION; CPU = utime+stime of the" \
    "serving process over the $CONNS-connection run / requests; RSS = VmRSS of that process."
  echo
  echo "| | direct (nginx \`return\`) | nginx \`proxy_pass\` | llm-proxy |"
  echo "|---|---:|---:|---:|"
  row() { printf '| %s | %s | %s | %s |\n' "$1" "$2" "$3" "$4"; }
  row "requests/s, $CONNS connections" "${R[direct.rps]}" "${R[nginx.rps]}" "${R[llm-proxy.rps]}"
  row "p50 / p99 latency, 1 connection (µs)" "${R[direct.c1.p50_us]} / ${R[direct.c1.p99_us]}" \
    "${R[nginx.c1.p50_us]} / ${R[nginx.c1.p99_us]}" "${R[llm-proxy.c1.p50_us]} / ${R[llm-proxy.c1.p99_us]}"
  row "CPU per request (µs)" "${R[direct.cpu_us]}" "${R[nginx.cpu_us]}" "${R[llm-proxy.cpu_us]}"
  row "RSS idle (MiB)" "$(mib "${R[direct.rss_idle]}")" "$(mib "${R[nginx.rss_idle]}")" "$(mib "${R[llm-proxy.rss_idle]}")"
  row "RSS peak, $CONNS connections (MiB)" "$(mib "${R[direct.rss_load]}")" "$(mib "${R[nginx.rss_load]}")" \
    "$(mib "${R[llm-proxy.rss_load]}")"
  row "stream: first event p50 / p99 (µs)" "$(ttfb_p50 direct) / $(ttfb_p99 direct)" \
    "$(ttfb_p50 nginx) / $(ttfb_p99 nginx)" "$(ttfb_p50 llm-proxy) / $(ttfb_p99 llm-proxy)"
  echo
  echo "Limits shared through Redis (\`serve --redis\`, redis-server $(/usr/bin/redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/') on loopback," \
    "same key and limits): one admission script and one settlement script per request."
  echo
  echo "| | llm-proxy, limits in process | llm-proxy, limits in Redis |"
  echo "|---|---:|---:|"
  printf '| %s | %s | %s |\n' "requests/s, $CONNS connections" "${R[llm-proxy.rps]}" "${R[redis.rps]} (${redis_rps_pct}%)"
  printf '| %s | %s | %s |\n' "p50 / p99 latency, 1 connection (µs)" \
    "${R[llm-proxy.c1.p50_us]} / ${R[llm-proxy.c1.p99_us]}" "${R[redis.c1.p50_us]} / ${R[redis.c1.p99_us]}"
  printf '| %s | %s | %s |\n' "CPU per request, serve (µs)" "${R[llm-proxy.cpu_us]}" "${R[redis.cpu_us]}"
  printf '| %s | %s | %s |\n' "CPU per request, redis-server (µs)" "${R[llm-proxy.redis_cpu_us]}" "${R[redis.redis_cpu_us]}"
  echo
  echo "| target | measured | verdict |"
  echo "|---|---|---|"
  echo "| CPU per proxied request ≤ 2× nginx proxy_pass | ${cpu_ratio}× (${R[llm-proxy.cpu_us]} vs ${R[nginx.cpu_us]} µs) | $(verdict "$cpu_ratio" 2) |"
  echo "| added p50 latency at 1 connection ≤ 100 µs over direct | +${added_p50} µs (nginx proxy_pass +${nginx_added_p50} µs) | $(verdict "$added_p50" 100) |"
  echo "| stream time to first event ≤ 1 ms over direct | +${ttfb_added} µs | $(verdict "$ttfb_added" 1000) |"
  # A chunk held back until the next one arrives would be late by the full 50 ms gap.
  echo "| each chunk forwarded as it arrives (events 50 ms apart) | p50 ${pacing_p50} ms, worst ${pacing_lag} ms after the upstream wrote it | $(verdict "$pacing_lag" 25) (worst < 25 ms) |"
  echo "| added p50 latency with Redis ≤ 60 µs over limits in process | +${redis_added_p50} µs | $(verdict "$redis_added_p50" 60) |"
  rps_verdict=PASS
  ((redis_rps_pct < 70)) && rps_verdict=FAIL
  echo "| requests/s with Redis ≥ 70% of limits in process | ${redis_rps_pct}% | $rps_verdict |"
  echo "| RSS idle ≤ 32 MiB | $(mib "${R[llm-proxy.rss_idle]}") MiB | $(verdict "${R[llm-proxy.rss_idle]}" 32768) |"
  echo "| RSS under $CONNS connections ≤ 64 MiB | $(mib "${R[llm-proxy.rss_load]}") MiB | $(verdict "${R[llm-proxy.rss_load]}" 65536) |"
  s_verdict=$(verdict "$s_rss" 153600)
  ((s_open < STREAMS)) && s_verdict="FAIL (only $s_open of $STREAMS open)"
  echo "| RSS with $STREAMS open streams ≤ 150 MiB | $(mib "$s_rss") MiB ($s_open open, $s_failed failed; $(mib "$s_after") MiB after they closed) | $s_verdict |"
  if ((soak > 0)); then
    echo "| no growth over the soak | $soak_line | $(verdict "${R[soak_growth_kib]}" 4096) (≤ 4 MiB) |"
  else
    echo "| no growth over a 10-minute soak | $soak_line | — |"
  fi
  echo
  echo "Streaming pacing: $pacing."
  [[ -n ${soak_series:-} ]] && echo "Soak RSS (MiB) over time: $soak_series."
  echo "llm-proxy recorded $usage_bench usage rows for model 'bench' (wrk and curl completed $lp_sent requests;" \
    "wrk abandons its in-flight requests when a run ends); serve exited $serve_rc on SIGTERM" \
    "($serve_redis_rc for the instance on Redis)."
  if grep -q 'non2xx=[1-9]\|sockerr=[1-9]' "$work/wrk.log"; then
    echo "Warning: some wrk runs saw non-2xx replies or socket errors (see the log above)."
  fi
} | tee "$work/report.md"
if [[ -n ${BENCH_REPORT:-} ]]; then cp "$work/report.md" "$BENCH_REPORT"; fi
