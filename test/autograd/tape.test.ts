import { grad, noGrad, isGradEnabled, ops, tensor, Tensor, tidy } from '../../lib'
import { expectClose, expectCode, gradCheck, input } from '../helpers'

describe('autograd', () => {
  test('gradients accumulate across backward calls, as in PyTorch', () => {
    tidy(() => {
      const x = tensor([1, 2, 3], [3], { dtype: 'float64', requiresGrad: true })
      x.square().sum().backward()
      expectClose(x.grad!, [2, 4, 6], 0)
      x.mul(3).sum().backward()
      expectClose(x.grad!, [5, 7, 9], 0)
      x.grad = null
      x.exp().sum().backward()
      expectClose(x.grad!, [1, 2, 3].map(Math.exp), 1e-15)
    })
  })

  test('a tensor used several times (diamond graph) gets the summed gradient', () => {
    gradCheck((x) => {
      const a = x.exp()
      const b = a.mul(x).add(a.square())
      return b.div(x.square().add(1))
    }, [input([4, 3], 3)])
    tidy(() => {
      const x = tensor([2], [1], { dtype: 'float64', requiresGrad: true })
      x.add(x).add(x).sum().backward() // identity gradients passed along several times
      expectClose(x.grad!, [3], 0)
    })
  })

  test('chains of broadcasting ops match finite differences', () => {
    gradCheck((a, b, c) => a.mul(b).sub(c).tanh().sum(1, true).add(b.sigmoid()), [input([3, 4], 1), input([4], 2), input([3, 1], 3)])
  })

  test('only leaves that require grad receive gradients; non-leaf grads are not kept', () => {
    tidy(() => {
      const a = tensor([1, 2], [2], { dtype: 'float64', requiresGrad: true })
      const b = tensor([3, 4], [2], { dtype: 'float64' })
      const h = a.mul(b)
      expect(h.requiresGrad).toBe(true)
      expect(h.isLeaf).toBe(false)
      h.sum().backward()
      expectClose(a.grad!, [3, 4], 0)
      expect(b.grad).toBeNull()
      expect(h.grad).toBeNull()
    })
  })

  test('backward with an explicit gradient; the caller keeps ownership of it', () => {
    tidy(() => {
      const a = tensor([1, 2, 3, 4], [2, 2], { dtype: 'float64', requiresGrad: true })
      const y = a.square()
      const g = tensor([1, 0, -1, 2], [2, 2], { dtype: 'float64' })
      y.backward(g)
      expectClose(a.grad!, [2, 0, -6, 16], 0)
      expect(g.isDisposed).toBe(false)
      expectCode(() => a.square().backward(), 'ERR_SHAPE')
      expectCode(() => a.square().backward(tensor([1, 2], [2], { dtype: 'float64' })), 'ERR_SHAPE')
    })
  })

  test('noGrad records nothing; detach cuts the graph', () => {
    tidy(() => {
      const a = tensor([1, 2], [2], { dtype: 'float64', requiresGrad: true })
      const y = noGrad(() => {
        expect(isGradEnabled()).toBe(false)
        return a.mul(2)
      })
      expect(isGradEnabled()).toBe(true)
      expect(y.requiresGrad).toBe(false)
      expectCode(() => y.sum().backward(), 'ERR_ARGUMENT')
      const d = a.detach()
      expect(d.requiresGrad).toBe(false)
      expect(d.handle.sharesStorage(a.handle)).toBe(true)
    })
  })

  test('a graph is freed by backward: a second backward through it is an ERR_GRAPH', () => {
    tidy(() => {
      const a = tensor([1, 2], [2], { dtype: 'float64', requiresGrad: true })
      const loss = a.exp().sum()
      loss.backward()
      expectCode(() => loss.backward(), 'ERR_GRAPH')
    })
  })

  test('a disposed saved tensor makes backward fail with ERR_DISPOSED, not a crash', () => {
    tidy(() => {
      const a = tensor([1, 2], [2], { dtype: 'float64', requiresGrad: true })
      const b = tensor([3, 4], [2], { dtype: 'float64' })
      const loss = a.mul(b).sum()
      b.dispose()
      expectCode(() => loss.backward(), 'ERR_DISPOSED')
    })
  })

  test('requiresGrad is settable on leaves only', () => {
    tidy(() => {
      const a = tensor([1], [1], { dtype: 'float64' })
      a.requiresGrad = true
      const y = a.mul(2)
      expectCode(() => {
        y.requiresGrad = false
      }, 'ERR_ARGUMENT')
      expectCode(() => ops.mul(1, 2), 'ERR_ARGUMENT')
    })
  })
})

describe('grad()', () => {
  test('returns gradients for leaves and intermediates without touching .grad', () => {
    tidy(() => {
      const x = tensor([0.5, -1, 2], [3], { dtype: 'float64', requiresGrad: true })
      const h = x.exp()
      const y = h.mul(x).sum()
      const [gx, gh] = grad(y, [x, h])
      // y = Σ e^x · x: dy/dx = e^x (x + 1); dy/dh = x
      expectClose(gx as Tensor, [0.5, -1, 2].map((v) => Math.exp(v) * (v + 1)), 1e-15)
      expectClose(gh as Tensor, [0.5, -1, 2], 0)
      expect(x.grad).toBeNull()
      const z = tensor([1], [1], { dtype: 'float64', requiresGrad: true })
      const [none] = grad(x.square().sum(), [z])
      expect(none).toBeNull()
      const v = x.square()
      const [vjp] = grad(v, [x], tensor([1, 2, 3], [3], { dtype: 'float64' }))
      expectClose(vjp as Tensor, [1, -4, 12], 0)
    })
  })
})
