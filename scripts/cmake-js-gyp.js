#!/usr/bin/env node
// prebuildify runs `<node-gyp> rebuild --target=V --devdir=D --arch=A --release|--debug`; this adapter runs
// cmake-js instead (prebuildify has no cmake-js backend). --target is not forwarded: in cmake-js it names a
// CMake target.
//
// It is the release build (`npm run prebuildify`), so it also:
// - links OpenBLAS statically (-DINNFLOW_STATIC_OPENBLAS=ON; INNFLOW_STATIC_OPENBLAS=0 in the environment turns
//   it off again), so that the prebuilt addon runs where OpenBLAS is not installed;
// - keeps build-machine paths out of the binaries' RUNPATH (-DINNFLOW_PORTABLE=ON);
// - leaves the CUDA architectures to CMakeLists.txt's release default (SASS for sm_75..sm_90 plus sm_90 PTX)
//   unless INNFLOW_CUDA_ARCHS is set;
// - empties prebuilds/<platform>-<arch>/ first, so that a libinnflow_cuda.so from an earlier build cannot sit
//   next to an addon built without it (prebuildify copies build/Release/*.so there after this script);
// - passes INNFLOW_BUILD_JOBS, if set, as cmake-js's --parallel (ninja otherwise uses every core).
const { spawnSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')

const args = process.argv.slice(2)
const get = (k) => (args.find((a) => a.startsWith(`--${k}=`)) || '').split('=')[1]
const arch = get('arch') || process.arch

const dest = path.join(process.cwd(), 'prebuilds', `${process.platform}-${arch}`)
if (fs.existsSync(dest)) {
  for (const f of fs.readdirSync(dest)) fs.rmSync(path.join(dest, f), { recursive: true, force: true })
}

const out = ['rebuild', '--arch', arch, '--CDINNFLOW_STATIC_OPENBLAS=ON', '--CDINNFLOW_PORTABLE=ON']
if (args.includes('--debug')) out.push('--debug')
if (process.env.INNFLOW_BUILD_JOBS) out.push('--parallel', process.env.INNFLOW_BUILD_JOBS)
const bin = require.resolve('cmake-js/bin/cmake-js')
const r = spawnSync(process.execPath, [bin, ...out], { stdio: 'inherit' })
process.exit(r.status ?? 1)
