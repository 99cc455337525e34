#!/usr/bin/env node
// prebuildify runs `<node-gyp> rebuild --target=V --devdir=D --arch=A --release|--debug`; this adapter runs
// cmake-js instead (prebuildify has no cmake-js backend). --target is not forwarded: in cmake-js it names a
// CMake target.
const { spawnSync } = require('node:child_process')
const args = process.argv.slice(2)
const get = (k) => (args.find((a) => a.startsWith(`--${k}=`)) || '').split('=')[1]
const out = ['rebuild', '--arch', get('arch') || process.arch]
if (args.includes('--debug')) out.push('--debug')
const bin = require.resolve('cmake-js/bin/cmake-js')
const r = spawnSync(process.execPath, [bin, ...out], { stdio: 'inherit' })
process.exit(r.status ?? 1)
