import { modules, SequenceINN, tensor, tidy } from '../../lib'
import { expectClose, expectCode, numel, randomValues } from '../helpers'
import { checkInvertibleModule } from './module-check'

const { Flatten } = modules

describe('Flatten', () => {
  test.each([[[2, 3, 2, 2]], [[3, 5]], [[2, 1, 3]]])('shape %j: forward is a row-major flatten per sample, reverse restores it', (shape) => {
    tidy(() => {
      const m = new Flatten([shape.slice(1)])
      const n = numel(shape.slice(1))
      expect(m.outputDims([shape.slice(1)])).toEqual([[n]])
      expect(m.outputShape).toEqual([n])
      const values = randomValues(numel(shape), 40)
      const [[y], j] = m.forward([tensor(values, shape, { dtype: 'float64' })])
      expect(y.shape).toEqual([shape[0], n])
      expect(j).toBe(0)
      expectClose(y, values, 0)
      const [[x], jr] = m.forward([y], [], true)
      expect(x.shape).toEqual(shape)
      expect(jr).toBe(0)
      expectClose(x, values, 0)
      expect(m.forward([tensor(values, shape, { dtype: 'float32' })])[0][0].dtype).toBe('float32')
    })
  })

  test.each([[[2, 3, 2, 2]], [[3, 4]]])('checkInvertibleModule %j', (shape) => {
    checkInvertibleModule(() => new Flatten([shape.slice(1)]), { inputs: [shape] })
  })

  test('no state; in a SequenceINN', () => {
    const m = new Flatten([[2, 3]])
    expect(m.stateDict()).toEqual({})
    tidy(() => {
      const inn = new SequenceINN(2, 3)
      inn.append(Flatten)
      expect(inn.outputDims()).toEqual([[6]])
    })
  })

  test('bad dims, options and inputs', () => {
    expectCode(() => new Flatten([[2], [3]]), 'ERR_SHAPE')
    expectCode(() => new Flatten([[2]], { outputDims: [2] } as never), 'ERR_ARGUMENT')
    const m = new Flatten([[2, 3]])
    expectCode(() => m.outputDims([[2], [3]]), 'ERR_SHAPE')
    tidy(() => {
      expectCode(() => m.forward([tensor(randomValues(6, 1), [1, 3, 2])]), 'ERR_SHAPE')
      expectCode(() => m.forward([tensor(randomValues(6, 1), [1, 2, 3])], [], true), 'ERR_SHAPE')
    })
  })
})
