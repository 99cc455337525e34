import { modules, tensor, tidy } from '../../lib'
import { expectClose, expectCode, numel, randomValues } from '../helpers'
import { checkInvertibleModule } from './module-check'

const { Reshape } = modules

describe('Reshape', () => {
  test.each([
    [[2, 2, 4, 4], { outputDims: [8, 2, 2] }, [8, 2, 2]],
    [[3, 12], { outputDims: [3, 2, 2] }, [3, 2, 2]],
    [[2, 3, 2, 2], { outputDims: [-1, 3] }, [4, 3]],
    [[2, 6], { targetDim: [2, 3] }, [2, 3]],
  ])('shape %j %j: row-major reshape per sample, reverse restores it', (shape, opts, target) => {
    tidy(() => {
      const m = new Reshape([shape.slice(1)], opts)
      expect(m.targetDim).toEqual(target)
      expect(m.outputDims([shape.slice(1)])).toEqual([target])
      const values = randomValues(numel(shape), 50)
      const [[y], j] = m.forward([tensor(values, shape, { dtype: 'float64' })])
      expect(y.shape).toEqual([shape[0], ...target])
      expect(j).toBe(0)
      expectClose(y, values, 0)
      const [[x], jr] = m.forward([y], [], true)
      expect(x.shape).toEqual(shape)
      expect(jr).toBe(0)
      expectClose(x, values, 0)
    })
  })

  test('outputDims takes precedence over the deprecated targetDim', () => {
    expect(new Reshape([[6]], { outputDims: [3, 2], targetDim: [2, 3] }).targetDim).toEqual([3, 2])
  })

  test.each([
    [[2, 2, 3], { outputDims: [3, 2] }],
    [[3, 2, 2, 2], { outputDims: [8] }],
  ])('checkInvertibleModule %j %j', (shape, opts) => {
    checkInvertibleModule(() => new Reshape([shape.slice(1)], opts), { inputs: [shape] })
  })

  test('bad options, dims and inputs', () => {
    expectCode(() => new Reshape([[6]]), 'ERR_ARGUMENT')
    expectCode(() => new Reshape([[6]], { outputDims: [4] }), 'ERR_SHAPE')
    expectCode(() => new Reshape([[6]], { outputDims: [-1, 4] }), 'ERR_SHAPE')
    expectCode(() => new Reshape([[6]], { outputDims: [-1, -1] }), 'ERR_ARGUMENT')
    expectCode(() => new Reshape([[6]], { outputDims: [0, 6] }), 'ERR_ARGUMENT')
    expectCode(() => new Reshape([[6]], { outputDims: [] }), 'ERR_ARGUMENT')
    expectCode(() => new Reshape([[6]], { outputDims: 6 as unknown as number[] }), 'ERR_ARGUMENT')
    expectCode(() => new Reshape([[6]], { outputDim: [6] } as never), 'ERR_ARGUMENT')
    expectCode(() => new Reshape([[6], [6]], { outputDims: [6] }), 'ERR_SHAPE')
    const m = new Reshape([[6]], { outputDims: [2, 3] })
    expectCode(() => m.outputDims([[5]]), 'ERR_SHAPE')
    tidy(() => {
      expectCode(() => m.forward([tensor(randomValues(6, 1), [1, 3, 2])]), 'ERR_SHAPE')
      expectCode(() => m.forward([tensor(randomValues(6, 1), [1, 6])], [], true), 'ERR_SHAPE')
    })
  })
})
