#!/usr/bin/env node
// Turns a CUDA source into host C++ for the emulator: the one construct C++ cannot parse, a launch
// `kernel<T><<<grid, block, shared, stream>>>(args)`, becomes `::emu::launcher(kernel<T>, "kernel<T> at file:line")
// [::emu::Config(grid, block, shared, stream)](args)`. Everything else compiles as it is against tools/cuda-emu/include.
//   node translate.js in.cu out.cc
'use strict'
const fs = require('node:fs')
const path = require('node:path')

function translate(src, input) {
  let out = ''
  let from = 0
  for (;;) {
    const open = src.indexOf('<<<', from)
    if (open < 0) break
    const close = src.indexOf('>>>', open)
    if (close < 0) throw new Error(`unclosed <<< at offset ${open}`)
    // the kernel expression before <<<: an identifier (with ::) and, optionally, balanced template arguments
    let start = open
    if (src[start - 1] === '>') {
      let depth = 0
      do {
        start--
        if (src[start] === '>') depth++
        else if (src[start] === '<') depth--
      } while (depth > 0 && start > 0)
    }
    while (start > 0 && /[A-Za-z0-9_:]/.test(src[start - 1])) start--
    const kernel = src.slice(start, open)
    if (!/^[A-Za-z_:]/.test(kernel)) throw new Error(`cannot find the kernel before <<< at offset ${open}`)
    const line = src.slice(0, open).split('\n').length
    const where = `${kernel.replace(/\s+/g, ' ')} at ${path.basename(input)}:${line}`
    out += src.slice(from, start) + `::emu::launcher(${kernel}, ${JSON.stringify(where)})[::emu::Config(${src.slice(open + 3, close)})]`
    from = close + 3
  }
  return out + src.slice(from)
}

const [input, output] = process.argv.slice(2)
const src = fs.readFileSync(input, 'utf8')
fs.writeFileSync(output, `#line 1 "${input}"\n` + translate(src, input))
