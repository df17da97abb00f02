#!/usr/bin/env bash
# L4 data-path benchmark on loopback: wrk directly against one nginx backend (the limit),
# through haproxy (tcp mode, generated config) and through kubeha's proxy_only example,
# side by side with ratios. Everything binds 127.0.0.1 only.
#
#   bench/proxy.sh                  # 3 rounds of each, median reported
#   ROUNDS=1 DURATION=5s bench/proxy.sh
#   PROXY_ARGS="--acceptors 2" bench/proxy.sh
#   PROXY_ARGS_B="--per-core" bench/proxy.sh   # also a second proxy_only ("kubeha_b"), interleaved
#
# Env: ROUNDS (3), DURATION (10s), THREADS (2), CONNS (50), BASE_PORT (18080),
#      NGINX_WORKERS (auto), BODY_BYTES (2: the response body size), BALANCE (round-robin),
#      PROXY_ARGS (extra proxy_only flags), PROXY_ARGS_B (flags of an optional second
#      proxy_only instance, e.g. to compare variants in one run), NO_BUILD=1 (skip build).
set -euo pipefail

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
THREADS=${THREADS:-2}
CONNS=${CONNS:-50}
BASE_PORT=${BASE_PORT:-18080}
NGINX_WORKERS=${NGINX_WORKERS:-auto}
BODY_BYTES=${BODY_BYTES:-2}
BALANCE=${BALANCE:-round-robin}
PROXY_ARGS=${PROXY_ARGS:-}
PROXY_ARGS_B=${PROXY_ARGS_B:-}

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

need() { command -v "$1" >/dev/null 2>&1; }
if ! need nginx && [ ! -x /usr/sbin/nginx ]; then
    echo "installing nginx-light" >&2
    apt-get install -y -q nginx-light >/dev/null
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
HAPROXY=$(command -v haproxy || echo /usr/sbin/haproxy)
need wrk || { echo "wrk missing (apt-get install wrk)" >&2; exit 1; }
[ -x "$HAPROXY" ] || { echo "haproxy missing (apt-get install haproxy)" >&2; exit 1; }

if [ -z "${NO_BUILD:-}" ]; then
    cargo build --release -q -p kubeha-frontdoor --example proxy_only
fi
target=$(cargo metadata --no-deps --format-version 1 |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
PROXY="$target/release/examples/proxy_only"

tmp=$(mktemp -d /tmp/kubeha-bench.XXXXXX)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$tmp"
}
trap cleanup EXIT

b1=$((BASE_PORT + 1)) b2=$((BASE_PORT + 2)) b3=$((BASE_PORT + 3))
ha_port=$((BASE_PORT + 10)) our_port=$((BASE_PORT + 11)) b_port=$((BASE_PORT + 12))

# --- nginx: three server blocks, one per backend port ---
mkdir -p "$tmp/nginx"
head -c "$BODY_BYTES" /dev/zero | tr '\0' 'x' >"$tmp/nginx/body"
servers=""
for p in $b1 $b2 $b3; do
    servers+="    server { listen 127.0.0.1:$p reuseport backlog=4096; location / { root $tmp/nginx; try_files /body =404; } }
"
done
cat >"$tmp/nginx/nginx.conf" <<EOF
worker_processes $NGINX_WORKERS;
daemon off;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 3600s;
    default_type text/plain;
    client_body_temp_path $tmp/nginx/body_tmp;
    proxy_temp_path $tmp/nginx/proxy_tmp;
    fastcgi_temp_path $tmp/nginx/fcgi_tmp;
    uwsgi_temp_path $tmp/nginx/uwsgi_tmp;
    scgi_temp_path $tmp/nginx/scgi_tmp;
$servers}
EOF
chmod -R a+rX "$tmp"
"$NGINX" -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" &
pids+=($!)

# --- haproxy: tcp mode, round robin, TCP checks (as the proxy_only example does) ---
cat >"$tmp/haproxy.cfg" <<EOF
global
    maxconn 4096
    log stderr format short local0 err
defaults
    mode tcp
    timeout connect 5s
    timeout client 1h
    timeout server 1h
frontend fd
    bind 127.0.0.1:$ha_port
    default_backend apiservers
backend apiservers
    balance $( [ "$BALANCE" = least-connections ] && echo leastconn || echo roundrobin )
    default-server check inter 2s fall 3 rise 2
    server b1 127.0.0.1:$b1
    server b2 127.0.0.1:$b2
    server b3 127.0.0.1:$b3
EOF
"$HAPROXY" -c -q -f "$tmp/haproxy.cfg"
"$HAPROXY" -db -f "$tmp/haproxy.cfg" 2>"$tmp/haproxy.log" &
pids+=($!)
ha_pid=$!

# shellcheck disable=SC2086
"$PROXY" 127.0.0.1:$our_port 127.0.0.1:$b1 127.0.0.1:$b2 127.0.0.1:$b3 \
    --balance "$BALANCE" $PROXY_ARGS 2>"$tmp/proxy.log" &
pids+=($!)
our_pid=$!

wait_port() {
    for _ in $(seq 1 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    echo "port $1 did not open" >&2
    tail -n 5 "$tmp"/*.log "$tmp"/nginx/error.log >&2 2>/dev/null || true
    exit 1
}
names=(direct haproxy kubeha)
declare -A port=([direct]=$b1 [haproxy]=$ha_port [kubeha]=$our_port)
declare -A pid=([direct]=0 [haproxy]=$ha_pid [kubeha]=$our_pid)
if [ -n "$PROXY_ARGS_B" ]; then
    # shellcheck disable=SC2086
    "$PROXY" 127.0.0.1:$b_port 127.0.0.1:$b1 127.0.0.1:$b2 127.0.0.1:$b3 \
        --balance "$BALANCE" $PROXY_ARGS_B 2>"$tmp/proxy_b.log" &
    pids+=($!)
    names+=(kubeha_b)
    port[kubeha_b]=$b_port
    pid[kubeha_b]=$!
fi
for n in "${names[@]}"; do wait_port "${port[$n]}"; done
curl -fsS "http://127.0.0.1:$our_port/" >/dev/null 2>&1 || true

# Prints "req_per_s p99_ms" for one wrk run.
run_wrk() {
    wrk -t"$THREADS" -c"$CONNS" -d"$1" --latency "http://127.0.0.1:$2/" 2>&1 | awk '
        /Requests\/sec:/ { rps = $2 }
        /^ +99%/ {
            v = $2; ms = v + 0
            if (v ~ /us$/) ms = (v + 0) / 1000
            else if (v ~ /ms$/) ms = v + 0
            else if (v ~ /s$/) ms = (v + 0) * 1000
            p99 = ms
        }
        /Non-2xx|Socket errors/ { err = err $0 }
        END {
            if (rps == "") { print "0 0"; exit }
            printf "%s %.3f\n", rps, p99
            if (err != "") print "    " err > "/dev/stderr"
        }'
}

# CPU time (user + system, clock ticks, all threads) used so far by a process.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)

declare -A rps p99 cpu
for n in "${names[@]}"; do run_wrk 2s "${port[$n]}" >/dev/null; done # warm-up
for r in $(seq 1 "$ROUNDS"); do
    for n in "${names[@]}"; do
        t0=0
        [ "${pid[$n]}" != 0 ] && t0=$(cpu_ticks "${pid[$n]}")
        read -r a b < <(run_wrk "$DURATION" "${port[$n]}")
        c=0
        if [ "${pid[$n]}" != 0 ]; then
            # proxy CPU microseconds per request: robust to other load on the machine
            c=$(awk -v t="$(($(cpu_ticks "${pid[$n]}") - t0))" -v hz="$hz" -v r="$a" -v d="${DURATION%s}" \
                'BEGIN { printf "%.2f", (r > 0 ? t / hz * 1e6 / (r * d) : 0) }')
        fi
        rps[$n]+="$a "
        p99[$n]+="$b "
        cpu[$n]+="$c "
        printf 'round %d %-9s %10.0f req/s  p99 %7.3f ms  proxy cpu %6s us/req\n' "$r" "$n" "$a" "$b" "$c" >&2
    done
done

median() { tr ' ' '\n' | sed '/^$/d' | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
echo
echo "wrk -t$THREADS -c$CONNS -d$DURATION, body $BODY_BYTES B, $ROUNDS rounds (median), $(nproc) CPUs, balance $BALANCE, kubeha: ${PROXY_ARGS:-defaults}${PROXY_ARGS_B:+, kubeha_b: $PROXY_ARGS_B}"
printf '%-9s %12s %10s %14s %14s %12s %12s\n' target req/s p99_ms "req/s vs hap" "p99 vs hap" "cpu_us/req" "cpu vs hap"
hr=$(echo "${rps[haproxy]}" | median) hp=$(echo "${p99[haproxy]}" | median)
hc=$(echo "${cpu[haproxy]}" | median)
for n in "${names[@]}"; do
    mr=$(echo "${rps[$n]}" | median) mp=$(echo "${p99[$n]}" | median)
    mc=$(echo "${cpu[$n]}" | median)
    awk -v n="$n" -v r="$mr" -v p="$mp" -v c="$mc" -v hr="$hr" -v hp="$hp" -v hc="$hc" 'BEGIN {
        printf "%-9s %12.0f %10.3f %13.2fx %13.2fx %12.2f %11.2fx\n", n, r, p,
            (hr > 0 ? r / hr : 0), (hp > 0 ? p / hp : 0), c, (hc > 0 ? c / hc : 0) }'
done
