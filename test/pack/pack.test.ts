/**
 * The npm tarball works on a machine with no compiler: `npm pack` (with the prebuilt binaries of
 * `npm run prebuildify` in prebuilds/), then `npm install <tarball>` into a fresh project with a PATH that
 * holds only node, npm and sh (no cc, c++, cmake, nvcc, make) and PREBUILDS_ONLY=1, then the package's install
 * script run explicitly (npm 11 may skip it during the install), then a script in that project that trains a
 * small flow on the CPU and prints its losses.
 *
 * It needs prebuilds/<platform>-<arch>/innflow.node: without it the test is skipped with a note, unless
 * INNFLOW_PACK_TEST=1 (as in .ci/run, which runs `npm run prebuildify` first), where that is a failure.
 * The registry must be reachable (the tarball's dependencies are installed from it).
 */
import { execFileSync, spawnSync, SpawnSyncReturns } from 'node:child_process'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'

const root = path.resolve(__dirname, '../..')
const platformDir = `${process.platform}-${process.arch}`
const prebuildDir = path.join(root, 'prebuilds', platformDir)
const havePrebuild = fs.existsSync(path.join(prebuildDir, 'innflow.node'))
const required = process.env.INNFLOW_PACK_TEST === '1'

/** npm's own script (bin/npm-cli.js), found through the PATH jest runs with. */
function npmCli(): string {
  const npm = execFileSync('/bin/sh', ['-c', 'command -v npm'], { encoding: 'utf8' }).trim()
  return fs.realpathSync(npm)
}

function run(cmd: string, args: string[], opts: { cwd: string; env?: NodeJS.ProcessEnv; timeout?: number }): SpawnSyncReturns<string> {
  const r = spawnSync(cmd, args, { cwd: opts.cwd, env: opts.env ?? process.env, encoding: 'utf8', timeout: opts.timeout ?? 120_000, maxBuffer: 64 << 20 })
  if (r.status !== 0) {
    throw new Error(`${cmd} ${args.join(' ')} (in ${opts.cwd}) exited with ${r.status ?? r.signal}:\n${r.stdout}\n${r.stderr}`)
  }
  return r
}

/** A bin folder with node, npm and sh (npm runs scripts with it) only, so that nothing can compile. */
function bareBin(dir: string): string {
  const bin = path.join(dir, 'bin')
  fs.mkdirSync(bin)
  fs.symlinkSync(process.execPath, path.join(bin, 'node'))
  fs.symlinkSync('/bin/sh', path.join(bin, 'sh'))
  fs.symlinkSync(npmCli(), path.join(bin, 'npm'))
  return bin
}

const TRAIN = `
const innflow = require('innflow')
const { SequenceINN, modules: Fm, nn, optim, data, tidy, manualSeed, cuda, memory } = innflow
manualSeed(0)
const subnet = (cIn, cOut) => new nn.Sequential(new nn.Linear(cIn, 64), new nn.ReLU(), new nn.Linear(64, cOut))
const flow = new SequenceINN(2)
for (let k = 0; k < 4; k++) flow.append(Fm.AllInOneBlock, { subnetConstructor: subnet, permuteSoft: true })
const opt = new optim.Adam(flow.parameters(), { lr: 1e-3 })
const losses = []
for (let i = 0; i < 150; i++) {
  losses.push(tidy(() => {
    const [z, logJacDet] = flow.forward(data.moons(256))
    const loss = z.square().sum(1).mul(0.5).sub(logJacDet).mean().div(2)
    opt.zeroGrad(); loss.backward(); opt.step()
    return loss.item()
  }))
}
// on a machine with a GPU, the same flow trains there too (the packed CUDA library, loaded from prebuilds/)
const gpuLosses = []
if (cuda.isAvailable()) {
  manualSeed(0)
  const gpuFlow = new SequenceINN(2)
  for (let k = 0; k < 4; k++) gpuFlow.append(Fm.AllInOneBlock, { subnetConstructor: subnet, permuteSoft: true })
  gpuFlow.to({ device: 'cuda' })
  const gpuOpt = new optim.Adam(gpuFlow.parameters(), { lr: 1e-3 })
  for (let i = 0; i < 150; i++) {
    gpuLosses.push(tidy(() => {
      const [z, logJacDet] = gpuFlow.forward(data.moons(256).to({ device: 'cuda' }))
      const loss = z.square().sum(1).mul(0.5).sub(logJacDet).mean().div(2)
      gpuOpt.zeroGrad(); loss.backward(); gpuOpt.step()
      return loss.item()
    }))
  }
}
console.log(JSON.stringify({
  losses,
  gpuLosses,
  cudaAvailable: cuda.isAvailable(),
  cudaReason: cuda.unavailableReason(),
  gemm: innflow.getGemmBackend(),
  packageDir: require('path').dirname(require.resolve('innflow/package.json')),
  tensors: memory().tensors,
}))
`

const maybe = havePrebuild || required ? test : test.skip
if (!havePrebuild && !required) {
  console.log(`test/pack: skipped: no prebuilds/${platformDir}/innflow.node (run \`npm run prebuildify\` first)`)
}

maybe('npm pack → install without a compiler → train on the CPU from the prebuilt binary', () => {
  expect(fs.existsSync(path.join(prebuildDir, 'innflow.node'))).toBe(true)
  const shippedCuda = fs.existsSync(path.join(prebuildDir, 'libinnflow_cuda.so'))

  // the release binary carries OpenBLAS inside: it needs nothing beyond libc, libm, libstdc++ and libgcc
  if (process.platform === 'linux') {
    const deps = execFileSync('ldd', [path.join(prebuildDir, 'innflow.node')], { encoding: 'utf8' })
    expect(deps).not.toMatch(/openblas|gfortran|not found/)
  }

  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'innflow-pack-'))
  try {
    // 1. the tarball (prepack compiles the TypeScript into dist/)
    const packed = run('npm', ['pack', '--json', '--pack-destination', tmp], { cwd: root, timeout: 180_000 })
    const info = JSON.parse(packed.stdout.slice(packed.stdout.indexOf('['))) as { filename: string; size: number; files: { path: string }[] }[]
    const tarball = path.join(tmp, info[0].filename)
    const files = info[0].files.map((f) => f.path)
    expect(files).toContain(`prebuilds/${platformDir}/innflow.node`)
    expect(files).toContain('dist/lib/index.js')
    expect(files).toContain('dist/lib/index.d.ts')
    if (shippedCuda) expect(files).toContain(`prebuilds/${platformDir}/libinnflow_cuda.so`)
    expect(files.filter((f) => f.startsWith('build/') || f.startsWith('test/') || f.startsWith('node_modules/'))).toEqual([])
    console.log(`test/pack: ${info[0].filename}: ${(info[0].size / 1e6).toFixed(1)} MB, ${files.length} files`)

    // 2. a fresh project, installed with node and npm only on the PATH
    const project = path.join(tmp, 'project')
    fs.mkdirSync(project)
    fs.writeFileSync(path.join(project, 'package.json'), JSON.stringify({ name: 'innflow-pack-check', version: '1.0.0', private: true }))
    const bin = bareBin(tmp)
    const env: NodeJS.ProcessEnv = { ...process.env, PATH: bin, PREBUILDS_ONLY: '1' }
    for (const k of Object.keys(env)) if (k.startsWith('npm_') || k === 'INIT_CWD' || k.startsWith('INNFLOW_')) delete env[k]
    for (const tool of ['cc', 'c++', 'g++', 'cmake', 'make', 'nvcc']) {
      expect(spawnSync('/bin/sh', ['-c', `command -v ${tool}`], { env }).status).not.toBe(0)
    }
    run('npm', ['install', tarball, '--no-audit', '--no-fund', '--no-save', '--prefer-offline'], { cwd: project, env, timeout: 240_000 })
    const installed = path.join(project, 'node_modules', 'innflow')
    expect(fs.existsSync(path.join(installed, 'build'))).toBe(false)

    // 3. the install script, which npm 11 may have skipped: `node-gyp-build-test || cmake-js compile` must
    //    succeed through node-gyp-build-test (cmake-js cannot: there is no cmake and no compiler)
    run('npm', ['run', 'install'], { cwd: installed, env, timeout: 60_000 })
    expect(fs.existsSync(path.join(installed, 'build'))).toBe(false)

    // 4. train
    fs.writeFileSync(path.join(project, 'train.js'), TRAIN)
    const out = run('node', ['train.js'], { cwd: project, env, timeout: 120_000 })
    const result = JSON.parse(out.stdout.trim().split('\n').pop() as string) as {
      losses: number[]; gpuLosses: number[]; cudaAvailable: boolean; cudaReason: string | null; gemm: string; packageDir: string; tensors: number
    }
    const { losses } = result
    const mean = (a: number[]): number => a.reduce((s, v) => s + v, 0) / a.length
    console.log(`test/pack: losses ${losses.slice(0, 3).map((l) => l.toFixed(3)).join(', ')} ... ${losses.slice(-3).map((l) => l.toFixed(3)).join(', ')}; ` +
      `gemm ${result.gemm}; cuda.isAvailable() ${result.cudaAvailable}: ${result.cudaReason ?? 'yes'}` +
      (result.gpuLosses.length ? `; on the GPU: ${result.gpuLosses.slice(0, 2).map((l) => l.toFixed(3)).join(', ')} ... ${result.gpuLosses.slice(-2).map((l) => l.toFixed(3)).join(', ')}` : ''))
    expect(fs.realpathSync(result.packageDir)).toBe(fs.realpathSync(installed))
    expect(losses).toHaveLength(150)
    expect(losses.every(Number.isFinite)).toBe(true)
    expect(mean(losses.slice(-20))).toBeLessThan(mean(losses.slice(0, 20)) - 0.2)
    expect(result.gemm).toBe('openblas')
    expect(result.tensors).toBeLessThan(200)
    const gpuHere = fs.existsSync('/dev/nvidiactl')
    if (gpuHere && shippedCuda) {
      // the GPU machine: the packed CUDA library loads and the flow trains on the GPU
      expect(result.cudaAvailable).toBe(true)
      expect(result.gpuLosses).toHaveLength(150)
      expect(result.gpuLosses.every(Number.isFinite)).toBe(true)
      expect(mean(result.gpuLosses.slice(-20))).toBeLessThan(mean(result.gpuLosses.slice(0, 20)) - 0.2)
    }
    if (!gpuHere) {
      expect(result.gpuLosses).toEqual([])
      expect(result.cudaAvailable).toBe(false)
      expect(typeof result.cudaReason).toBe('string')
      expect((result.cudaReason as string).length).toBeGreaterThan(10)
      // with the CUDA library shipped, the reason is about this machine, not about the build
      if (shippedCuda) expect(result.cudaReason).not.toMatch(/built without/)
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true })
  }
}, 600_000)
