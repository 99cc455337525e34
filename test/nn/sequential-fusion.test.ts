/**
 * Sequential runs a Linear immediately followed by a ReLU as one fused call (linear with activation 'relu'):
 * outputs and every parameter and input gradient equal, bit for bit (float64 and float32), those of the layers
 * run one by one; the modules, names and state dict are unchanged; other pairs, subclasses and layers with their
 * own forward are left alone.
 */
import { grad, manualSeed, nn, tensor, Tensor, tidy } from '../../lib'
import { randomValues } from '../helpers'

type DT = 'float32' | 'float64'

/** The layers run one by one (no fusion). */
function unfused(seq: nn.Sequential, x: Tensor): Tensor {
  let y = x
  for (const m of seq) y = m.forward(y) as Tensor
  return y
}

function build(dtype: DT): nn.Sequential {
  manualSeed(3)
  return new nn.Sequential(
    new nn.Linear(5, 64, { dtype }),
    new nn.ReLU(),
    new nn.Linear(64, 64, { dtype }),
    new nn.ReLU(),
    new nn.Linear(64, 3, { dtype }),
    new nn.Tanh(),
    new nn.Linear(3, 4, { bias: false, dtype }),
    new nn.ReLU(),
  )
}

function outputsAndGrads(seq: nn.Sequential, fused: boolean, dtype: DT): number[][] {
  return tidy(() => {
    const x = tensor(randomValues(37 * 5, 17, -2, 2), [37, 5], { dtype, requiresGrad: true })
    const y = fused ? seq.forward(x) : unfused(seq, x)
    const w = tensor(randomValues(y.size, 18), [...y.shape], { dtype })
    const params = seq.parameters()
    const gs = grad(y.mul(w).sum(), [x, ...params])
    return [y, ...gs].map((t) => Array.from((t as Tensor).toArray()))
  })
}

describe('Sequential: Linear + ReLU fused', () => {
  for (const dtype of ['float64', 'float32'] as DT[])
    test(`outputs and gradients equal the unfused layers bit for bit (${dtype})`, () => {
      const seq = build(dtype)
      const fused = outputsAndGrads(seq, true, dtype)
      const plain = outputsAndGrads(seq, false, dtype)
      expect(fused.length).toBe(plain.length)
      fused.forEach((v, k) => expect(v).toEqual(plain[k]))
    })

  test('the fused call is what runs (one tape node for Linear + ReLU)', () =>
    tidy(() => {
      const seq = new nn.Sequential(new nn.Linear(3, 4), new nn.ReLU())
      const y = seq.forward(tensor(randomValues(6, 1), [2, 3]))
      expect(y._gradFn?.node.name).toBe('linear_relu')
      const lone = new nn.Sequential(new nn.Linear(3, 4), new nn.Tanh())
      expect(lone.forward(tensor(randomValues(6, 1), [2, 3]))._gradFn?.node.name).toBe('tanh')
      const last = new nn.Sequential(new nn.ReLU(), new nn.Linear(3, 4))
      expect(last.forward(tensor(randomValues(6, 1), [2, 3]))._gradFn?.node.name).toBe('linear')
    }))

  test('modules, names and the state dict are those of the layers', () => {
    const seq = build('float32')
    expect(Object.keys(seq.stateDict())).toEqual(['0.weight', '0.bias', '2.weight', '2.bias', '4.weight', '4.bias', '6.weight'])
    expect(seq.length).toBe(8)
    expect(seq.at(1)).toBeInstanceOf(nn.ReLU)
  })

  test('subclasses and layers with a forward of their own are not fused', () =>
    tidy(() => {
      class Shifted extends nn.Linear {
        override forward(x: Tensor): Tensor {
          return super.forward(x).add(1)
        }
      }
      class NegReLU extends nn.ReLU {
        override forward(x: Tensor): Tensor {
          return super.forward(x).neg()
        }
      }
      const x = tensor(randomValues(6, 2), [2, 3])
      manualSeed(1)
      const a = new nn.Sequential(new Shifted(3, 4), new nn.ReLU())
      expect(Array.from(a.forward(x).toArray())).toEqual(Array.from(unfused(a, x).toArray()))
      const b = new nn.Sequential(new nn.Linear(3, 4), new NegReLU())
      expect(Array.from(b.forward(x).toArray())).toEqual(Array.from(unfused(b, x).toArray()))
      expect(b.forward(x)._gradFn?.node.name).toBe('neg')
      const lin = new nn.Linear(3, 4)
      lin.forward = (t: Tensor) => nn.Linear.prototype.forward.call(lin, t).mul(2)
      const c = new nn.Sequential(lin, new nn.ReLU())
      expect(Array.from(c.forward(x).toArray())).toEqual(Array.from(unfused(c, x).toArray()))
      expect(c.forward(x)._gradFn?.node.name).toBe('relu')
    }))
})
