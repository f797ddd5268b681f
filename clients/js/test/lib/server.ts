// Start the real parley binary for a test: a free loopback port, a fresh
// temporary data directory, stopped and removed after the test.
//
// The binary is $PARLEY_BIN, else ../../build/parley from this package.
// restart() starts it again on the same data directory and the same port
// (a client keeps its base URL across the restart).
import { type ChildProcess, spawn } from "node:child_process"
import crypto from "node:crypto"
import fs from "node:fs"
import os from "node:os"
import path from "node:path"
import { after } from "node:test"
import { fileURLToPath } from "node:url"

import { type ClientOptions, createClient as create, type ParleyClient } from "../../src/index.js"

const here = path.dirname(fileURLToPath(import.meta.url))
// .test-build/test/lib → the package root is three levels up.
const pkgRoot = path.resolve(here, "..", "..", "..")
export const PARLEY_BIN = process.env.PARLEY_BIN ? path.resolve(process.env.PARLEY_BIN) : path.resolve(pkgRoot, "..", "..", "build", "parley")

const children = new Set<ChildProcess>()
process.on("exit", () => {
  for (const c of children) c.kill("SIGKILL")
})

// Every client a test file makes is closed when the file's tests end,
// whatever their outcome: a loop, subscription or retry that a failed
// assertion left running would otherwise keep the file's process alive.
const clients = new Set<ParleyClient>()
after(() => {
  for (const c of clients) c.close()
})

/** createClient, closed after the file's last test. */
export function createClient(opts: ClientOptions): ParleyClient {
  const c = create(opts)
  clients.add(c)
  return c
}

export class Server {
  proc: ChildProcess | null = null
  port = 0
  out = ""
  constructor(
    readonly dataDir: string,
    readonly args: string[],
  ) {}

  get url(): string {
    return `http://127.0.0.1:${this.port}`
  }

  async start(): Promise<this> {
    if (!fs.existsSync(PARLEY_BIN)) throw new Error(`parley binary not found at ${PARLEY_BIN}; build it or set PARLEY_BIN`)
    const argv = ["serve", "--listen", `127.0.0.1:${this.port}`, "--data", this.dataDir, ...this.args]
    const child = spawn(PARLEY_BIN, argv, { stdio: ["ignore", "pipe", "pipe"] })
    children.add(child)
    child.once("exit", () => children.delete(child))
    this.proc = child
    this.out = ""
    child.stderr!.setEncoding("utf8").on("data", (d) => (this.out += d))
    await new Promise<void>((resolve, reject) => {
      let text = ""
      const timer = setTimeout(() => reject(new Error(`parley did not start: ${text} ${this.out}`)), 10_000)
      child.stdout!.setEncoding("utf8").on("data", (d) => {
        text += d
        const m = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(text)
        if (m) {
          clearTimeout(timer)
          this.port = Number(m[1])
          resolve()
        }
      })
      child.once("exit", (code) => {
        clearTimeout(timer)
        reject(new Error(`parley exited (${code}) before it was ready: ${text} ${this.out}`))
      })
    })
    return this
  }

  private async exit(sig: NodeJS.Signals): Promise<void> {
    const c = this.proc
    if (!c || c.exitCode !== null || c.signalCode !== null) return
    const done = new Promise((r) => c.once("exit", r))
    c.kill(sig)
    await done
  }

  stop(): Promise<void> {
    return this.exit("SIGTERM")
  }

  kill9(): Promise<void> {
    return this.exit("SIGKILL")
  }

  async restart(): Promise<this> {
    await this.stop()
    return this.start()
  }

  async cleanup(): Promise<void> {
    await this.kill9()
    fs.rmSync(this.dataDir, { recursive: true, force: true })
  }
}

/** A server on a fresh directory; with t, cleaned up after the test. */
export async function startServer(t?: { after: (fn: () => Promise<void>) => void }, args: string[] = []): Promise<Server> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "parley-js-"))
  const srv = new Server(dir, args)
  t?.after(() => srv.cleanup())
  try {
    await srv.start()
  } catch (e) {
    await srv.cleanup()
    throw e
  }
  return srv
}

/** An HS256 JWT for sub, signed with secret; expSeconds from now (negative: expired). */
export function mintJwt(sub: string, secret: string, expSeconds = 3600): string {
  const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString("base64url")
  const now = Math.floor(Date.now() / 1000)
  const input = `${b64({ alg: "HS256", typ: "JWT" })}.${b64({ sub, iat: now, exp: now + expSeconds })}`
  return `${input}.${crypto.createHmac("sha256", secret).update(input).digest("base64url")}`
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** Wait until fn() is truthy (checked every 20 ms), at most ms. */
export async function until<T>(fn: () => T | Promise<T>, ms: number, what: string): Promise<T> {
  const end = Date.now() + ms
  for (;;) {
    const v = await fn()
    if (v) return v
    if (Date.now() > end) throw new Error(`${what}: not within ${ms} ms`)
    await sleep(20)
  }
}
