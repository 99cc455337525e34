/**
 * The CUDA emulator's own checks (tools/cuda-emu/selftest.cu): barriers, shuffles, launch limits, fresh memory,
 * capture and graph memory behave as on a GPU, in both execution orders. Runs where `npm run build:cuda-emu` built
 * the self-test; skipped, with the reason, elsewhere.
 */
import { spawnSync } from 'node:child_process'
import * as fs from 'node:fs'
import * as path from 'node:path'

const binary = path.join(__dirname, '..', '..', 'build-emu', 'Release', 'cuda_emu_selftest')
const built = fs.existsSync(binary)
const describeBuilt = built ? describe : describe.skip
if (!built) console.log(`test/cuda-emu skipped: ${binary} does not exist (npm run build:cuda-emu builds it)`)

describeBuilt('the CUDA emulator behaves as CUDA does', () => {
  test.each(['forward', 'reverse'])('every self-check passes (%s order)', (order) => {
    const run = spawnSync(binary, [], { encoding: 'utf8', env: { ...process.env, INNFLOW_CUDA_EMU_ORDER: order } })
    const lines = run.stdout.trim().split('\n')
    expect(lines.filter((l) => l.startsWith('FAIL'))).toEqual([])
    expect(lines.filter((l) => l.startsWith('ok')).length).toBe(15)
    expect(lines[lines.length - 1]).toBe('0 failed')
    expect(run.status).toBe(0)
  })
})
