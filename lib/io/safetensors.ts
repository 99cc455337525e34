/**
 * The safetensors format (https://github.com/huggingface/safetensors): an 8-byte little-endian header
 * length N, N bytes of JSON (`{ name: { dtype, shape, data_offsets: [begin, end] }, __metadata__?: {...} }`,
 * padded with spaces so that the data starts at a multiple of 8), then the raw little-endian data, the
 * tensors tiling it without gaps or overlaps. innflow writes F32 and F64, and reads F32, F64, F16 and BF16
 * (as float32) and I32 and I64 (as float64: PyTorch stores permutation indices that way).
 * Every malformed file is refused with InnflowError ERR_CHECKPOINT and a message saying what is wrong.
 */
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { core } from '../binding'
import { DType } from '../dtype'
import { argumentError, describe, InnflowError } from '../errors'
import { fromHandle, Tensor } from '../tensor'

/** What {@link loadSafetensors} returns. */
export interface Safetensors {
  tensors: Record<string, Tensor>
  metadata: Record<string, string>
}

const MAX_HEADER = 100_000_000 // the reference implementation's limit
const LITTLE_ENDIAN = os.endianness() === 'LE'

interface DtypeInfo {
  bytes: number
  /** innflow dtype of the loaded tensor, or null when innflow cannot read it */
  to: DType | null
}
// Every dtype of the format, so that a file with a valid but unsupported dtype gets a precise message.
const DTYPES: Record<string, DtypeInfo> = {
  F64: { bytes: 8, to: 'float64' },
  F32: { bytes: 4, to: 'float32' },
  F16: { bytes: 2, to: 'float32' },
  BF16: { bytes: 2, to: 'float32' },
  I64: { bytes: 8, to: 'float64' },
  I32: { bytes: 4, to: 'float64' },
  U64: { bytes: 8, to: null },
  U32: { bytes: 4, to: null },
  I16: { bytes: 2, to: null },
  U16: { bytes: 2, to: null },
  I8: { bytes: 1, to: null },
  U8: { bytes: 1, to: null },
  BOOL: { bytes: 1, to: null },
  F8_E4M3: { bytes: 1, to: null },
  F8_E5M2: { bytes: 1, to: null },
}

function bad(file: string, msg: string): InnflowError {
  return new InnflowError('ERR_CHECKPOINT', `loadSafetensors: '${file}' is not a valid safetensors file: ${msg}`)
}

interface Entry {
  name: string
  dtype: string
  shape: number[]
  begin: number
  end: number
}

/** The JSON header of a safetensors file whose first bytes are in `buf`, and its length n (the data starts at 8 + n). */
function headerJson(file: string, buf: Buffer, fileLength: number): { header: Record<string, unknown>; n: number } {
  if (buf.length < 8) throw bad(file, `it is ${buf.length} bytes long, too short to hold the 8-byte header length (truncated?)`)
  const n64 = buf.readBigUInt64LE(0)
  if (n64 > BigInt(MAX_HEADER)) throw bad(file, `the header length ${n64} exceeds the limit of ${MAX_HEADER} bytes (corrupt header length?)`)
  const n = Number(n64)
  if (n < 2) throw bad(file, `the header length is ${n} bytes, too short for a JSON object`)
  if (8 + n > Math.min(buf.length, fileLength)) throw bad(file, `the header length says ${n} bytes but only ${fileLength - 8} follow it (truncated?)`)
  let text: string
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(buf.subarray(8, 8 + n))
  } catch {
    throw bad(file, 'the header is not valid UTF-8')
  }
  if (!text.startsWith('{')) throw bad(file, `the header does not start with '{' (got ${JSON.stringify(text.slice(0, 16))})`)
  let header: unknown
  try {
    header = JSON.parse(text)
  } catch (e) {
    throw bad(file, `the header is not valid JSON (${e instanceof Error ? e.message : String(e)})`)
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header)) throw bad(file, 'the header is not a JSON object')
  return { header: header as Record<string, unknown>, n }
}

/** The `__metadata__` strings of a header. */
function headerMetadata(file: string, info: unknown): Record<string, string> {
  if (info === undefined) return {}
  if (info === null || typeof info !== 'object' || Array.isArray(info)) throw bad(file, '__metadata__ must be an object of strings')
  const metadata: Record<string, string> = {}
  for (const [k, v] of Object.entries(info as Record<string, unknown>)) {
    if (typeof v !== 'string') throw bad(file, `__metadata__['${k}'] must be a string, got ${describe(v)}`)
    metadata[k] = v
  }
  return metadata
}

/** Parses and validates the header of a safetensors file held in `buf`. */
function parseHeader(file: string, buf: Buffer): { entries: Entry[]; metadata: Record<string, string>; dataStart: number } {
  const { header, n } = headerJson(file, buf, buf.length)
  const dataLength = buf.length - 8 - n
  const metadata: Record<string, string> = {}
  const entries: Entry[] = []
  for (const [name, info] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      Object.assign(metadata, headerMetadata(file, info))
      continue
    }
    if (info === null || typeof info !== 'object' || Array.isArray(info)) throw bad(file, `tensor '${name}' must be described by an object`)
    const { dtype, shape, data_offsets: offsets } = info as { dtype?: unknown; shape?: unknown; data_offsets?: unknown }
    if (typeof dtype !== 'string') throw bad(file, `tensor '${name}' has no dtype string`)
    const dt = DTYPES[dtype]
    if (!dt) throw bad(file, `tensor '${name}' has unknown dtype '${dtype}'`)
    if (!dt.to)
      throw bad(file, `tensor '${name}' has dtype ${dtype}, which innflow cannot read (supported: ${Object.keys(DTYPES).filter((k) => DTYPES[k].to).join(', ')})`)
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0))
      throw bad(file, `tensor '${name}' has an invalid shape ${JSON.stringify(shape)}`)
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((d) => Number.isSafeInteger(d) && d >= 0))
      throw bad(file, `tensor '${name}' has invalid data_offsets ${JSON.stringify(offsets)} (expected [begin, end])`)
    const [begin, end] = offsets as number[]
    if (end < begin) throw bad(file, `tensor '${name}' has data_offsets [${begin}, ${end}] that end before they begin`)
    if (end > dataLength)
      throw bad(file, `tensor '${name}' has data_offsets [${begin}, ${end}] beyond the ${dataLength} bytes of data (truncated?)`)
    const numel = (shape as number[]).reduce((a, b) => a * b, 1)
    if (numel * dt.bytes !== end - begin)
      throw bad(file, `tensor '${name}' of shape [${shape.join(', ')}] and dtype ${dtype} needs ${numel * dt.bytes} bytes but its data_offsets [${begin}, ${end}] span ${end - begin}`)
    entries.push({ name, dtype, shape: shape as number[], begin, end })
  }

  // The tensors must tile the data section exactly: in offset order, each begins where the previous ended.
  const sorted = [...entries].sort((a, b) => a.begin - b.begin || a.end - b.end)
  let at = 0
  let prev: Entry | null = null
  for (const e of sorted) {
    if (e.begin < at) throw bad(file, `the data of tensors '${prev?.name}' and '${e.name}' overlap ([${prev?.begin}, ${prev?.end}] and [${e.begin}, ${e.end}])`)
    if (e.begin > at) throw bad(file, `there is a gap in the data before tensor '${e.name}' (bytes ${at} to ${e.begin} belong to no tensor)`)
    at = e.end
    prev = e
  }
  if (at !== dataLength) throw bad(file, `the tensors cover ${at} bytes of data but the file holds ${dataLength} after the header`)
  return { entries, metadata, dataStart: 8 + n }
}

/** Decodes little-endian bytes of a dtype into the typed array innflow builds the tensor from. */
function decode(dtype: string, bytes: Buffer, numel: number): Float32Array | Float64Array {
  // copy into a fresh, aligned buffer: the data of a tensor may start at any byte of the file
  const raw = new ArrayBuffer(bytes.length)
  new Uint8Array(raw).set(bytes)
  const view = new DataView(raw)
  switch (dtype) {
    case 'F64':
      if (LITTLE_ENDIAN) return new Float64Array(raw)
      return Float64Array.from({ length: numel }, (_, i) => view.getFloat64(8 * i, true))
    case 'F32':
      if (LITTLE_ENDIAN) return new Float32Array(raw)
      return Float32Array.from({ length: numel }, (_, i) => view.getFloat32(4 * i, true))
    case 'I64':
      return Float64Array.from({ length: numel }, (_, i) => Number(view.getBigInt64(8 * i, true)))
    case 'I32':
      return Float64Array.from({ length: numel }, (_, i) => view.getInt32(4 * i, true))
    case 'F16':
      return Float32Array.from({ length: numel }, (_, i) => halfToFloat(view.getUint16(2 * i, true)))
    case 'BF16': {
      // bfloat16 is the upper half of a float32
      const out = new Float32Array(numel)
      const outView = new DataView(out.buffer)
      for (let i = 0; i < numel; i++) outView.setUint32(4 * i, view.getUint16(2 * i, true) << 16, LITTLE_ENDIAN)
      return out
    }
    default:
      throw new InnflowError('ERR_CHECKPOINT', `loadSafetensors: cannot decode dtype ${dtype}`)
  }
}

function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1
  const exp = (h >> 10) & 0x1f
  const frac = h & 0x3ff
  if (exp === 0) return sign * frac * 2 ** -24 // zero and subnormals
  if (exp === 0x1f) return frac ? NaN : sign * Infinity
  return sign * (1 + frac / 1024) * 2 ** (exp - 15)
}

/** @internal Parses safetensors bytes; `file` names the source in error messages. */
export function parseSafetensors(buf: Buffer, file: string): Safetensors {
  const { entries, metadata, dataStart } = parseHeader(file, buf)
  const tensors: Record<string, Tensor> = {}
  const made: Tensor[] = []
  try {
    for (const e of entries) {
      const numel = e.shape.reduce((a, b) => a * b, 1)
      const values = decode(e.dtype, buf.subarray(dataStart + e.begin, dataStart + e.end), numel)
      const t = fromHandle(core.fromArray(values, e.shape, (DTYPES[e.dtype].to as DType)))
      made.push(t)
      tensors[e.name] = t
    }
  } catch (err) {
    for (const t of made) t.dispose()
    throw err
  }
  return { tensors, metadata }
}

/**
 * Reads only the `__metadata__` of a safetensors file (the header, not the tensor data): cheap on large
 * files, and a way to inspect a checkpoint before loading it. Malformed headers throw ERR_CHECKPOINT.
 */
export function readSafetensorsMetadata(file: string): Record<string, string> {
  if (typeof file !== 'string' || file === '') throw argumentError('readSafetensorsMetadata', 'path', 'a file path', file)
  let fd: number
  try {
    fd = fs.openSync(file, 'r')
  } catch (e) {
    throw new InnflowError('ERR_CHECKPOINT', `readSafetensorsMetadata: cannot read '${file}': ${e instanceof Error ? e.message : String(e)}`)
  }
  try {
    const size = fs.fstatSync(fd).size
    const head = Buffer.alloc(Math.min(size, 8))
    fs.readSync(fd, head, 0, head.length, 0)
    const n = head.length === 8 ? Number(head.readBigUInt64LE(0)) : 0
    const buf = Buffer.alloc(Math.min(size, 8 + Math.min(n, MAX_HEADER)))
    fs.readSync(fd, buf, 0, buf.length, 0)
    return headerMetadata(file, headerJson(file, buf, size).header.__metadata__)
  } finally {
    fs.closeSync(fd)
  }
}

/**
 * Reads a safetensors file: `{ tensors, metadata }`. F32 and F64 load as float32 and float64, F16 and BF16
 * as float32, I32 and I64 as float64. The caller owns the tensors.
 * @example const { tensors } = io.loadSafetensors('model.safetensors')
 */
export function loadSafetensors(file: string): Safetensors {
  if (typeof file !== 'string' || file === '') throw argumentError('loadSafetensors', 'path', 'a file path', file)
  let buf: Buffer
  try {
    buf = fs.readFileSync(file)
  } catch (e) {
    throw new InnflowError('ERR_CHECKPOINT', `loadSafetensors: cannot read '${file}': ${e instanceof Error ? e.message : String(e)}`)
  }
  return parseSafetensors(buf, file)
}

function littleEndianBytes(t: Tensor): Buffer {
  const a = t.toArray()
  if (LITTLE_ENDIAN) return Buffer.from(a.buffer, a.byteOffset, a.byteLength)
  const out = Buffer.alloc(a.byteLength)
  a.forEach((v, i) => (a instanceof Float64Array ? out.writeDoubleLE(v, 8 * i) : out.writeFloatLE(v, 4 * i)))
  return out
}

/** @internal Serialises tensors and metadata to safetensors bytes (header, then data). */
export function serializeSafetensors(fn: string, tensors: unknown, metadata?: unknown): Buffer[] {
  if (tensors === null || typeof tensors !== 'object' || Array.isArray(tensors)) throw argumentError(fn, 'tensors', 'an object of name -> Tensor', tensors)
  const items: [string, Tensor][] = []
  for (const [name, t] of Object.entries(tensors as Record<string, unknown>)) {
    if (name === '' || name === '__metadata__') throw new InnflowError('ERR_ARGUMENT', `${fn}: '${name}' cannot be a tensor name`)
    if (!(t instanceof Tensor) && !(t as { __isInnflowTensor?: boolean } | null)?.__isInnflowTensor)
      throw argumentError(fn, `tensors['${name}']`, 'a Tensor', t)
    if ((t as Tensor).isDisposed) throw new InnflowError('ERR_DISPOSED', `${fn}: tensor '${name}' was disposed`)
    items.push([name, t as Tensor])
  }
  if (metadata !== undefined) {
    if (metadata === null || typeof metadata !== 'object' || Array.isArray(metadata)) throw argumentError(fn, 'metadata', 'an object of strings', metadata)
    for (const [k, v] of Object.entries(metadata as Record<string, unknown>))
      if (typeof v !== 'string') throw argumentError(fn, `metadata['${k}']`, 'a string', v)
  }
  // As the reference writer does: larger elements first (their offsets stay aligned), then by name.
  const size = (t: Tensor) => (t.dtype === 'float64' ? 8 : 4)
  items.sort(([na, a], [nb, b]) => size(b) - size(a) || (na < nb ? -1 : na > nb ? 1 : 0))
  const header: Record<string, unknown> = {}
  if (metadata !== undefined) header.__metadata__ = metadata
  const data: Buffer[] = []
  let offset = 0
  for (const [name, t] of items) {
    const bytes = littleEndianBytes(t)
    header[name] = { dtype: t.dtype === 'float64' ? 'F64' : 'F32', shape: [...t.shape], data_offsets: [offset, offset + bytes.length] }
    offset += bytes.length
    data.push(bytes)
  }
  let json = Buffer.from(JSON.stringify(header), 'utf8')
  const pad = (8 - (json.length % 8)) % 8
  if (pad) json = Buffer.concat([json, Buffer.alloc(pad, 0x20)])
  const len = Buffer.alloc(8)
  len.writeBigUInt64LE(BigInt(json.length))
  return [len, json, ...data]
}

/** @internal Writes buffers to a temporary file beside `file` and renames it over `file` (no half-written files). */
export function writeAtomically(fn: string, file: string, parts: Buffer[]): void {
  if (typeof file !== 'string' || file === '') throw argumentError(fn, 'path', 'a file path', file)
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.${Date.now()}.tmp`)
  try {
    const fd = fs.openSync(tmp, 'w')
    try {
      for (const p of parts) fs.writeSync(fd, p)
    } finally {
      fs.closeSync(fd)
    }
    fs.renameSync(tmp, file)
  } catch (e) {
    try {
      fs.unlinkSync(tmp)
    } catch {
      // the temporary file was never created
    }
    throw new InnflowError('ERR_CHECKPOINT', `${fn}: cannot write '${file}': ${e instanceof Error ? e.message : String(e)}`)
  }
}

/**
 * Writes tensors (float32 as F32, float64 as F64) and optional string metadata to a safetensors file that
 * PyTorch's `safetensors.torch.load_file` reads. The file is replaced atomically.
 * @example io.saveSafetensors('model.safetensors', model.stateDict(), { epoch: '3' })
 */
export function saveSafetensors(file: string, tensors: Record<string, Tensor>, metadata?: Record<string, string>): void {
  if (typeof file !== 'string' || file === '') throw argumentError('saveSafetensors', 'path', 'a file path', file)
  writeAtomically('saveSafetensors', file, serializeSafetensors('saveSafetensors', tensors, metadata))
}
