import { memory } from '../../lib'
import { trainDigitsDense } from '../../examples/digits-dense'

test('the digits-dense example builds the digits-nll recipe and trains a few steps without leaking', () => {
  const before = memory().tensors
  const logs: string[] = []
  const { bitsPerDim } = trainDigitsDense(20, 0, (s) => logs.push(s))
  expect(Number.isFinite(bitsPerDim)).toBe(true)
  // 20 steps from an untrained flow: far from the 3.32 of the full recipe, but a proper density already
  expect(bitsPerDim).toBeGreaterThan(3.3)
  expect(bitsPerDim).toBeLessThan(8)
  expect(logs[0]).toMatch(/^step +1 +nll/)
  expect(memory().tensors).toBe(before)
}, 120000)
