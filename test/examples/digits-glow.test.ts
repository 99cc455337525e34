/**
 * examples/digits-glow.ts: the multiscale Glow builds, is invertible, and trains for a few steps (the full
 * run, `node dist/examples/digits-glow.js`, is not part of the suite).
 */
import { manualSeed, memory, noGrad, Tensor, tidy } from '../../lib'
import { buildDigitsGlow, DEFAULTS, digitsSplit, main } from '../../examples/digits-glow'
import * as fs from 'node:fs'
import { expectClose } from '../helpers'
import { decodePng } from '../plot/png-decode'

describe('examples/digits-glow', () => {
  test('the model: (1, 8, 8) → 64 latent dimensions, three levels of GlowSteps, invertible', () =>
    tidy(() => {
      manualSeed(0)
      const flow = buildDigitsGlow()
      const names = flow.namedParameters().map(([n]) => n)
      for (let level = 1; level <= 3; level++)
        expect(names.filter((n) => n.startsWith(`level${level}_`) && n.endsWith('invconv.log_s'))).toHaveLength(DEFAULTS.stepsPerLevel)
      const { train } = digitsSplit()
      const x = train.narrow(0, 0, 64).add(0.5).div(17)
      const [zs, logDet] = noGrad(() => flow.forward(x)) // the first call initialises ActNorm
      const z = zs as Tensor
      expect(z.shape).toEqual([64, 64])
      expect(logDet.shape).toEqual([64])
      const [back, logDetRev] = noGrad(() => flow.forward(z, { rev: true }))
      expectClose(back as Tensor, x.toArray(), 1e-5)
      expectClose(logDetRev, logDet.neg().toArray(), 1e-5)
    }))

  test('a few training steps run, improve on the untrained model, leak nothing, and the last line is the result', () => {
    const lines: string[] = []
    const before = memory().tensors
    const untrained = main(['--steps', '2', '--lr', '0'], () => undefined).bitsPerDim
    const { bitsPerDim, png } = main(['--steps', '12'], (s) => lines.push(s))
    // the sample grid: 5 rows × 10 columns of 8×8 images at scale 6, not a constant picture
    expect(fs.existsSync(png)).toBe(true)
    const image = decodePng(png)
    expect([image.width, image.height]).toEqual([10 * 48 + 11 * 2, 5 * 48 + 6 * 2])
    expect(image.colors()).toBeGreaterThan(10)
    expect(memory().tensors).toBe(before) // the example frees its data, model and optimiser state
    expect(Number.isFinite(bitsPerDim)).toBe(true)
    expect(bitsPerDim).toBeLessThan(untrained - 0.1) // about 4.29 → 4.09 in 12 steps
    expect(lines[lines.length - 1]).toMatch(/^test bits\/dim: \d+\.\d{3}$/)
    expect(Number(lines[lines.length - 1].split(': ')[1])).toBeCloseTo(bitsPerDim, 3)
  })
})
