#!/usr/bin/env bash
# Run a command with tcmalloc preloaded when it is installed (PyTorch on CPU is 1.3-2x faster).
for lib in /usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4 /usr/lib/aarch64-linux-gnu/libtcmalloc_minimal.so.4; do
  if [ -f "$lib" ]; then
    export LD_PRELOAD="$lib${LD_PRELOAD:+:$LD_PRELOAD}"
    break
  fi
done
exec "$@"
