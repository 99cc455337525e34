#!/usr/bin/env bash
# Unpacks cuBLAS/cuBLASLt headers and libraries from the pip wheel `nvidia-cublas` into DIR (default
# ~/.cache/cublas-dev) and prints DIR, so that the CUDA backend can be compiled and linked on a machine with
# nvcc but no cuBLAS (development machines, CI): CUBLAS_ROOT=$(scripts/cublas-dev.sh) npm run build:native
set -euo pipefail
dir=${1:-$HOME/.cache/cublas-dev}
if [[ ! -f $dir/include/cublas_v2.h ]]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  python3 -m pip download -q --no-deps --disable-pip-version-check nvidia-cublas -d "$tmp" >&2
  wheel=$(ls "$tmp"/nvidia_cublas-*.whl)
  mkdir -p "$dir"
  python3 - "$wheel" "$dir" <<'PY'
import os, sys, zipfile
wheel, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        parts = name.split('/')
        # nvidia/<cu-version>/{include,lib}/...
        if len(parts) < 4 or parts[0] != 'nvidia' or parts[2] not in ('include', 'lib'):
            continue
        if parts[2] == 'lib' and not parts[-1].startswith('libcublas'):
            continue
        target = os.path.join(out, *parts[2:])
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with z.open(name) as src, open(target, 'wb') as dst:
            dst.write(src.read())
lib = os.path.join(out, 'lib')
for base in ('libcublas', 'libcublasLt'):
    versioned = sorted(f for f in os.listdir(lib) if f.startswith(base + '.so.'))
    link = os.path.join(lib, base + '.so')
    if versioned and not os.path.exists(link):
        os.symlink(versioned[0], link)
PY
fi
echo "$dir"
