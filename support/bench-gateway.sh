#!/usr/bin/env bash
# The gateway against nginx in the same run: 256 connections fetching one
# 100 KiB blob, by `wrk`. Both servers run on this machine's loopback, with the
# same file; nginx serves it from disk with sendfile, the gateway from its
# verified store (ETag, immutable caching, verification, the headers it always
# sends). Prints requests per second and p99 latency for each, alternating
# runs, and the ratio of the medians.
#
#   bash support/bench-gateway.sh              # 5 alternating runs of 10 s
#   REPS=3 SECS=20 CONNS=256 KIB=100 bash support/bench-gateway.sh
#
# Installs nginx and wrk from Debian when they are missing (needs root then).
set -euo pipefail
cd "$(dirname "$0")/.."

REPS=${REPS:-5}
SECS=${SECS:-10}
CONNS=${CONNS:-256}
KIB=${KIB:-100}

install() {
    echo "bench: installing $*" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}
command -v wrk >/dev/null || install wrk
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || install nginx
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

cargo build --release --locked --bin tamizdat >&2
BIN=$PWD/target/release/tamizdat

work=$(mktemp -d)
node_pid=
cleanup() {
    [ -n "$node_pid" ] && kill "$node_pid" 2>/dev/null && wait "$node_pid" 2>/dev/null
    [ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

mkdir -p "$work/www" "$work/data"
head -c $((KIB * 1024)) /dev/urandom >"$work/www/blob.bin"
# nginx's workers run as an unprivileged user: let them read the file.
chmod 755 "$work" "$work/www"
chmod 644 "$work/www/blob.bin"
export TAMIZDAT_DIR=$work/data
# A load test is one address with many connections: allow them.
printf '[gateway]\nmax_connections_per_ip = %d\n' $((CONNS + 64)) >"$work/data/config.toml"
hash=$("$BIN" add "$work/www/blob.bin" | cut -c1-64)

# The node and its gateway.
"$BIN" node --profile server --listen /ip4/127.0.0.1/tcp/0 --gateway 127.0.0.1:0 \
    >"$work/node.out" 2>"$work/node.err" &
node_pid=$!
for _ in $(seq 100); do grep -q '^ready' "$work/node.out" 2>/dev/null && break; sleep 0.1; done
gateway=$(sed -n 's/^gateway //p' "$work/node.out")
[ -n "$gateway" ] || { cat "$work/node.err" >&2; echo "bench: the node did not start" >&2; exit 1; }

# nginx, as a plain static server with the settings a tuned one would have.
port=$(free_port)
cat >"$work/nginx.conf" <<EOF
worker_processes auto;
pid $work/nginx.pid;
error_log $work/nginx.err warn;
events { worker_connections 4096; multi_accept on; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_requests 1000000;
    types { application/octet-stream bin; }
    server {
        listen 127.0.0.1:$port reuseport;
        root $work/www;
        etag on;
        add_header Cache-Control "public, max-age=31536000, immutable";
    }
}
EOF
"$NGINX" -c "$work/nginx.conf" -p "$work" -e "$work/nginx.err"
nginx_url="http://127.0.0.1:$port/blob.bin"
gateway_url="$gateway/b/$hash"

# Both answer the same bytes before anything is timed.
cmp <(curl -sf "$gateway_url") "$work/www/blob.bin"
cmp <(curl -sf "$nginx_url") "$work/www/blob.bin"

# wrk's summary as "RPS P99_MS".
run() {
    wrk -t2 -c"$CONNS" -d"${SECS}s" --latency "$1" 2>&1 | awk '
        /Requests\/sec:/ { rps = $2 }
        /^ +99%/ { v = $2; ms = v + 0;
                   if (v ~ /us$/) ms = ms / 1000; else if (v ~ /ms$/) ms = ms; else if (v ~ /s$/) ms = ms * 1000;
                   p99 = ms }
        /Non-2xx/ { bad = $NF }
        /Socket errors/ { err = $0 }
        END { printf "%s %.2f %s\n", rps, p99, (bad == "" ? 0 : bad) }'
}

echo "bench: ${KIB} KiB blob, $CONNS connections, ${SECS}s per run, $REPS runs each, alternating"
printf '%-4s %-9s %12s %10s %8s\n' run server req/s p99_ms non2xx
: >"$work/gw" ; : >"$work/ng"
for i in $(seq "$REPS"); do
    read -r rps p99 bad < <(run "$gateway_url")
    printf '%-4s %-9s %12s %10s %8s\n' "$i" gateway "$rps" "$p99" "$bad"
    echo "$rps $p99" >>"$work/gw"
    read -r rps p99 bad < <(run "$nginx_url")
    printf '%-4s %-9s %12s %10s %8s\n' "$i" nginx "$rps" "$p99" "$bad"
    echo "$rps $p99" >>"$work/ng"
done

median() { sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
gw_rps=$(cut -d' ' -f1 "$work/gw" | median)
ng_rps=$(cut -d' ' -f1 "$work/ng" | median)
gw_p99=$(cut -d' ' -f2 "$work/gw" | median)
ng_p99=$(cut -d' ' -f2 "$work/ng" | median)
rss=$(awk '/VmHWM/ { print $2 }' "/proc/$node_pid/status")
echo
echo "median req/s: gateway $gw_rps, nginx $ng_rps: gateway = $(awk "BEGIN { printf \"%.2f\", $gw_rps / $ng_rps }")x nginx (target >= 0.5x)"
echo "median p99:   gateway ${gw_p99} ms, nginx ${ng_p99} ms (target: gateway < 20 ms)"
echo "node peak RSS: $((rss / 1024)) MiB"
