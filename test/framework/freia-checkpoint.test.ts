/**
 * A FrEIA SequenceINN checkpoint saved from PyTorch with safetensors loads unchanged: keys
 * `module_list.<i>.…`, permutation indices stored as I64 (PyTorch's dtype), parameters as F32.
 */
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { io, modules as Fm, nn, SequenceINN, tensor, tidy } from '../../lib'
import { expectClose, randomValues } from '../helpers'

type Entry = { dtype: 'F32' | 'I64'; shape: number[]; values: number[] }

/** Writes a safetensors file the way PyTorch's `safetensors.torch.save_file` lays it out. */
function writeTorchStyle(file: string, entries: Record<string, Entry>): void {
  const header: Record<string, unknown> = {}
  const chunks: Buffer[] = []
  let offset = 0
  for (const [name, e] of Object.entries(entries)) {
    const buf = Buffer.alloc(e.values.length * (e.dtype === 'F32' ? 4 : 8))
    e.values.forEach((v, i) => (e.dtype === 'F32' ? buf.writeFloatLE(v, i * 4) : buf.writeBigInt64LE(BigInt(v), i * 8)))
    header[name] = { dtype: e.dtype, shape: e.shape, data_offsets: [offset, offset + buf.length] }
    offset += buf.length
    chunks.push(buf)
  }
  header.__metadata__ = { format: 'pt' }
  let json = JSON.stringify(header)
  while (json.length % 8 !== 0) json += ' '
  const len = Buffer.alloc(8)
  len.writeBigUInt64LE(BigInt(json.length))
  fs.writeFileSync(file, Buffer.concat([len, Buffer.from(json), ...chunks]))
}

test('loads a PyTorch-written SequenceINN state dict with I64 permutations', () => {
  tidy(() => {
    const subnet = (cIn: number, cOut: number) => new nn.Sequential(new nn.Linear(cIn, 8), new nn.ReLU(), new nn.Linear(8, cOut))
    const inn = new SequenceINN(4)
    inn.append(Fm.PermuteRandom, { seed: 1 })
    inn.append(Fm.GLOWCouplingBlock, { subnetConstructor: subnet })
    const perm = [2, 0, 3, 1]
    const permInv = [1, 3, 0, 2]
    const entries: Record<string, Entry> = {
      'module_list.0.perm': { dtype: 'I64', shape: [4], values: perm },
      'module_list.0.perm_inv': { dtype: 'I64', shape: [4], values: permInv },
    }
    let seed = 10
    for (const [k, t] of Object.entries(inn.stateDict()))
      if (!k.startsWith('module_list.0.')) entries[k] = { dtype: 'F32', shape: [...t.shape], values: randomValues(t.size, seed++, -0.5, 0.5).map(Math.fround) }
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'innflow-')), 'freia.safetensors')
    writeTorchStyle(file, entries)
    const { tensors } = io.loadSafetensors(file)
    expect(tensors['module_list.0.perm'].dtype).toBe('float64')
    const result = inn.loadStateDict(tensors)
    expect(result).toEqual({ missingKeys: [], unexpectedKeys: [] })
    expectClose(inn.stateDict()['module_list.0.perm'], perm, 0)
    expectClose(inn.stateDict()['module_list.1.subnet1.0.weight'], entries['module_list.1.subnet1.0.weight'].values, 0)
    // the loaded permutation is the one applied
    const x = tensor([10, 20, 30, 40], [1, 4])
    const [y] = (inn.at(0) as InstanceType<typeof Fm.PermuteRandom>).forward([x])
    expectClose(y[0], [30, 10, 40, 20], 0)
  })
})
