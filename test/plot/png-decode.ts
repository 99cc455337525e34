/** A minimal PNG reader for the tests: 8-bit RGB, filter type 0 only (what lib/plot writes), CRCs checked. */
import * as fs from 'node:fs'
import * as zlib from 'node:zlib'
import { crc32 } from '../../lib/plot/png'

export interface DecodedPng {
  width: number
  height: number
  /** RGB bytes, row by row. */
  pixels: Uint8Array
  pixel(x: number, y: number): [number, number, number]
  /** The number of distinct colours. */
  colors(): number
}

export function decodePng(file: string): DecodedPng {
  const buf = fs.readFileSync(file)
  if (!buf.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]))) throw new Error('not a PNG signature')
  let at = 8
  let width = 0
  let height = 0
  const idat: Buffer[] = []
  let sawEnd = false
  while (at < buf.length) {
    const len = buf.readUInt32BE(at)
    const type = buf.toString('ascii', at + 4, at + 8)
    const body = buf.subarray(at + 4, at + 8 + len)
    if (crc32(body) !== buf.readUInt32BE(at + 8 + len)) throw new Error(`bad CRC in chunk ${type}`)
    const data = buf.subarray(at + 8, at + 8 + len)
    if (type === 'IHDR') {
      width = data.readUInt32BE(0)
      height = data.readUInt32BE(4)
      if (data[8] !== 8 || data[9] !== 2) throw new Error('expected 8-bit RGB')
    } else if (type === 'IDAT') idat.push(data)
    else if (type === 'IEND') sawEnd = true
    at += 12 + len
  }
  if (!sawEnd) throw new Error('no IEND chunk')
  const raw = zlib.inflateSync(Buffer.concat(idat))
  const stride = width * 3
  if (raw.length !== (stride + 1) * height) throw new Error(`image data has ${raw.length} bytes, expected ${(stride + 1) * height}`)
  const pixels = new Uint8Array(stride * height)
  for (let y = 0; y < height; y++) {
    if (raw[y * (stride + 1)] !== 0) throw new Error(`row ${y} uses filter ${raw[y * (stride + 1)]}`)
    pixels.set(raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1)), y * stride)
  }
  return {
    width,
    height,
    pixels,
    pixel: (x, y) => [pixels[(y * width + x) * 3], pixels[(y * width + x) * 3 + 1], pixels[(y * width + x) * 3 + 2]],
    colors: () => {
      const seen = new Set<number>()
      for (let i = 0; i < pixels.length; i += 3) seen.add((pixels[i] << 16) | (pixels[i + 1] << 8) | pixels[i + 2])
      return seen.size
    },
  }
}
