import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { io, tensor, Tensor, tidy } from '../../lib'
import { expectCode, randomValues } from '../helpers'

let dir: string
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'innflow-io-'))
})
afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true })
})
const file = (name: string) => path.join(dir, name)

/** An independent reader of the header, for checking what was written. */
function readHeader(p: string): { n: number; header: Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }> & { __metadata__?: Record<string, string> }; bytes: Buffer } {
  const bytes = fs.readFileSync(p)
  const n = Number(bytes.readBigUInt64LE(0))
  return { n, header: JSON.parse(bytes.subarray(8, 8 + n).toString('utf8')), bytes }
}

/** Builds a file from a header (object or raw text) and data bytes; `length` overrides the header length. */
function craft(name: string, header: object | string | Buffer, data: Buffer | number[] = [], length?: bigint): string {
  const json = Buffer.isBuffer(header) ? header : Buffer.from(typeof header === 'string' ? header : JSON.stringify(header), 'utf8')
  const len = Buffer.alloc(8)
  len.writeBigUInt64LE(length ?? BigInt(json.length))
  const p = file(name)
  fs.writeFileSync(p, Buffer.concat([len, json, Buffer.isBuffer(data) ? data : Buffer.from(data)]))
  return p
}
const f64 = (values: number[]) => Buffer.from(new Float64Array(values).buffer)

describe('safetensors round trip', () => {
  test('float32, float64, metadata, empty and 0-d tensors come back exactly', () => {
    tidy(() => {
      const tensors: Record<string, Tensor> = {
        'layer.0.weight': tensor(randomValues(12, 1), [3, 4], { dtype: 'float32' }),
        'layer.0.bias': tensor(randomValues(3, 2), [3], { dtype: 'float64' }),
        scalar: tensor([Math.PI], [], { dtype: 'float64' }),
        empty: tensor([], [0], { dtype: 'float32' }),
        empty2d: tensor([], [2, 0], { dtype: 'float64' }),
        'ünïcode.π': tensor([1, -2, 3.5], [3], { dtype: 'float32' }),
        odd: tensor(randomValues(5, 3), [5], { dtype: 'float32' }), // 20 bytes: the float64s must still be aligned
      }
      const metadata = { format: 'pt', note: 'hello "world"', empty: '' }
      const p = file('round.safetensors')
      io.saveSafetensors(p, tensors, metadata)
      const { tensors: back, metadata: meta } = io.loadSafetensors(p)
      expect(meta).toEqual(metadata)
      expect(Object.keys(back).sort()).toEqual(Object.keys(tensors).sort())
      for (const [k, t] of Object.entries(tensors)) {
        expect(back[k].dtype).toBe(t.dtype)
        expect(back[k].shape).toEqual(t.shape)
        expect(Array.from(back[k].toArray())).toEqual(Array.from(t.toArray()))
      }
      // the layout as the format requires it
      const { n, header, bytes } = readHeader(p)
      expect((8 + n) % 8).toBe(0)
      expect(header.__metadata__).toEqual(metadata)
      expect(header['layer.0.weight']).toEqual({ dtype: 'F32', shape: [3, 4], data_offsets: expect.any(Array) })
      expect(header.scalar.dtype).toBe('F64')
      expect(header.scalar.shape).toEqual([])
      const spans = Object.entries(header).filter(([k]) => k !== '__metadata__').map(([, v]) => (v as { data_offsets: [number, number]; dtype: string }))
      spans.sort((a, b) => a.data_offsets[0] - b.data_offsets[0])
      let at = 0
      for (const s of spans) {
        expect(s.data_offsets[0]).toBe(at)
        if (s.dtype === 'F64') expect(s.data_offsets[0] % 8).toBe(0)
        at = s.data_offsets[1]
      }
      expect(at).toBe(bytes.length - 8 - n)
      // the bytes are little-endian IEEE values
      const [b0] = header.scalar.data_offsets
      expect(bytes.readDoubleLE(8 + n + b0)).toBe(Math.PI)
    })
  })

  test('no metadata gives {}; overwriting a file leaves no temporary files', () => {
    tidy(() => {
      const p = file('plain.safetensors')
      io.saveSafetensors(p, { a: tensor([1, 2], [2]) })
      io.saveSafetensors(p, { b: tensor([3], [1]) })
      const { tensors, metadata } = io.loadSafetensors(p)
      expect(metadata).toEqual({})
      expect(Object.keys(tensors)).toEqual(['b'])
      expect(readHeader(p).header.__metadata__).toBeUndefined()
      expect(fs.readdirSync(dir).filter((f) => f.includes('.tmp'))).toEqual([])
    })
  })

  test('reads F16, BF16 (as float32) and I32, I64 (as float64)', () => {
    tidy(() => {
      const h16 = [0x3c00, 0xc000, 0x3800, 0x7bff, 0x0001, 0x7c00, 0x8000]
      const bf16 = [0x3f80, 0xc020, 0x4049]
      const i32 = [-3, 7, 2147483647]
      const i64 = [5n, -1n, 1n << 40n]
      const data = Buffer.alloc(8 * 3 + 4 * 3 + 2 * 7 + 2 * 3)
      let o = 0
      for (const v of i64) (data.writeBigInt64LE(v, o), (o += 8))
      for (const v of i32) (data.writeInt32LE(v, o), (o += 4))
      for (const v of h16) (data.writeUInt16LE(v, o), (o += 2))
      for (const v of bf16) (data.writeUInt16LE(v, o), (o += 2))
      const p = craft('dtypes.safetensors', {
        i64: { dtype: 'I64', shape: [3], data_offsets: [0, 24] },
        i32: { dtype: 'I32', shape: [3], data_offsets: [24, 36] },
        h: { dtype: 'F16', shape: [7], data_offsets: [36, 50] },
        bf: { dtype: 'BF16', shape: [3, 1], data_offsets: [50, 56] },
      }, data)
      const { tensors } = io.loadSafetensors(p)
      expect(tensors.i64.dtype).toBe('float64')
      expect(Array.from(tensors.i64.toArray())).toEqual([5, -1, 2 ** 40])
      expect(tensors.i32.dtype).toBe('float64')
      expect(Array.from(tensors.i32.toArray())).toEqual(i32)
      expect(tensors.h.dtype).toBe('float32')
      expect(Array.from(tensors.h.toArray())).toEqual([1, -2, 0.5, 65504, 2 ** -24, Infinity, -0])
      expect(tensors.bf.dtype).toBe('float32')
      expect(tensors.bf.shape).toEqual([3, 1])
      expect(Array.from(tensors.bf.toArray())).toEqual([1, -2.5, 3.140625])
    })
  })

  test('bad arguments to saveSafetensors', () => {
    tidy(() => {
      const t = tensor([1], [1])
      expectCode(() => io.saveSafetensors(file('x'), { __metadata__: t }), 'ERR_ARGUMENT')
      expectCode(() => io.saveSafetensors(file('x'), { a: 3 as unknown as Tensor }), 'ERR_ARGUMENT')
      expectCode(() => io.saveSafetensors(file('x'), null as unknown as Record<string, Tensor>), 'ERR_ARGUMENT')
      expectCode(() => io.saveSafetensors(file('x'), { a: t }, { n: 3 as unknown as string }), 'ERR_ARGUMENT')
      expectCode(() => io.saveSafetensors('', { a: t }), 'ERR_ARGUMENT')
      expectCode(() => io.saveSafetensors(path.join(dir, 'missing-dir', 'x'), { a: t }), 'ERR_CHECKPOINT')
      const d = tensor([1], [1])
      d.dispose()
      expectCode(() => io.saveSafetensors(file('x'), { d }), 'ERR_DISPOSED')
    })
  })
})

describe('malformed safetensors files are refused with ERR_CHECKPOINT and a clear message', () => {
  const ok = { a: { dtype: 'F64', shape: [2], data_offsets: [0, 16] }, b: { dtype: 'F64', shape: [1], data_offsets: [16, 24] } }
  const data = f64([1, 2, 3])
  const cases: [string, () => string, RegExp][] = [
    ['missing file', () => file('does-not-exist.safetensors'), /cannot read/],
    ['shorter than the length field', () => { const p = file('short'); fs.writeFileSync(p, Buffer.from([1, 2, 3])); return p }, /too short/],
    ['header length beyond the file (truncated header)', () => craft('trunc-header', ok, data, 5000n), /only \d+ follow/],
    ['absurd header length', () => craft('huge', ok, data, 1n << 60n), /exceeds the limit/],
    ['zero header length', () => craft('zero', '', data, 0n), /too short for a JSON object/],
    ['invalid JSON', () => craft('json', '{"a": {"dtype": "F64",', data), /not valid JSON/],
    ['a JSON array', () => craft('array', '[1, 2]', data), /does not start with/],
    ['invalid UTF-8', () => craft('utf8', Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x3a, 0x31, 0x7d]), []), /not valid UTF-8/],
    ['a JSON string', () => craft('string', '"abc"', []), /does not start with/],
    ['unknown dtype', () => craft('dtype', { a: { dtype: 'F12', shape: [2], data_offsets: [0, 16] } }, f64([1, 2])), /unknown dtype 'F12'/],
    ['unsupported dtype', () => craft('u8', { a: { dtype: 'U8', shape: [2], data_offsets: [0, 2] } }, [1, 2]), /U8, which innflow cannot read/],
    ['missing dtype', () => craft('nodtype', { a: { shape: [2], data_offsets: [0, 16] } }, f64([1, 2])), /no dtype/],
    ['negative dimension', () => craft('shape', { a: { dtype: 'F64', shape: [-2], data_offsets: [0, 16] } }, f64([1, 2])), /invalid shape/],
    ['bad data_offsets', () => craft('offs', { a: { dtype: 'F64', shape: [2], data_offsets: [0, 8, 16] } }, f64([1, 2])), /invalid data_offsets/],
    ['offsets ending before they begin', () => craft('rev', { a: { dtype: 'F64', shape: [0], data_offsets: [16, 8] } }, f64([1, 2])), /end before they begin/],
    ['offsets out of range (truncated data)', () => craft('range', ok, f64([1, 2])), /beyond the 16 bytes of data/],
    ['overlapping tensors', () => craft('overlap', { a: { dtype: 'F64', shape: [2], data_offsets: [0, 16] }, b: { dtype: 'F64', shape: [2], data_offsets: [8, 24] } }, data), /overlap/],
    ['a gap between tensors', () => craft('gap', { a: { dtype: 'F64', shape: [1], data_offsets: [0, 8] }, b: { dtype: 'F64', shape: [1], data_offsets: [16, 24] } }, data), /gap/],
    ['trailing bytes', () => craft('trailing', { a: { dtype: 'F64', shape: [2], data_offsets: [0, 16] } }, data), /cover 16 bytes of data but the file holds 24/],
    ['shape not matching the byte length', () => craft('mismatch', { a: { dtype: 'F64', shape: [2, 2], data_offsets: [0, 24] } }, data), /needs 32 bytes but its data_offsets \[0, 24\] span 24/],
    ['F32 shape not matching', () => craft('mismatch32', { a: { dtype: 'F32', shape: [5], data_offsets: [0, 24] } }, data), /needs 20 bytes/],
    ['non-string metadata', () => craft('meta', { __metadata__: { epoch: 3 }, ...ok }, data), /__metadata__\['epoch'\] must be a string/],
    ['tensor entry not an object', () => craft('entry', { a: [1, 2] }, []), /must be described by an object/],
  ]
  test.each(cases)('%s', (_name, make, message) => {
    const p = make()
    expectCode(() => io.loadSafetensors(p), 'ERR_CHECKPOINT')
    try {
      io.loadSafetensors(p)
    } catch (e) {
      expect((e as Error).message).toMatch(message)
    }
  })

  test('a valid file cut anywhere is refused (never a crash or a partial load)', () => {
    tidy(() => {
      const p = file('cut-source.safetensors')
      io.saveSafetensors(p, { w: tensor(randomValues(30, 1), [5, 6], { dtype: 'float64' }), b: tensor([1, 2, 3], [3], { dtype: 'float32' }) }, { k: 'v' })
      const bytes = fs.readFileSync(p)
      const q = file('cut.safetensors')
      for (let len = 0; len < bytes.length; len += 7) {
        fs.writeFileSync(q, bytes.subarray(0, len))
        expectCode(() => io.loadSafetensors(q), 'ERR_CHECKPOINT')
      }
    })
  })

  test('an empty header ({}, padded with spaces) is a valid file with no tensors', () => {
    const p = craft('empty-header', '{}      ', [])
    expect(io.loadSafetensors(p)).toEqual({ tensors: {}, metadata: {} })
  })

  test('path must be a string', () => {
    expectCode(() => io.loadSafetensors(3 as unknown as string), 'ERR_ARGUMENT')
  })
})

describe('PyTorch-written fixtures (../shared/parity)', () => {
  const parity = path.resolve(__dirname, '../../../shared/parity')
  const files = fs.existsSync(parity) ? fs.readdirSync(parity).filter((f) => f.endsWith('.safetensors')).sort() : []

  test('the fixtures are present', () => {
    expect(files.length).toBeGreaterThanOrEqual(25)
  })

  test('every fixture loads: names, shapes, dtypes and values agree with an independent reader', () => {
    for (const f of files) {
      tidy(() => {
        const p = path.join(parity, f)
        const { header, n, bytes } = readHeader(p)
        const { tensors, metadata } = io.loadSafetensors(p)
        expect(metadata).toEqual(header.__metadata__)
        expect(JSON.parse(metadata.case).type).toMatch(/^(sequence|graph)$/)
        const names = Object.keys(header).filter((k) => k !== '__metadata__')
        expect(Object.keys(tensors).sort()).toEqual(names.sort())
        for (const k of names) {
          const info = header[k]
          expect(info.dtype).toBe('F64')
          expect(tensors[k].dtype).toBe('float64')
          expect(tensors[k].shape).toEqual(info.shape)
          const values = tensors[k].toArray()
          const [b] = info.data_offsets
          if (values.length > 0) {
            expect(values[0]).toBe(bytes.readDoubleLE(8 + n + b))
            expect(values[values.length - 1]).toBe(bytes.readDoubleLE(8 + n + b + 8 * (values.length - 1)))
          }
        }
      })
    }
  })

  test('rnvp_fc: the subnet parameters have PyTorch names and shapes', () => {
    tidy(() => {
      const { tensors, metadata } = io.loadSafetensors(path.join(parity, 'rnvp_fc.safetensors'))
      const c = JSON.parse(metadata.case)
      expect(c.blocks[0].module).toBe('RNVPCouplingBlock')
      const width = c.blocks[0].subnet.width as number
      for (const s of ['subnet_s1', 'subnet_t1', 'subnet_s2', 'subnet_t2']) {
        expect(tensors[`state.module_list.0.${s}.0.weight`].shape).toEqual([width, 3])
        expect(tensors[`state.module_list.0.${s}.0.bias`].shape).toEqual([width])
        expect(tensors[`state.module_list.0.${s}.2.weight`].shape).toEqual([3, width])
        expect(tensors[`state.module_list.0.${s}.2.bias`].shape).toEqual([3])
      }
      expect(tensors['x.0'].shape).toEqual([Number(metadata.batch), 6])
      expect(tensors.loss.shape).toEqual([1])
    })
  })

  test('permute_random_fc: the permutation buffers (integers stored as F64) are inverse permutations', () => {
    tidy(() => {
      const { tensors } = io.loadSafetensors(path.join(parity, 'permute_random_fc.safetensors'))
      const perm = Array.from(tensors['state.module_list.0.perm'].toArray())
      const inv = Array.from(tensors['state.module_list.0.perm_inv'].toArray())
      expect([...perm].sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5, 6, 7])
      perm.forEach((v, i) => expect(inv[v]).toBe(i))
    })
  })
})
