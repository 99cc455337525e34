/**
 * A tiny PNG writer (no dependencies: zlib from Node compresses the image data) and an RGB canvas to draw
 * on. 8-bit RGB, no interlacing, filter type 0 on every row.
 */
import * as fs from 'node:fs'
import * as path from 'node:path'
import * as zlib from 'node:zlib'

/** An RGB colour, each channel 0..255. */
export type RGB = [number, number, number]

const crcTable = Array.from({ length: 256 }, (_, n) => {
  let c = n
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1
  return c >>> 0
})

/** CRC-32 (the polynomial of PNG and zlib) of `buf`. */
export function crc32(buf: Uint8Array): number {
  let c = 0xffffffff
  for (const b of buf) c = crcTable[(c ^ b) & 0xff] ^ (c >>> 8)
  return (c ^ 0xffffffff) >>> 0
}

function chunk(type: string, data: Buffer): Buffer {
  const len = Buffer.alloc(4)
  len.writeUInt32BE(data.length)
  const body = Buffer.concat([Buffer.from(type, 'ascii'), data])
  const crc = Buffer.alloc(4)
  crc.writeUInt32BE(crc32(body))
  return Buffer.concat([len, body, crc])
}

/** Encodes `rgb` (width·height·3 bytes, rows top to bottom) as the bytes of a PNG file. */
export function encodePng(width: number, height: number, rgb: Uint8Array): Buffer {
  if (rgb.length !== width * height * 3) throw new RangeError(`encodePng: expected ${width * height * 3} bytes, got ${rgb.length}`)
  const stride = width * 3
  const raw = Buffer.alloc((stride + 1) * height)
  for (let y = 0; y < height; y++) {
    raw[y * (stride + 1)] = 0 // filter: none
    raw.set(rgb.subarray(y * stride, (y + 1) * stride), y * (stride + 1) + 1)
  }
  const header = Buffer.alloc(13)
  header.writeUInt32BE(width, 0)
  header.writeUInt32BE(height, 4)
  header[8] = 8 // bit depth
  header[9] = 2 // colour type: RGB
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', header),
    chunk('IDAT', zlib.deflateSync(raw)),
    chunk('IEND', Buffer.alloc(0)),
  ])
}

/** An RGB canvas; (0, 0) is the top-left pixel. Drawing outside the canvas is clipped. */
export class Canvas {
  readonly pixels: Uint8Array
  constructor(readonly width: number, readonly height: number, background: RGB = [255, 255, 255]) {
    this.pixels = new Uint8Array(width * height * 3)
    for (let i = 0; i < width * height; i++) this.pixels.set(background, i * 3)
  }

  /** Sets one pixel (x, y integers). */
  set(x: number, y: number, rgb: RGB): void {
    if (x >= 0 && y >= 0 && x < this.width && y < this.height) this.pixels.set(rgb, (y * this.width + x) * 3)
  }

  /** Blends `rgb` over one pixel with opacity `alpha` (0..1). */
  blend(x: number, y: number, rgb: RGB, alpha: number): void {
    if (!(x >= 0 && y >= 0 && x < this.width && y < this.height)) return
    const o = (y * this.width + x) * 3
    for (let k = 0; k < 3; k++) this.pixels[o + k] = Math.round(this.pixels[o + k] * (1 - alpha) + rgb[k] * alpha)
  }

  /** A filled square of side 2·radius + 1 centred on the pixel nearest to (x, y), blended with `alpha`. */
  dot(x: number, y: number, rgb: RGB, radius = 1, alpha = 1): void {
    const cx = Math.round(x)
    const cy = Math.round(y)
    for (let dy = -radius; dy <= radius; dy++)
      for (let dx = -radius; dx <= radius; dx++)
        if (alpha >= 1) this.set(cx + dx, cy + dy, rgb)
        else this.blend(cx + dx, cy + dy, rgb, alpha)
  }

  /** A filled rectangle [x, x + w) × [y, y + h). */
  fillRect(x: number, y: number, w: number, h: number, rgb: RGB): void {
    for (let yy = Math.max(0, y); yy < Math.min(this.height, y + h); yy++)
      for (let xx = Math.max(0, x); xx < Math.min(this.width, x + w); xx++) this.pixels.set(rgb, (yy * this.width + xx) * 3)
  }

  /** A one-pixel horizontal or vertical line. */
  hline(x0: number, x1: number, y: number, rgb: RGB): void {
    this.fillRect(x0, y, x1 - x0 + 1, 1, rgb)
  }
  vline(x: number, y0: number, y1: number, rgb: RGB): void {
    this.fillRect(x, y0, 1, y1 - y0 + 1, rgb)
  }

  /** The PNG bytes of the canvas. */
  encode(): Buffer {
    return encodePng(this.width, this.height, this.pixels)
  }

  /** Writes the canvas as a PNG file (creating the folder if needed). */
  save(file: string): void {
    fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true })
    fs.writeFileSync(file, this.encode())
  }
}
