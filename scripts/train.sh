#!/usr/bin/env bash
# Launch `facemetric train` the fast way: tcmalloc preloaded (scripts/with-tcmalloc.sh) and, with
# --nproc N > 1, under torchrun (PyTorch DDP: gloo on CPU, NCCL on GPU; N processes on this host).
#   scripts/train.sh [--nproc N] DATA... --backbone resnet50 --out runs/NAME [train options]
# Each of the N processes gets cores/N intra-op threads; on a CPU-only host N=1 is usually fastest.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
nproc=1
if [[ "${1:-}" == "--nproc" ]]; then
  nproc="${2:?--nproc needs a number}"
  shift 2
fi
if ! [[ "$nproc" =~ ^[0-9]+$ ]] || (( nproc < 1 )); then
  echo "train.sh: --nproc must be a positive integer, got '$nproc'" >&2
  exit 2
fi
bin="${FACEMETRIC_VENV:-$repo/.venv}/bin"
[[ -x "$bin/python" ]] || bin="$(dirname "$(command -v python3)")"
if (( nproc > 1 )); then
  exec "$here/with-tcmalloc.sh" "$bin/python" -m torch.distributed.run --standalone \
    --nproc_per_node "$nproc" -m facemetric.cli train "$@"
fi
exec "$here/with-tcmalloc.sh" "$bin/python" -m facemetric.cli train "$@"
