// lib/app.mjs — everything `npm start` runs, in one function the tests call
// too: parley itself, the stand-in worker, and the web server.
//
//   startChat()
//     1. bundle web/app.js and worker/worker.mjs with esbuild; the import
//        "@parley/client" resolves to the SDK's sources in clients/js/src
//        (an app would install the package instead)
//     2. start `parley serve` on 127.0.0.1, a free port, with its data in
//        dataDir, an admin key (for the worker) and a JWT secret (for the
//        users' tokens), both kept in dataDir/secrets.json
//     3. start the worker loop (in this process, with the admin key)
//     4. serve the front end on 127.0.0.1:port
//
// The web server has three routes of its own:
//   GET  /api/config  {parleyUrl}: where the browser finds parley
//   POST /api/token   {user} → {token}: a JWT for that user, signed with the
//                     JWT secret. This stands in for the app's own sign-in:
//                     it trusts whoever asks, so it listens on loopback only.
//   GET  /s/{id}      the share page (the same front end, read-only)
// The browser talks to parley directly (CORS is open once auth is on); this
// server never proxies parley's traffic.
import { spawn } from "node:child_process"
import crypto from "node:crypto"
import fs from "node:fs"
import http from "node:http"
import path from "node:path"
import { fileURLToPath, pathToFileURL } from "node:url"

import { build } from "esbuild"

const here = path.dirname(fileURLToPath(import.meta.url))
export const ROOT = path.resolve(here, "..")
export const REPO = path.resolve(ROOT, "..", "..")
const SDK = path.join(REPO, "clients", "js", "src")

/** An HS256 JWT for `sub`, valid for `seconds`. */
export function mintJwt(sub, secret, seconds = 3600) {
  const b64 = (v) => Buffer.from(JSON.stringify(v)).toString("base64url")
  const now = Math.floor(Date.now() / 1000)
  const body = `${b64({ alg: "HS256", typ: "JWT" })}.${b64({ sub, iat: now, exp: now + seconds })}`
  return `${body}.${crypto.createHmac("sha256", secret).update(body).digest("base64url")}`
}

/** Bundle the front end (browser) and the worker (Node) into outDir. */
async function bundle(outDir) {
  const alias = {
    "@parley/client/worker": path.join(SDK, "worker.ts"),
    "@parley/client/node": path.join(SDK, "node.ts"),
    "@parley/client": path.join(SDK, "index.ts"),
  }
  const common = { bundle: true, format: "esm", target: "es2022", alias, logLevel: "error", sourcemap: true }
  await build({ ...common, entryPoints: [path.join(ROOT, "web", "app.js")], outfile: path.join(outDir, "app.js"), platform: "browser", minify: true })
  await build({ ...common, entryPoints: [path.join(ROOT, "worker", "worker.mjs")], outfile: path.join(outDir, "worker.mjs"), platform: "node" })
}

/** The secrets of a data directory, made on first use. */
function secretsOf(dataDir) {
  const file = path.join(dataDir, "secrets.json")
  try {
    return JSON.parse(fs.readFileSync(file, "utf8"))
  } catch {
    const s = { adminKey: crypto.randomBytes(24).toString("base64url"), jwtSecret: crypto.randomBytes(32).toString("base64url") }
    fs.writeFileSync(file, JSON.stringify(s), { mode: 0o600 })
    return s
  }
}

/** Start `parley serve` on a free loopback port; resolves with {url, proc}. */
function startParley(bin, dataDir, secrets, log) {
  const store = path.join(dataDir, "parley")
  fs.mkdirSync(store, { recursive: true })
  // The secrets go in the environment, not on the command line (ps shows it).
  const env = { ...process.env, PARLEY_ADMIN_KEY: secrets.adminKey, PARLEY_JWT_SECRET: secrets.jwtSecret }
  const proc = spawn(bin, ["serve", "--listen", "127.0.0.1:0", "--data", store], { stdio: ["ignore", "pipe", "pipe"], env })
  let err = ""
  proc.stderr.setEncoding("utf8").on("data", (d) => {
    err += d
    if (err.length > 65536) err = err.slice(-32768)
    log?.(d.trimEnd())
  })
  return new Promise((resolve, reject) => {
    let out = ""
    const timer = setTimeout(() => reject(new Error(`parley did not start: ${out} ${err}`)), 15_000)
    proc.stdout.setEncoding("utf8").on("data", (d) => {
      out += d
      const m = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(out)
      if (m) {
        clearTimeout(timer)
        resolve({ url: m[1], proc })
      }
    })
    proc.once("exit", (code) => {
      clearTimeout(timer)
      reject(new Error(`parley exited (${code}) before it was ready: ${out} ${err}`))
    })
  })
}

const TYPES = { ".html": "text/html; charset=utf-8", ".js": "text/javascript", ".css": "text/css", ".map": "application/json", ".svg": "image/svg+xml" }

/**
 * Start the whole example. Options: parleyBin, dataDir, port (0: a free
 * one), delayMs and words (the stand-in model's pace and length), log.
 * Resolves with {url, parleyUrl, adminKey, jwtSecret, close()}.
 */
export async function startChat({ parleyBin, dataDir, port = 0, delayMs = 60, words = 48, log = console.log }) {
  fs.mkdirSync(dataDir, { recursive: true })
  const outDir = path.join(dataDir, "bundle")
  await bundle(outDir)
  const secrets = secretsOf(dataDir)
  const parley = await startParley(parleyBin, dataDir, secrets, null)
  const { startWorker } = await import(pathToFileURL(path.join(outDir, "worker.mjs")).href)
  const worker = startWorker({ parleyUrl: parley.url, adminKey: secrets.adminKey, outboxPath: path.join(dataDir, "worker-outbox.jsonl"), delayMs, words, log })

  const send = (res, status, type, body) => res.writeHead(status, { "Content-Type": type, "Cache-Control": "no-store" }).end(body)
  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url, "http://localhost")
    try {
      if (req.method === "GET" && url.pathname === "/api/config") return send(res, 200, "application/json", JSON.stringify({ parleyUrl: parley.url }))
      if (req.method === "POST" && url.pathname === "/api/token") {
        let body = ""
        for await (const d of req) if ((body += d).length > 4096) return send(res, 413, "text/plain", "too large")
        const user = JSON.parse(body).user
        if (typeof user !== "string" || !/^[A-Za-z0-9_-]{1,64}$/.test(user)) return send(res, 400, "text/plain", "user: 1-64 letters, digits, - or _")
        return send(res, 200, "application/json", JSON.stringify({ token: mintJwt(user, secrets.jwtSecret) }))
      }
      if (req.method !== "GET" && req.method !== "HEAD") return send(res, 405, "text/plain", "method not allowed")
      let file
      if (url.pathname === "/" || url.pathname.startsWith("/s/")) file = path.join(ROOT, "web", "index.html")
      else if (url.pathname === "/style.css") file = path.join(ROOT, "web", "style.css")
      else if (url.pathname === "/app.js" || url.pathname === "/app.js.map") file = path.join(outDir, url.pathname.slice(1))
      else return send(res, 404, "text/plain", "not found")
      send(res, 200, TYPES[path.extname(file)] ?? "application/octet-stream", fs.readFileSync(file))
    } catch (e) {
      send(res, 500, "text/plain", String(e))
    }
  })
  let closed = null
  const stopAll = async () => {
    server.closeAllConnections()
    server.close()
    await worker.stop()
    if (parley.proc.exitCode === null) {
      const gone = new Promise((r) => parley.proc.once("exit", r))
      parley.proc.kill("SIGTERM")
      await gone
    }
  }
  try {
    await new Promise((resolve, reject) => {
      server.once("error", reject)
      server.listen(port, "127.0.0.1", resolve)
    })
  } catch (e) {
    await stopAll() // parley and the worker do not outlive a failed start
    throw e.code === "EADDRINUSE" ? new Error(`port ${port} is in use: choose another with PORT=...`) : e
  }
  const url = `http://127.0.0.1:${server.address().port}`
  return {
    url,
    parleyUrl: parley.url,
    adminKey: secrets.adminKey,
    jwtSecret: secrets.jwtSecret,
    close() {
      closed ??= stopAll()
      return closed
    },
  }
}
