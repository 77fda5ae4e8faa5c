#!/bin/bash
# Instructions per request of one server variant, counted by valgrind's cachegrind: the figure a
# busy machine does not move (CPU µs/request does). User-space instructions only: the kernel's
# share of a request (writev, epoll) is not in it, so ratios read higher than CPU-time ratios.
#
#   bench/instructions.sh fastify bare|hook|unmetered|count|metered
#   bench/instructions.sh express bare|trivial|finish|unmetered|count|metered
#
# Runs the server under cachegrind twice, serving 1,000 and 3,000 requests, and prints the
# difference over 2,000: start-up cancels out. Loads kinde-metering from dist/ (npm run build),
# or from KINDE_METERING_INDEX / KINDE_METERING_EXPRESS. Repeat runs differ by up to ~5%.
set -euo pipefail
framework=$1 variant=$2
dir=$(cd "$(dirname "$0")" && pwd)/instructions
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
count () {
  valgrind --tool=cachegrind --cache-sim=no --branch-sim=no --smc-check=all-non-file \
    --cachegrind-out-file="$work/out.$1" node "$dir/$framework-server.mjs" "$variant" >"$work/port.$1" 2>"$work/valgrind.$1" &
  local server=$!
  for _ in $(seq 1 600); do [ -s "$work/port.$1" ] && break; sleep 0.2; done
  node "$dir/drive.mjs" "$(cat "$work/port.$1")" "$1"
  wait $server
  grep -m1 '^summary' "$work/out.$1" | awk '{print $2}'
}
few=$(count 1000)
many=$(count 3000)
echo "$framework $variant: $(( (many - few) / 2000 )) instructions/request"
