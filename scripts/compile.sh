#!/usr/bin/env bash
# `deno task compile`: builds dist/dhyve, a single binary with dhyve's
# permissions baked in. deno compile needs Deno's `denort` runtime; where it
# cannot be downloaded, point DENORT_BIN at a denort binary of the same Deno
# version (2.9.6).
set -euo pipefail
cd "$(dirname "$0")/.."
deno=node_modules/.bin/deno
if [ -z "${DENORT_BIN:-}" ]; then
  echo "dhyve: deno compile needs the denort runtime, which it downloads from the Deno CDN;" >&2
  echo "dhyve: where that is not reachable, set DENORT_BIN=/path/to/denort (Deno $("$deno" --version | head -1 | cut -d' ' -f2))" >&2
  if [ "${DHYVE_COMPILE_DOWNLOAD:-}" != "1" ]; then
    echo "dhyve: set DHYVE_COMPILE_DOWNLOAD=1 to let deno try the download anyway" >&2
    exit 69
  fi
fi
mkdir -p dist
"$deno" task build # main.ts runs the bundle in dist/bundle
# The binary reads kernels and mapped files wherever the user points it; the
# file map and Landlock remain the fences around what a guest can reach.
"$deno" compile \
  --allow-ffi --allow-read --allow-write \
  --allow-net=127.0.0.1,[::1] \
  --allow-env=HERMIT_MEMORY_SIZE,HERMIT_CPU_COUNT,HERMIT_CONFIG,HERMIT_GDB_PORT,XDG_CONFIG_HOME,TMPDIR \
  --include dist/bundle/vcpu/worker.js \
  --include dist/bundle/net/net_worker.js \
  --output dist/dhyve main.ts
echo "dhyve: built dist/dhyve"
