// Report the minified + gzipped size of each entry point's browser bundle
// (esbuild --bundle --minify, then gzip -9). The core entry should stay at
// or under 15 KB.
import { build } from "esbuild"
import { gzipSync } from "node:zlib"

const LIMIT = 15 * 1024
const entries = [
  ["core", "dist/index.js", "browser"],
  ["worker", "dist/worker.js", "neutral"],
  // The ChatTransport with the core it uses (`ai` is only imported for types).
  ["ai", "dist/ai.js", "browser"],
]
let over = false
for (const [name, file, platform] of entries) {
  const out = await build({ entryPoints: [file], bundle: true, minify: true, format: "esm", platform, write: false, target: "es2022" })
  const min = out.outputFiles[0].contents
  const gz = gzipSync(min, { level: 9 }).length
  console.log(`${name.padEnd(7)} ${file.padEnd(16)} minified ${String(min.length).padStart(6)} B, gzipped ${String(gz).padStart(6)} B (${(gz / 1024).toFixed(1)} KB)`)
  if (name === "core" && gz > LIMIT) over = true
}
if (over) {
  console.error(`the core entry is over ${LIMIT / 1024} KB gzipped`)
  process.exit(1)
}
