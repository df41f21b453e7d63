#!/usr/bin/env bash
# Bundles against plain file copies in the same run: an outlet publishes
# articles holding MIB MiB of files in all; `export -o` writes them to a
# bundle and `import` reads it into a follower's fresh data dir. The
# baselines are `cp` of the same bytes (what moving them costs at all) and
# `tamizdat add` of the same files (what storing them verified costs).
# Prints wall time and peak RSS of each, and the ratios.
#
#   bash support/bench-bundle.sh            # 4 articles of 256 MiB each
#   ARTICLES=16 MIB=1024 bash support/bench-bundle.sh
#
# Needs GNU time (/usr/bin/time).
set -euo pipefail
cd "$(dirname "$0")/.."

ARTICLES=${ARTICLES:-4}
MIB=${MIB:-1024}

cargo build --release --locked --bin tamizdat >&2
BIN=$PWD/target/release/tamizdat
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
export TAMIZDAT_DIR=$W/newsroom

"$BIN" key new --name outlet --no-passphrase >"$W/root.pub" 2>/dev/null
"$BIN" key delegate --root outlet --name desk --valid-for 30d --no-passphrase >/dev/null 2>&1
per=$((MIB / ARTICLES))
for i in $(seq 1 "$ARTICLES"); do
    mkdir -p "$W/src/a$i"
    printf '# Article %s\n\n![data](data.bin)\n' "$i" >"$W/src/a$i/index.md"
    head -c "$((per * 1024 * 1024))" /dev/urandom >"$W/src/a$i/data.bin"
    "$BIN" publish "$W/src/a$i" --key desk --no-passphrase >/dev/null 2>&1
done

# measure NAME CMD...: prints "NAME seconds max_rss_kib"
measure() {
    local name=$1
    shift
    sync
    /usr/bin/time -f "%e %M" -o "$W/time" "$@" >/dev/null 2>"$W/err" || {
        cat "$W/err" >&2
        exit 1
    }
    echo "$name $(cat "$W/time")"
}

{
    measure export "$BIN" export -o "$W/out.bundle"
    TAMIZDAT_DIR=$W/reader "$BIN" follow "$(cat "$W/root.pub")" >/dev/null 2>&1
    measure import env TAMIZDAT_DIR="$W/reader" "$BIN" import "$W/out.bundle"
    measure cp cp -r "$W/src" "$W/copy"
    measure add env TAMIZDAT_DIR="$W/adder" "$BIN" add "$W"/src/*/data.bin
} | tee "$W/results"

bytes=$(stat -c %s "$W/out.bundle")
awk -v bytes="$bytes" -v mib="$MIB" '
    { t[$1] = $2; m[$1] = $3 }
    END {
        printf "bundle: %d bytes for %d MiB of files (%.4f overhead)\n", bytes, mib, bytes / (mib * 1048576) - 1
        printf "export: %.2f s, %.1f MiB/s, peak RSS %.1f MiB; %.2fx cp\n", t["export"], mib / t["export"], m["export"] / 1024, t["export"] / t["cp"]
        printf "import: %.2f s, %.1f MiB/s, peak RSS %.1f MiB; %.2fx cp, %.2fx add\n", t["import"], mib / t["import"], m["import"] / 1024, t["import"] / t["cp"], t["import"] / t["add"]
        printf "baselines: cp %.2f s (RSS %.1f MiB), add %.2f s (RSS %.1f MiB)\n", t["cp"], m["cp"] / 1024, t["add"], m["add"] / 1024
    }' "$W/results"
