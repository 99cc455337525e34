#!/usr/bin/env bash
# Everything the GPU machine has to confirm, in one call (its time is scarce): build the CUDA backend for sm_90,
# run test/cuda (every CUDA op against the CPU, the FrEIA parity fixtures on the GPU, moons training tracking the
# CPU, compiled steps replayed as CUDA graphs), the benchmark on the GPU (eager, then compiled at the three matmul
# precisions, with invertible backprop's memory and time on tabular64x64), then the packed-tarball install test training on the GPU (PACK_TEST=0 skips it).
# Logs and the bench JSON go to $OUT (the device tool copies them back).
#
#   ../shared/gpu/pack        # here, once after npm ci
#   run: bash .gpu/remote.sh 'bash scripts/gpu-check.sh'      (with carry: [".gpu"])
set -uo pipefail
out=${OUT:-/tmp/innflow-gpu}
mkdir -p "$out"
echo "== build (sm_90, 16 jobs)"
if ! INNFLOW_CUDA_ARCHS=90 npx cmake-js compile --parallel 16 >"$out/build.log" 2>&1; then
  tail -60 "$out/build.log"
  exit 1
fi
npm run build:ts >>"$out/build.log" 2>&1 || { tail -30 "$out/build.log"; exit 1; }
node -e "const i = require('./dist/lib'); console.log('cuda:', i.cuda.isAvailable(), i.cuda.unavailableReason() ?? i.cuda.deviceName())"
echo "== test/cuda"
npx jest test/cuda --runInBand >"$out/test-cuda.log" 2>&1
status=$?
grep -E "✕|●.*›" "$out/test-cuda.log" | head -40
tail -6 "$out/test-cuda.log"
echo "== bench (cuda)"
steps=${BENCH_STEPS:-30}
node dist/bench/run.js --device cuda --steps $steps --json "$out/bench-cuda.json" 2>&1 | tee "$out/bench-cuda.txt"
for precision in highest high medium; do
  node dist/bench/run.js --device cuda --steps $steps --compile --precision $precision \
    --json "$out/bench-cuda-compile-$precision.json" 2>&1 | tee "$out/bench-cuda-compile-$precision.txt"
done
for mode in "" --invertible-backprop; do
  node dist/bench/run.js --device cuda --steps 10 --compile --workloads tabular64x64-b4096 $mode 2>&1 | tail -1 | tee -a "$out/bench-cuda-invertible.txt"
done
if [[ ${PACK_TEST:-1} == 1 ]]; then
  # issue 6 on the GPU: the packed tarball (release prebuild, sm_90 only here) installs without compilers and
  # trains on the GPU. Its `npm install` needs the tarball's three runtime dependencies from the registry or npm's
  # cache; the GPU machine has no network, so ship a cache with .gpu (npm_config_cache) if this step cannot fetch.
  echo "== packed tarball on the GPU"
  INNFLOW_CUDA_ARCHS=90 INNFLOW_BUILD_JOBS=16 npm run prebuildify >"$out/prebuildify.log" 2>&1 || tail -30 "$out/prebuildify.log"
  INNFLOW_PACK_TEST=1 npx jest test/pack --runInBand 2>&1 | tee "$out/pack.log" | grep -E "test/pack:|Tests:|✕"
fi
exit $status
