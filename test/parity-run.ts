/**
 * One FrEIA parity case, run through the public API on a device: the network is rebuilt, loaded with FrEIA's
 * state dict, moved to the device, and must reproduce FrEIA's outputs, log-dets, loss, gradients and inverse.
 * Used by test/parity.test.ts (CPU) and test/cuda/parity.test.ts (GPU, float32).
 */
import { Device, DType, GraphINN, setDefaultDtype, tensor, Tensor, tidy } from '../lib'
import { buildCase, loadCase } from './parity-build'

function indexed(tensors: Record<string, Tensor>, prefix: string): Tensor[] {
  const out: Tensor[] = []
  for (let i = 0; tensors[`${prefix}.${i}`]; i++) out.push(tensors[`${prefix}.${i}`])
  return out
}

function expectRel(what: string, actual: Tensor, expected: Tensor, tol: number, floor = 0): void {
  expect(actual.shape).toEqual(expected.shape)
  const a = actual.toArray()
  const b = expected.toArray()
  let num = 0
  let den = 0
  for (let i = 0; i < a.length; i++) {
    num += (a[i] - b[i]) ** 2
    den += b[i] ** 2
  }
  const err = Math.sqrt(num) / Math.max(Math.sqrt(den), floor, 1e-300)
  if (!(err <= tol)) throw new Error(`${what}: relative error ${err.toExponential(3)} > ${tol}`)
}

/**
 * Log-dets are compared relative to max(‖b‖, √batch), i.e. with a floor of one nat per sample: a
 * volume-preserving block (GIN) has a log-det that is 0 in exact arithmetic, and FrEIA's stored value is
 * rounding noise (~1e-18) that no relative error can match. Wherever ‖b‖ exceeds √batch — every other
 * fixture — this is the plain relative error.
 */
const logDetFloor = (t: Tensor): number => Math.sqrt(t.size)

export function runParityCase(name: string, dtype: DType, device: Device = 'cpu'): void {
  const tol = dtype === 'float64' ? { out: 1e-9, grad: 1e-9 } : { out: 1e-4, grad: 1e-3 }
  setDefaultDtype(dtype)
  try {
    tidy(() => {
      const { spec, tensors } = loadCase(name)
      const inn = buildCase(spec)
      const state: Record<string, Tensor> = {}
      for (const [k, v] of Object.entries(tensors)) if (k.startsWith('state.')) state[k.slice(6)] = v
      inn.loadStateDict(state)
      inn.to({ device })
      const cast = (t: Tensor) => t.to({ dtype, device })
      const xs = indexed(tensors, 'x').map((t) => tensor(t.toArray(), [...t.shape], { dtype, device, requiresGrad: true }))
      const cs = indexed(tensors, 'c').map(cast)
      const run = (x: Tensor[], rev: boolean): [Tensor | Tensor[], Tensor] =>
        inn instanceof GraphINN ? inn.forward(x.length === 1 ? x[0] : x, { c: cs, rev }) : inn.forward(x[0], { c: cs, rev })
      const [zRaw, logJacDet] = run(xs, false)
      const zs = Array.isArray(zRaw) ? zRaw : [zRaw]
      const zRef = indexed(tensors, 'z')
      expect(zs.length).toBe(zRef.length)
      zs.forEach((z, i) => {
        expect(z.device).toBe(device)
        expectRel(`z.${i}`, z, cast(zRef[i]), tol.out)
      })
      expectRel('log_jac_det', logJacDet, cast(tensors.log_jac_det), tol.out, logDetFloor(logJacDet))

      // gradients of L = Σ sum(z_i · r_i) + sum(log_jac_det · q)
      let loss = logJacDet.mul(cast(tensors['loss_weight.log_jac_det'])).sum()
      zs.forEach((z, i) => (loss = loss.add(z.mul(cast(tensors[`loss_weight.z.${i}`])).sum())))
      expectRel('loss', loss.reshape([1]), cast(tensors.loss), tol.out)
      loss.backward()
      xs.forEach((x, i) => expectRel(`grad.x.${i}`, x.grad as Tensor, cast(tensors[`grad.x.${i}`]), tol.grad))
      const params = new Map(inn.namedParameters())
      const gradKeys = Object.keys(tensors).filter((k) => k.startsWith('grad.state.'))
      for (const k of gradKeys) {
        const p = params.get(k.slice('grad.state.'.length))
        if (!p) throw new Error(`no parameter ${k.slice(11)} (have ${[...params.keys()].join(', ')})`)
        expectRel(k, p.grad as Tensor, cast(tensors[k]), tol.grad)
      }
      // every trainable parameter of innflow has a FrEIA gradient (no extra parameters)
      expect([...params.keys()].sort()).toEqual(gradKeys.map((k) => k.slice(11)).sort())

      // the inverse pass, from FrEIA's z
      const [xRev, logJacDetRev] = run(zRef.map(cast), true)
      const xRevs = Array.isArray(xRev) ? xRev : [xRev]
      indexed(tensors, 'rev.x').forEach((x, i) => expectRel(`rev.x.${i}`, xRevs[i], cast(x), tol.out))
      expectRel('rev.log_jac_det', logJacDetRev, cast(tensors['rev.log_jac_det']), tol.out, logDetFloor(logJacDetRev))
    })
  } finally {
    setDefaultDtype('float32')
  }
}

