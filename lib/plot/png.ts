/**
 * A tiny PNG writer for scatter plots (no dependencies: zlib from Node for the compressed image data).
 */
import * as fs from 'node:fs'
import * as zlib from 'node:zlib'

const crcTable = Array.from({ length: 256 }, (_, n) => {
  let c = n
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1
  return c >>> 0
})
function crc32(buf: Buffer): number {
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

/** An RGB canvas. */
export class Canvas {
  readonly pixels: Uint8Array
  constructor(readonly width: number, readonly height: number, background: [number, number, number] = [255, 255, 255]) {
    this.pixels = new Uint8Array(width * height * 3)
    for (let i = 0; i < width * height; i++) this.pixels.set(background, i * 3)
  }
  dot(x: number, y: number, rgb: [number, number, number], radius = 1): void {
    for (let dy = -radius; dy <= radius; dy++)
      for (let dx = -radius; dx <= radius; dx++) {
        const px = Math.round(x) + dx
        const py = Math.round(y) + dy
        if (px >= 0 && py >= 0 && px < this.width && py < this.height) this.pixels.set(rgb, (py * this.width + px) * 3)
      }
  }
  save(path: string): void {
    const raw = Buffer.alloc((this.width * 3 + 1) * this.height)
    for (let y = 0; y < this.height; y++) {
      raw[y * (this.width * 3 + 1)] = 0
      Buffer.from(this.pixels.buffer, y * this.width * 3, this.width * 3).copy(raw, y * (this.width * 3 + 1) + 1)
    }
    const header = Buffer.alloc(13)
    header.writeUInt32BE(this.width, 0)
    header.writeUInt32BE(this.height, 4)
    header[8] = 8 // bit depth
    header[9] = 2 // RGB
    const png = Buffer.concat([
      Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
      chunk('IHDR', header),
      chunk('IDAT', zlib.deflateSync(raw)),
      chunk('IEND', Buffer.alloc(0)),
    ])
    fs.writeFileSync(path, png)
  }
}

/** Side-by-side scatter plots of 2-D point sets, each panel spanning [-lim, lim]². */
export function scatterPanels(path: string, panels: { points: ArrayLike<number>; color: [number, number, number] }[], lim = 3, size = 360): void {
  const canvas = new Canvas(size * panels.length, size)
  panels.forEach((panel, k) => {
    for (let i = 0; i + 1 < panel.points.length; i += 2) {
      const x = ((panel.points[i] + lim) / (2 * lim)) * size
      const y = ((lim - panel.points[i + 1]) / (2 * lim)) * size
      if (x >= 0 && x < size) canvas.dot(k * size + x, y, panel.color)
    }
    for (let y = 0; y < size; y++) canvas.dot(k * size, y, [180, 180, 180], 0)
  })
  canvas.save(path)
}
