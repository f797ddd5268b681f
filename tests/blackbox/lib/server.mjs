// Start the real parley binary for a black-box test.
//
// startServer(opts) makes a fresh data directory under os.tmpdir(), runs
// `parley serve --listen 127.0.0.1:0 --data <dir> ...opts.args`, waits for
// the start-up line and returns a handle:
//
//   url, port, dataDir, proc      where the running server is
//   stderr()                      everything it has written to stderr so far
//   stop()                        SIGTERM, wait for the exit, resolve the exit code
//   kill9()                       SIGKILL, wait for the exit
//   restart()                     start again on the same data directory (the
//                                 port may change; url/port/proc are updated)
//   cleanup()                     kill it if it still runs, remove the directory
//
// Pass opts.t (the node:test context) to have cleanup() run after the test.
// Every child is tracked: whatever the tests do, no parley process outlives
// the test process, and the temporary directories are removed.
//
// The server only ever listens on 127.0.0.1: --listen is fixed here and
// callers cannot pass their own.
//
// PostgreSQL: with PARLEY_TEST_STORE set to a postgres:// URL (as
// tests/lib/with-pg sets it), each server gets a database of its own,
// created on that URL's server with psql before the start and dropped at
// cleanup, and is started with --store naming it (unless the test passes
// its own --store or PARLEY_STORE). restart() keeps the same database.
// server.pgUrl names it, so that a second server (`--store`, srv.pgUrl)
// can share it as another node.
import { spawn, spawnSync } from "node:child_process"
import fs from "node:fs"
import os from "node:os"
import path from "node:path"
import { fileURLToPath } from "node:url"

const here = path.dirname(fileURLToPath(import.meta.url))

/** The binary under test: $PARLEY_BIN, or build/parley in this repository. */
export const PARLEY_BIN = process.env.PARLEY_BIN
  ? path.resolve(process.env.PARLEY_BIN)
  : path.resolve(here, "..", "..", "..", "build", "parley")

const START_TIMEOUT_MS = 10_000
const STOP_TIMEOUT_MS = 20_000
// The start-up line as text, or as the "msg" of a JSON object (--log-format json).
const STARTUP_LINE = /^(?:\{.*"msg":")?parley \S+ listening on http:\/\/(127\.0\.0\.1):(\d+)\b/m

// Every child still running and every directory not yet removed.
const children = new Set()
const dirs = new Set()

function reapAll() {
  for (const child of children) {
    try {
      child.kill("SIGKILL")
    } catch {
      // already gone
    }
  }
  children.clear()
  for (const dir of dirs) {
    try {
      fs.rmSync(dir, { recursive: true, force: true })
    } catch {
      // best effort at exit
    }
  }
  dirs.clear()
}

process.on("exit", reapAll)
// The test runner stops a file that runs too long with a signal; 'exit'
// handlers do not run then, so kill the children here and exit as the
// signal would have.
for (const [sig, num] of [["SIGINT", 2], ["SIGTERM", 15], ["SIGHUP", 1]]) {
  process.once(sig, () => {
    reapAll()
    process.exit(128 + num)
  })
}

function checkBinary() {
  try {
    fs.accessSync(PARLEY_BIN, fs.constants.X_OK)
  } catch {
    throw new Error(
      `parley binary not found or not executable at ${PARLEY_BIN}; build it with ` +
        "`cmake -S . -B build && cmake --build build -j2` or set PARLEY_BIN",
    )
  }
}

/** Resolve when the child has exited: { code, signal }. */
function exited(child) {
  if (child.exitCode !== null || child.signalCode !== null)
    return Promise.resolve({ code: child.exitCode, signal: child.signalCode })
  return new Promise((resolve) => {
    child.once("exit", (code, signal) => resolve({ code, signal }))
  })
}

function withTimeout(promise, ms, what) {
  let timer
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not happen within ${ms} ms`)), ms)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

/**
 * Run the binary with args until it exits (for --help, --version or a start
 * that must be refused). Killed with SIGKILL after timeoutMs. env: extra
 * environment variables. Resolves { code, signal, stdout, stderr, timedOut }.
 */
export function runParley(args, { timeoutMs = 10_000, env = null } = {}) {
  checkBinary()
  const child = spawn(PARLEY_BIN, args, {
    stdio: ["ignore", "pipe", "pipe"],
    env: env ? { ...process.env, ...env } : process.env,
  })
  children.add(child)
  let stdout = ""
  let stderr = ""
  child.stdout.setEncoding("utf8").on("data", (d) => (stdout += d))
  child.stderr.setEncoding("utf8").on("data", (d) => (stderr += d))
  let timedOut = false
  const timer = setTimeout(() => {
    timedOut = true
    child.kill("SIGKILL")
  }, timeoutMs)
  return new Promise((resolve, reject) => {
    child.once("error", (err) => {
      clearTimeout(timer)
      children.delete(child)
      reject(err)
    })
    child.once("close", (code, signal) => {
      clearTimeout(timer)
      children.delete(child)
      resolve({ code, signal, stdout, stderr, timedOut })
    })
  })
}

/** The PostgreSQL server the tests run on (PARLEY_TEST_STORE), or "". */
export const TEST_PG_URL = /^postgres(ql)?:\/\//.test(process.env.PARLEY_TEST_STORE ?? "")
  ? process.env.PARLEY_TEST_STORE
  : ""
let pgDatabases = 0

/** Run one SQL command on the test PostgreSQL server (its admin database). */
function pgAdmin(sql) {
  const res = spawnSync("psql", [TEST_PG_URL, "-v", "ON_ERROR_STOP=1", "-qAtc", sql], {
    encoding: "utf8",
    timeout: 30_000,
  })
  if (res.status !== 0) throw new Error(`psql ${sql}: ${res.stderr || res.error}`)
}

/** A new empty database on the test PostgreSQL server: { name, url }. */
function pgCreateDatabase() {
  const name = `parley_t${process.pid}_${++pgDatabases}`
  pgAdmin(`CREATE DATABASE ${name}`)
  const m = /^(postgres(?:ql)?:\/\/[^/?]*)(\/[^?]*)?(\?.*)?$/.exec(TEST_PG_URL)
  return { name, url: `${m[1]}/${name}${m[3] ?? ""}` }
}

function pgDropDatabase(name) {
  try {
    pgAdmin(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
  } catch {
    // the server may be gone already; it is removed with its directory
  }
}

class ParleyServer {
  constructor(dataDir, args, env) {
    this.dataDir = dataDir
    this.args = args
    this.env = env // extra environment variables (or null)
    this.proc = null
    this.port = 0
    this.url = ""
    this.stdoutText = ""
    this.stderrText = ""
  }

  /** Everything the current process has written to stderr so far. */
  stderr() {
    return this.stderrText
  }

  /** True while the current process has not exited. */
  get running() {
    return this.proc !== null && this.proc.exitCode === null && this.proc.signalCode === null
  }

  async start() {
    checkBinary()
    const argv = ["serve", "--listen", "127.0.0.1:0", "--data", this.dataDir, ...this.args]
    const env = this.env ? { ...process.env, ...this.env } : process.env
    const child = spawn(PARLEY_BIN, argv, { stdio: ["ignore", "pipe", "pipe"], env })
    children.add(child)
    child.once("exit", () => children.delete(child))
    this.proc = child
    this.stdoutText = ""
    this.stderrText = ""
    // Keep draining both pipes for the life of the process so it never
    // blocks on a full pipe.
    child.stdout.setEncoding("utf8").on("data", (d) => (this.stdoutText += d))
    child.stderr.setEncoding("utf8").on("data", (d) => (this.stderrText += d))

    const ready = new Promise((resolve, reject) => {
      const onData = () => {
        const m = STARTUP_LINE.exec(this.stdoutText)
        if (!m) return
        cleanupListeners()
        resolve({ host: m[1], port: Number(m[2]) })
      }
      const onExit = (code, signal) => {
        cleanupListeners()
        reject(
          new Error(
            `parley exited before it was ready (code ${code}, signal ${signal})\n` +
              `command: ${PARLEY_BIN} ${argv.join(" ")}\n` +
              `stdout: ${this.stdoutText}\nstderr: ${this.stderrText}`,
          ),
        )
      }
      const onError = (err) => {
        cleanupListeners()
        reject(err)
      }
      const cleanupListeners = () => {
        child.stdout.off("data", onData)
        child.off("exit", onExit)
        child.off("error", onError)
      }
      child.stdout.on("data", onData)
      child.once("exit", onExit)
      child.once("error", onError)
    })

    let where
    try {
      where = await withTimeout(ready, START_TIMEOUT_MS, "the parley start-up line")
    } catch (err) {
      child.kill("SIGKILL")
      await exited(child)
      if (/did not happen/.test(err.message))
        err.message += `\nstdout: ${this.stdoutText}\nstderr: ${this.stderrText}`
      throw err
    }
    if (where.host !== "127.0.0.1") throw new Error(`parley listens on ${where.host}, not loopback`)
    this.port = where.port
    this.url = `http://127.0.0.1:${where.port}`
    return this
  }

  /** SIGTERM and wait for the exit; resolves the exit code (null if killed by a signal). */
  async stop() {
    if (!this.proc) return null
    const child = this.proc
    if (this.running) child.kill("SIGTERM")
    try {
      const { code } = await withTimeout(exited(child), STOP_TIMEOUT_MS, "exit after SIGTERM")
      return code
    } catch (err) {
      child.kill("SIGKILL")
      await exited(child)
      err.message += `\nstderr: ${this.stderrText}`
      throw err
    }
  }

  /** SIGKILL and wait for the exit. */
  async kill9() {
    if (!this.proc) return
    const child = this.proc
    if (this.running) child.kill("SIGKILL")
    await exited(child)
  }

  /** Start again on the same data directory; a running process is stopped first. */
  async restart() {
    if (this.running) {
      const code = await this.stop()
      if (code !== 0) throw new Error(`parley exited with ${code} when stopped for a restart`)
    }
    return this.start()
  }

  /** Kill the process if it still runs and remove the data directory. */
  async cleanup() {
    await this.kill9()
    fs.rmSync(this.dataDir, { recursive: true, force: true })
    dirs.delete(this.dataDir)
    if (this.pgDatabase) pgDropDatabase(this.pgDatabase)
    this.pgDatabase = null
  }
}

/**
 * Start parley on a fresh data directory.
 *   opts.args  extra `serve` arguments (not --listen, --data or --quiet)
 *   opts.t     a node:test context: cleanup() is registered with t.after()
 *   opts.env   extra environment variables
 *   opts.defaultRateLimits  keep the server's default per-user rate limits.
 *              Otherwise they are off (PARLEY_RATE_LIMIT_WRITES/READS=off):
 *              tests that are not about rate limits write faster than a
 *              user may on a quick machine. A flag in opts.args, or the
 *              variable in opts.env, still sets a limit.
 */
export async function startServer(opts = {}) {
  const args = [...(opts.args ?? [])]
  for (const a of args) {
    if (/^--(listen|data|quiet)\b/.test(a))
      throw new Error(`startServer: ${a} is set by the helper and cannot be passed`)
  }
  // opts.dataDir: a directory of the caller's (e.g. on a small filesystem);
  // it is still removed at cleanup.
  const dataDir = opts.dataDir ?? fs.mkdtempSync(path.join(os.tmpdir(), "parley-blackbox-"))
  dirs.add(dataDir)
  const env = opts.defaultRateLimits
    ? opts.env ?? null
    : { PARLEY_RATE_LIMIT_WRITES: "off", PARLEY_RATE_LIMIT_READS: "off", ...(opts.env ?? {}) }
  let pg = null
  if (TEST_PG_URL && !args.some((a) => /^--store\b/.test(a)) && !(opts.env && "PARLEY_STORE" in opts.env)) {
    pg = pgCreateDatabase()
    args.unshift("--store", pg.url)
  }
  const server = new ParleyServer(dataDir, args, env)
  server.pgDatabase = pg ? pg.name : null
  server.pgUrl = pg ? pg.url : null // to start another node on the same database
  if (opts.t) opts.t.after(() => server.cleanup())
  try {
    await server.start()
  } catch (err) {
    await server.cleanup()
    throw err
  }
  return server
}
