/**
 * The recipe sweep behind bench/quality.ts's fixed recipes (one CPU thread):
 *   node dist/bench/quality-sweep.js WORKLOAD '{"blocks": 8, "steps": 6000}' ['{...}' ...]
 * Each JSON object overrides fields of the workload's recipe; one result line per recipe (tab-separated:
 * workload, recipe, params, seconds, test NLL, gap), appended to $SWEEP_LOG when set.
 */
import * as fs from 'node:fs'
import { setNumThreads } from '../lib'
import { QualityRecipe, qualityWorkloads, runQuality } from './quality'

setNumThreads(Number(process.env.THREADS ?? 1))
const [name, ...overrides] = process.argv.slice(2)
const w = qualityWorkloads.find((q) => q.name === name)
if (!w) throw new Error(`unknown quality workload ${name}`)
for (const o of overrides.length ? overrides : ['{}']) {
  const recipe = { ...w.recipe, ...(JSON.parse(o) as Partial<QualityRecipe>) }
  const row = runQuality(w, null, {
    onProgress: (step, loss) => {
      if (step % 1000 === 0) process.stderr.write(`${name} step ${step} loss ${loss.toFixed(3)}\n`)
    },
  }, recipe)
  const line = [row.workload, row.recipe, row.params, row.trainSeconds.toFixed(0), row.testNll.toFixed(3), row.gap.toFixed(3)].join('\t')
  console.log(line)
  if (process.env.SWEEP_LOG) fs.appendFileSync(process.env.SWEEP_LOG, line + '\n')
}
