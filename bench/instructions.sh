#!/bin/bash
# Instructions per request of one server variant, counted by valgrind's cachegrind: the figure a
# busy machine does not move (CPU µs/request does). User-space instructions only: the kernel's
# share of a request (writev, epoll) is not in it, so ratios read higher than CPU-time ratios.
#
#   bench/instructions.sh fastify bare|hook|unmetered|count|metered
#   bench/instructions.sh express bare|trivial|finish|unmetered|count|metered
#
# Runs the server under cachegrind twice, serving 3,000 and 9,000 requests, and prints the
# difference over 6,000: start-up and warm-up cancel out. (Between the 1,000th and the 3,000th
# request V8 still optimizes: a third of an Express request's instructions there were TurboFan's.)
# Loads kinde-metering from dist/ (npm run build), or from KINDE_METERING_INDEX /
# KINDE_METERING_EXPRESS. A run takes 1-3 minutes; repeat runs differ by up to ~3%.
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
# Instructions in V8's runtime function that defines a computed key of an object literal: in some
# processes, and not in others running the same code, process.nextTick's tick literal runs there
# on every call (bench/README.md, "A slow path that comes and goes"). Start-up alone spends about
# 1,300,000 there; a process on the slow path adds 4,000-6,000 per request.
slow () {
  awk '/^fn=/ { inside = index($0, "DefineKeyedOwnPropertyInLiteral") > 0; next } inside && /^[0-9]/ { sum += $2 } END { print sum + 0 }' "$work/out.$1"
}
few=$(count 3000)
many=$(count 9000)
echo "$framework $variant: $(( (many - few) / 6000 )) instructions/request"
for run in 3000 9000; do
  if [ "$(slow $run)" -gt 5000000 ]; then echo "  the $run-request process ran process.nextTick on V8's slow path: its figure is not comparable"; fi
done
