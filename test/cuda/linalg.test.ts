/**
 * ops.linalg on CUDA (cuda/linalg.cu) against the CPU (native/cpu/linalg.cc): lu, slogdet/det, inverse,
 * solveTriangular and qr, forward and backward, float32 and float64, single matrices and batches, sizes that do
 * not divide the block size, pivot ties, empty batches, and the documented difference on singular input (NaN on
 * the GPU where the CPU throws ERR_ARGUMENT). The GPU runs the CPU's algorithms in double with the same order of
 * operations, so results agree to rounding (bit for bit except where exp/log differ in the last place).
 */
import { ops, tensor, Tensor, tidy } from '../../lib'
import { expectCode, randomValues, relErr, rng } from '../helpers'
import { compareWithCpu, describeCuda, Input, values } from './compare'

const { linalg } = ops

type DT = 'float32' | 'float64'
const DTYPES: [DT, number][] = [
  ['float32', 1e-5],
  ['float64', 1e-10],
]

let seed = 5000

/** Random values for matrices (..., n, n) whose diagonal is pushed away from zero (well-conditioned triangles). */
function strongDiagonal(shape: number[]): number[] {
  const n = shape[shape.length - 1]
  const count = shape.reduce((a, b) => a * b, 1)
  const v = randomValues(count, seed++, -1, 1)
  for (let e = 0; e < count; e++) {
    const i = Math.floor(e / n) % n
    const j = e % n
    if (i === j) v[e] = (v[e] < 0 ? -1 : 1) * (1.5 + Math.abs(v[e]))
  }
  return v
}

/** Small integers in [-2, 2]: many equal |values| in a column, so the pivot choice depends on tie-breaking. */
function tieHeavy(count: number): number[] {
  const r = rng(seed++)
  return Array.from({ length: count }, () => Math.floor(r() * 5) - 2)
}

/** Compares arrays that may hold ±Infinity or NaN: non-finite entries must match exactly, finite ones to tol. */
function expectSame(actual: number[], expected: number[], tol: number, what: string): void {
  expect(actual.length).toBe(expected.length)
  const a: number[] = []
  const b: number[] = []
  for (let i = 0; i < actual.length; i++) {
    if (Number.isFinite(expected[i])) {
      a.push(actual[i])
      b.push(expected[i])
    } else if (!Object.is(actual[i], expected[i])) {
      throw new Error(`${what}: entry ${i} is ${actual[i]} on CUDA but ${expected[i]} on the CPU`)
    }
  }
  const err = relErr(a, b)
  if (!(err <= tol)) throw new Error(`${what}: CUDA vs CPU relative error ${err.toExponential(3)} exceeds ${tol}`)
}

const cudaTensor = (v: number[], shape: number[], dtype: DT = 'float64'): Tensor => tensor(v, shape, { dtype, device: 'cuda' })

describeCuda('CUDA linalg.lu', () => {
  const shapes = [[1, 1], [2, 2], [7, 7], [3, 5, 5], [2, 2, 4, 4], [33, 33], [1000, 3, 3], [257, 257]]
  for (const [dtype, tol] of DTYPES) {
    for (const shape of shapes) {
      test(`${dtype} ${JSON.stringify(shape)}: P, L, U and the gradient through L and U`, () => {
        compareWithCpu([{ shape }], (a) => {
          const { P, L, U } = linalg.lu(a)
          return [P, L, U]
        }, { dtype, tol })
      })
    }
    test(`${dtype}: a gradient through L only and through U only (the other is null in the backward)`, () => {
      compareWithCpu([{ shape: [6, 6] }], (a) => linalg.lu(a).L, { dtype, tol })
      compareWithCpu([{ shape: [2, 9, 9] }], (a) => linalg.lu(a).U, { dtype, tol })
    })
  }

  test('pivot ties (small integers) give the same permutations and factors as the CPU', () => {
    for (const shape of [[7, 7], [33, 33], [64, 64], [50, 6, 6], [300, 300]]) {
      const count = shape.reduce((a, b) => a * b, 1)
      for (const dtype of ['float32', 'float64'] as DT[])
        compareWithCpu([{ shape, values: tieHeavy(count) }], (a) => {
          const { P, L, U } = linalg.lu(a)
          return [P, L, U]
        }, { dtype, tol: 1e-12, backward: false })
    }
  })

  test('singular matrices factor on both devices (a zero pivot is skipped)', () => {
    const v = [0, 1, 2, 0, 3, 4, 0, 5, 6, /* */ 0, 0, 0, 0, 0, 0, 0, 0, 0, /* */ 1, 2, 3, 2, 4, 6, 1, 1, 1]
    compareWithCpu([{ shape: [3, 3, 3], values: v }], (a) => {
      const { P, L, U } = linalg.lu(a)
      return [P, L, U]
    }, { dtype: 'float64', tol: 1e-12, backward: false })
  })
})

describeCuda('CUDA linalg.slogdet and det', () => {
  const shapes = [[1, 1], [7, 7], [4, 6, 6], [33, 33], [1000, 3, 3], [70000, 1, 1], [257, 257]]
  for (const [dtype, tol] of DTYPES) {
    for (const shape of shapes) {
      test(`${dtype} ${JSON.stringify(shape)}: sign, logabsdet and its gradient`, () => {
        compareWithCpu([{ shape }], (a) => {
          const { sign, logabsdet } = linalg.slogdet(a)
          return [sign, logabsdet]
        }, { dtype, tol })
      })
    }
    test(`${dtype}: det and its gradient`, () => {
      compareWithCpu([{ shape: [3, 5, 5] }], (a) => linalg.det(a), { dtype, tol })
    })
  }

  test('singular matrices: sign 0 and logabsdet -Infinity on both devices, next to regular ones', () => {
    const v = [1, 2, 2, 4, /* */ 0, 0, 0, 0, /* */ 3, 1, 1, 2, /* */ 0, 1, 0, 1]
    for (const dtype of ['float32', 'float64'] as DT[]) {
      const run = (device: 'cpu' | 'cuda') =>
        tidy(() => {
          const { sign, logabsdet } = linalg.slogdet(tensor(v, [4, 2, 2], { dtype, device }))
          return { sign: values(sign), lad: values(logabsdet) }
        })
      const cpu = run('cpu')
      const gpu = run('cuda')
      expect(gpu.sign).toEqual(cpu.sign)
      expect(cpu.lad[0]).toBe(-Infinity)
      expectSame(gpu.lad, cpu.lad, dtype === 'float32' ? 1e-6 : 1e-14, 'logabsdet')
    }
  })

  test('pivot ties: the same signs and log-determinants (including singular ones) as the CPU', () => {
    const shape = [200, 5, 5]
    const v = tieHeavy(200 * 25)
    const run = (device: 'cpu' | 'cuda') =>
      tidy(() => {
        const { sign, logabsdet } = linalg.slogdet(tensor(v, shape, { dtype: 'float64', device }))
        return { sign: values(sign), lad: values(logabsdet) }
      })
    const cpu = run('cpu')
    const gpu = run('cuda')
    expect(gpu.sign).toEqual(cpu.sign)
    expectSame(gpu.lad, cpu.lad, 1e-14, 'logabsdet')
  })

  test('0×0 matrices have sign 1 and logabsdet 0; an empty batch gives empty results', () => {
    tidy(() => {
      const { sign, logabsdet } = linalg.slogdet(cudaTensor([], [2, 0, 0]))
      expect(sign.device).toBe('cuda')
      expect(values(sign)).toEqual([1, 1])
      expect(values(logabsdet)).toEqual([0, 0])
      const e = linalg.slogdet(cudaTensor([], [0, 3, 3]))
      expect(e.logabsdet.shape).toEqual([0])
      expect(e.sign.device).toBe('cuda')
    })
  })
})

describeCuda('CUDA linalg.inverse', () => {
  const shapes = [[1, 1], [2, 2], [7, 7], [3, 5, 5], [33, 33], [1000, 3, 3], [257, 257]]
  for (const [dtype, tol] of DTYPES) {
    for (const shape of shapes) {
      test(`${dtype} ${JSON.stringify(shape)}: the inverse and its gradient`, () => {
        // a strong diagonal keeps the inverse well-conditioned (random matrices of size 257 may be nearly singular)
        compareWithCpu([{ shape, values: strongDiagonal(shape) }], (a) => linalg.inverse(a), { dtype, tol })
      })
    }
    test(`${dtype}: general random matrices (row exchanges)`, () => {
      compareWithCpu([{ shape: [4, 8, 8] }], (a) => linalg.inverse(a), { dtype, tol })
    })
  }

  test('a singular matrix: ERR_ARGUMENT on the CPU, NaN for that matrix on CUDA (no host sync to throw)', () => {
    const v = [2, 1, 1, 3, /* */ 1, 2, 2, 4, /* */ 4, 0, 0, 5]
    expectCode(() => tidy(() => linalg.inverse(tensor(v, [3, 2, 2], { dtype: 'float64' }))), 'ERR_ARGUMENT')
    tidy(() => {
      const out = values(linalg.inverse(cudaTensor(v, [3, 2, 2])))
      expect(out.slice(4, 8).every((x) => Number.isNaN(x))).toBe(true)
      const ok = [...out.slice(0, 4), ...out.slice(8, 12)]
      const cpu = [
        ...values(linalg.inverse(tensor(v.slice(0, 4), [2, 2], { dtype: 'float64' }))),
        ...values(linalg.inverse(tensor(v.slice(8, 12), [2, 2], { dtype: 'float64' }))),
      ]
      expect(relErr(ok, cpu)).toBeLessThanOrEqual(1e-15)
    })
  })

  test('an empty batch gives an empty result on CUDA', () => {
    tidy(() => {
      const y = linalg.inverse(cudaTensor([], [0, 4, 4]))
      expect(y.shape).toEqual([0, 4, 4])
      expect(y.device).toBe('cuda')
    })
  })
})

describeCuda('CUDA linalg.solveTriangular', () => {
  // [A shape, B shape (left), B shape (right)]
  const cases: [number[], number[], number[]][] = [
    [[1, 1], [1, 1], [1, 1]],
    [[5, 5], [5, 3], [3, 5]],
    [[7, 7], [7, 1], [1, 7]],
    [[2, 3, 4, 4], [2, 3, 4, 7], [2, 3, 7, 4]],
    [[33, 33], [33, 300], [300, 33]],
    [[257, 257], [257, 3], [3, 257]],
    [[1000, 2, 2], [1000, 2, 5], [1000, 5, 2]],
  ]
  for (const [dtype, tol] of DTYPES) {
    for (const [aShape, bLeft, bRight] of cases) {
      for (const upper of [true, false])
        for (const left of [true, false])
          for (const unitriangular of [false, true]) {
            const name = `${dtype} A ${JSON.stringify(aShape)} upper=${upper} left=${left} unit=${unitriangular}`
            test(`${name}: X and the gradients of A and B`, () => {
              const inputs: Input[] = [{ shape: aShape, values: strongDiagonal(aShape) }, { shape: left ? bLeft : bRight }]
              compareWithCpu(inputs, (a, b) => linalg.solveTriangular(a, b, { upper, left, unitriangular }), { dtype, tol })
            })
          }
    }
    test(`${dtype}: a gradient for B only and for A only`, () => {
      const aShape = [6, 6]
      compareWithCpu([{ shape: aShape, values: strongDiagonal(aShape), grad: false }, { shape: [6, 4] }],
        (a, b) => linalg.solveTriangular(a, b, { upper: true }), { dtype, tol })
      compareWithCpu([{ shape: aShape, values: strongDiagonal(aShape) }, { shape: [4, 6], grad: false }],
        (a, b) => linalg.solveTriangular(a, b, { upper: false, left: false }), { dtype, tol })
    })
  }

  test('a zero on the diagonal: ERR_ARGUMENT on the CPU, NaN for that matrix on CUDA', () => {
    const a = [1, 2, 0, 0, /* */ 2, 1, 0, 3] // matrix 0 has A[1][1] = 0 (upper)
    const b = [1, 2, 3, 4, 5, 6, 7, 8]
    expectCode(() => tidy(() => linalg.solveTriangular(tensor(a, [2, 2, 2]), tensor(b, [2, 2, 2]), { upper: true })), 'ERR_ARGUMENT')
    tidy(() => {
      const x = values(linalg.solveTriangular(cudaTensor(a, [2, 2, 2]), cudaTensor(b, [2, 2, 2]), { upper: true }))
      expect(x.slice(0, 4).every((v) => Number.isNaN(v))).toBe(true)
      const cpu = values(linalg.solveTriangular(tensor(a.slice(4), [2, 2], { dtype: 'float64' }), tensor(b.slice(4), [2, 2], { dtype: 'float64' }), { upper: true }))
      expect(relErr(x.slice(4), cpu)).toBeLessThanOrEqual(1e-15)
      // unitriangular never reads the diagonal: no NaN
      const xu = values(linalg.solveTriangular(cudaTensor(a, [2, 2, 2]), cudaTensor(b, [2, 2, 2]), { upper: true, unitriangular: true }))
      expect(xu.every((v) => Number.isFinite(v))).toBe(true)
    })
  })

  test('empty B and empty batches give empty results on CUDA', () => {
    tidy(() => {
      const x = linalg.solveTriangular(cudaTensor([], [0, 3, 3]), cudaTensor([], [0, 3, 2]), { upper: true })
      expect(x.shape).toEqual([0, 3, 2])
      expect(x.device).toBe('cuda')
      const y = linalg.solveTriangular(cudaTensor(strongDiagonal([3, 3]), [3, 3]), cudaTensor([], [3, 0]), { upper: false })
      expect(y.shape).toEqual([3, 0])
    })
  })

  test('mixing a CPU and a CUDA tensor is ERR_DEVICE', () => {
    tidy(() => {
      const a = tensor(strongDiagonal([3, 3]), [3, 3], { dtype: 'float64' })
      const b = cudaTensor(randomValues(6, seed++), [3, 2])
      expectCode(() => linalg.solveTriangular(a, b, { upper: true }), 'ERR_DEVICE')
      expectCode(() => linalg.solveTriangular(a.to({ device: 'cuda' }), b.to({ device: 'cpu' }), { upper: false }), 'ERR_DEVICE')
    })
  })
})

describeCuda('CUDA linalg.qr', () => {
  const shapes = [[1, 1], [5, 3], [7, 7], [3, 6, 4], [40, 33], [257, 9], [300, 260], [1000, 3, 2]]
  for (const [dtype, tol] of DTYPES) {
    for (const shape of shapes) {
      test(`${dtype} ${JSON.stringify(shape)}: Q, R and the gradient through both`, () => {
        compareWithCpu([{ shape }], (a) => {
          const { Q, R } = linalg.qr(a)
          return [Q, R]
        }, { dtype, tol })
      })
    }
    test(`${dtype}: a gradient through R only and through Q only`, () => {
      compareWithCpu([{ shape: [8, 5] }], (a) => linalg.qr(a).R, { dtype, tol })
      compareWithCpu([{ shape: [2, 6, 6] }], (a) => linalg.qr(a).Q, { dtype, tol })
    })
  }

  test('columns that are already multiples of e1 (no reflection) and zero columns', () => {
    const v = [3, 1, 0, /* */ 0, 2, 0, /* */ 0, 5, 0, /* */ 0, 1, 0]
    for (const dtype of ['float32', 'float64'] as DT[])
      compareWithCpu([{ shape: [4, 3], values: v }], (a) => {
        const { Q, R } = linalg.qr(a)
        return [Q, R]
      }, { dtype, tol: 1e-12, backward: false })
  })

  test('a rank-deficient matrix: qr backward throws on the CPU and gives NaN on CUDA', () => {
    const v = [1, 0, 2, 0, 3, 0] // (3, 2) with a zero column: R[1][1] is exactly 0
    const grad = (device: 'cpu' | 'cuda'): number[] =>
      tidy(() => {
        const a = tensor(v, [3, 2], { dtype: 'float64', device, requiresGrad: true })
        linalg.qr(a).R.sum().backward()
        return values(a.grad as Tensor)
      })
    expectCode(() => grad('cpu'), 'ERR_ARGUMENT')
    expect(grad('cuda').every((x) => Number.isNaN(x))).toBe(true)
  })

  test('an empty batch gives empty results on CUDA', () => {
    tidy(() => {
      const { Q, R } = linalg.qr(cudaTensor([], [0, 4, 3]))
      expect(Q.shape).toEqual([0, 4, 3])
      expect(R.shape).toEqual([0, 3, 3])
      expect(R.device).toBe('cuda')
    })
  })
})
