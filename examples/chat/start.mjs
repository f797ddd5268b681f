// start.mjs — `npm start`: build parley if it is not built yet, then run
// parley, the stand-in worker and the web front end (lib/app.mjs), until
// Ctrl-C. Environment: PORT (the web page, default 3000), PARLEY_BIN (a
// parley binary to use instead of the repository's build/parley),
// CHAT_DATA (where parley's data and the secrets live, default .data here),
// CHAT_DELAY_MS (the pause between the stand-in model's tokens, default 60).
import { spawnSync } from "node:child_process"
import fs from "node:fs"
import path from "node:path"

import { REPO, ROOT, startChat } from "./lib/app.mjs"

function parleyBinary() {
  if (process.env.PARLEY_BIN) return path.resolve(process.env.PARLEY_BIN)
  const bin = path.join(REPO, "build", "parley")
  if (fs.existsSync(bin)) return bin
  console.log("building parley (once; cmake and a C compiler: see the main README's Quick start) ...")
  const run = (args) => {
    const r = spawnSync("cmake", args, { cwd: REPO, stdio: "inherit" })
    if (r.status !== 0) throw new Error(`cmake ${args.join(" ")} failed`)
  }
  run(["-S", ".", "-B", "build"])
  run(["--build", "build", "-j2", "--target", "parley"])
  return bin
}

let chat
try {
  chat = await startChat({
    parleyBin: parleyBinary(),
    dataDir: path.resolve(process.env.CHAT_DATA ?? path.join(ROOT, ".data")),
    port: Number(process.env.PORT ?? 3000),
    delayMs: Number(process.env.CHAT_DELAY_MS ?? 60),
  })
} catch (e) {
  console.error(`the chat app did not start: ${e.message}`)
  process.exit(1)
}
console.log(`parley on ${chat.parleyUrl}`)
console.log(`the chat app on ${chat.url}  (Ctrl-C stops it)`)
let stopping = false
for (const sig of ["SIGINT", "SIGTERM"])
  process.on(sig, async () => {
    if (stopping) process.exit(1)
    stopping = true
    await chat.close()
    process.exit(0)
  })
