#!/bin/bash
# tamizdat against iroh's sendme: one blob node to node over loopback, into a
# file, in the same run. Prints each rep and the median ratios.
#
#   bash support/bench-vs-sendme.sh            # 1 GiB, 5 reps
#   MIB=256 REPS=5 bash support/bench-vs-sendme.sh
#
# Needs root for `unshare -n` (a network namespace with loopback only, so
# nothing leaves the machine and sendme's relay is never reached). Installs
# sendme 0.37.1 under target/sendme on first use (a few minutes).
#
# Figures: wall time of `tamizdat get HASH --peer ADDR -o FILE` (a fresh data
# dir each rep; the provider is a running `tamizdat node`), against
# `sendme receive TICKET` (a fresh dir each rep; `sendme send` runs
# throughout), both with `--relay disabled` where it applies; peak RSS of the
# receiving process (/usr/bin/time); `get` without -o as an extra row; and the
# RSS of an idle node after 10 s.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
MIB=${MIB:-1024}
REPS=${REPS:-5}
if [ -z "${INSIDE:-}" ]; then
  cargo build --release --manifest-path "$ROOT/Cargo.toml" -q
  if [ ! -x "$ROOT/target/sendme/bin/sendme" ]; then
    cargo install sendme --version 0.37.1 --locked --root "$ROOT/target/sendme" -q
  fi
  exec env INSIDE=1 MIB=$MIB REPS=$REPS unshare -n bash "$0"
fi
ip link set lo up
T=$ROOT/target/release/tamizdat
S=$ROOT/target/sendme/bin/sendme
W=$(mktemp -d)
cleanup() { kill "${NODE:-}" "${SEND:-}" 2>/dev/null || true; rm -rf "$W"; }
trap cleanup EXIT
head -c $((MIB * 1024 * 1024)) /dev/urandom > "$W/file.bin"
export TAMIZDAT_DIR=$W/src
HASH=$($T add "$W/file.bin" | cut -c1-64)
$T node --profile server --listen /ip4/127.0.0.1/tcp/0 > "$W/node.out" 2> "$W/node.err" &
NODE=$!
until grep -q '^ready' "$W/node.out"; do sleep 0.1; done
ADDR=$(grep '^listen' "$W/node.out" | head -1 | cut -d' ' -f2)
(cd "$W" && exec $S send --relay disabled --no-progress file.bin > "$W/send.out" 2>&1) &
SEND=$!
until grep -q "sendme receive" "$W/send.out"; do sleep 0.2; done
TICKET=$(grep -o "sendme receive [a-z0-9]*" "$W/send.out" | head -1 | cut -d' ' -f3)
sync
: > "$W/t"; : > "$W/s"; : > "$W/n"
for i in $(seq "$REPS"); do
  rm -rf "$W/dst" "$W/out.bin" "$W/recv" "$W/dst2"; mkdir -p "$W/dst" "$W/recv" "$W/dst2"
  ours() {
    /usr/bin/time -o "$W/tt" -f "%e %M" env TAMIZDAT_DIR="$W/dst" $T get "$HASH" --peer "$ADDR" -o "$W/out.bin" 2> /dev/null
    cmp "$W/out.bin" "$W/file.bin"
  }
  theirs() {
    (cd "$W/recv" && /usr/bin/time -o "$W/st" -f "%e %M" $S receive --relay disabled --no-progress "$TICKET" > /dev/null 2>&1)
    cmp "$W/recv/file.bin" "$W/file.bin"
  }
  # Alternate who goes first: the disk's writeback of the previous run
  # lands on whoever follows it.
  if [ $((i % 2)) = 1 ]; then ours; sync; theirs; else theirs; sync; ours; fi
  sync
  /usr/bin/time -o "$W/nt" -f "%e %M" env TAMIZDAT_DIR="$W/dst2" $T get "$HASH" --peer "$ADDR" 2> /dev/null
  read -r te tm < "$W/tt"; read -r se sm < "$W/st"; read -r ne nm < "$W/nt"
  printf "rep %d: tamizdat get -o %6.2f s %6d KB | sendme %6.2f s %6d KB | get (store only) %6.2f s\n" \
    "$i" "$te" "$tm" "$se" "$sm" "$ne"
  echo "$te $tm" >> "$W/t"; echo "$se $sm" >> "$W/s"; echo "$ne" >> "$W/n"
  sync
done
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
TE=$(cut -d' ' -f1 "$W/t" | median); SE=$(cut -d' ' -f1 "$W/s" | median)
TM=$(cut -d' ' -f2 "$W/t" | median); SM=$(cut -d' ' -f2 "$W/s" | median)
NE=$(median < "$W/n")
echo "median over $REPS reps, $MIB MiB:"
awk -v te="$TE" -v se="$SE" -v ne="$NE" -v mib="$MIB" 'BEGIN {
  printf "  throughput: tamizdat %.0f MiB/s, sendme %.0f MiB/s: %.2fx sendme (store only: %.2fx)\n",
    mib/te, mib/se, se/te, se/ne }'
awk -v tm="$TM" -v sm="$SM" 'BEGIN {
  printf "  receiver peak RSS: tamizdat %.1f MiB, sendme %.1f MiB: %.2fx sendme\n", tm/1024, sm/1024, tm/sm }'
mkdir -p "$W/idle"
TAMIZDAT_DIR="$W/idle" $T node --profile server --listen /ip4/127.0.0.1/tcp/0 --bootstrap "$ADDR" > "$W/idle.out" 2>&1 &
IDLE_NODE=$!
sleep 10
IDLE=$(grep VmRSS /proc/$IDLE_NODE/status | awk '{print $2}')
kill $IDLE_NODE
awk -v i="$IDLE" 'BEGIN { printf "  an idle node (empty store, one peer) after 10 s: %.1f MiB RSS\n", i/1024 }'
