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
import { spawn } from "node:child_process"
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

// PostgreSQL databases for the servers, reused. With fsync on, CREATE
// DATABASE (a flushed copy of the template) and DROP DATABASE cost hundreds
// of milliseconds each on a busy machine, a server's first start on an
// empty database as much again (it creates the schema), and starting psql
// for each command more. So a server's database comes from a pool kept on
// the test PostgreSQL server (table parley_test_pool in the URL's own
// database, shared by every test process on that server): cleanup()
// returns it, and the next server to take it finds it emptied as a new one
// would be, tables included: no session of a former server left on it,
// every row of every table deleted and every sequence back at its start
// (the server's start-up then finds its schema in place). The commands go
// through psql sessions kept open, one on the admin database and one on
// each database used, per test process. A database that cannot be
// emptied is not used again.

/** One psql session on the test server, kept open; commands run one at a time. */
class PgSession {
  constructor(url) {
    this.url = url
    this.proc = null // the psql child, or null before the first command / after it died
    this.queue = Promise.resolve() // the last command queued (they run in order)
  }

  spawnPsql() {
    const proc = spawn("psql", ["-X", "-qAt", "-v", "ON_ERROR_STOP=0", this.url], {
      stdio: ["pipe", "pipe", "pipe"],
      env: { ...process.env, PGOPTIONS: "-c client_min_messages=warning" },
    })
    children.add(proc)
    proc.once("exit", () => {
      children.delete(proc)
      if (this.proc === proc) this.proc = null
    })
    proc.on("error", () => {}) // reported as an exit
    proc.stdin.on("error", () => {}) // written to after it died: the exit says so
    proc.stdout.setEncoding("utf8")
    proc.stderr.setEncoding("utf8")
    // Idle, it must not keep the test process alive.
    for (const h of [proc, proc.stdin, proc.stdout, proc.stderr]) h.unref()
    return proc
  }

  /**
   * Run SQL (and psql meta-commands, one a line); resolves the output lines.
   * Rejects with psql's messages when the last command failed or psql ended.
   */
  run(sql) {
    const job = this.queue.then(() => this.runNow(sql))
    this.queue = job.catch(() => {})
    return job
  }

  runNow(sql) {
    if (!this.proc) this.proc = this.spawnPsql()
    const proc = this.proc
    const END = /^__parley_done__ (true|false)$/m
    let out = ""
    let err = ""
    return withTimeout(
      new Promise((resolve, reject) => {
        const onOut = (d) => {
          out += d
          const m = END.exec(out)
          if (!m) return
          done()
          if (m[1] === "true") reject(new Error(`psql: ${sql}: ${err}`))
          else resolve(out.slice(0, m.index).split("\n").filter(Boolean))
        }
        const onErr = (d) => (err += d)
        const onExit = () => {
          done()
          reject(new Error(`psql ended: ${sql}: ${err}`))
        }
        const done = () => {
          proc.stdout.off("data", onOut)
          proc.stderr.off("data", onErr)
          proc.off("exit", onExit)
          for (const h of [proc, proc.stdin, proc.stdout, proc.stderr]) h.unref()
        }
        for (const h of [proc, proc.stdin, proc.stdout, proc.stderr]) h.ref()
        proc.stdout.on("data", onOut)
        proc.stderr.on("data", onErr)
        proc.once("exit", onExit)
        proc.stdin.write(`${sql}\n\\echo __parley_done__ :ERROR\n`)
      }),
      30_000,
      `psql ${sql}`,
    ).catch((e) => {
      // A command that failed or timed out may have left the session on
      // another database or in a transaction: start afresh next time.
      if (this.proc === proc) {
        this.proc = null
        proc.kill("SIGKILL")
      }
      throw e
    })
  }
}

let pgAdminSession = null // on TEST_PG_URL's database: the pool table
let pgPoolReady = false // the pool table and its sequence exist
const pgSessions = new Map() // database name -> PgSession on it

/** The test server's URL with another database name. */
function pgDatabaseUrl(name) {
  const m = /^(postgres(?:ql)?:\/\/[^/?]*)(\/[^?]*)?(\?.*)?$/.exec(TEST_PG_URL)
  return `${m[1]}/${name}${m[3] ?? ""}`
}

// Empties a pooled database: every other session ended (waiting for it to
// go, so that no advisory lock or LISTEN of a killed server lingers), every
// row deleted (a few rows per test: cheaper than TRUNCATE's new files),
// every sequence reset.
const PG_EMPTY_SQL =
  "SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity " +
  "WHERE datname = current_database() AND pid <> pg_backend_pid() \\g /dev/null\n" +
  "DO $$DECLARE r record; BEGIN " +
  "FOR r IN SELECT tablename FROM pg_tables WHERE schemaname = 'public' LOOP " +
  "EXECUTE format('DELETE FROM public.%I', r.tablename); END LOOP; " +
  "FOR r IN SELECT sequencename FROM pg_sequences WHERE schemaname = 'public' LOOP " +
  "PERFORM setval(format('public.%I', r.sequencename), 1, false); END LOOP; END$$;"

async function pgEmpty(name) {
  let session = pgSessions.get(name)
  if (!session) pgSessions.set(name, (session = new PgSession(pgDatabaseUrl(name))))
  await session.run(PG_EMPTY_SQL)
}

/** An empty database on the test PostgreSQL server, for one server: { name, url }. */
async function pgTakeDatabase() {
  pgAdminSession ??= new PgSession(TEST_PG_URL)
  const admin = pgAdminSession
  if (!pgPoolReady) {
    await admin.run(
      "BEGIN; SELECT pg_advisory_xact_lock(7070707070) \\g /dev/null\n" +
        "CREATE TABLE IF NOT EXISTS parley_test_pool (name text PRIMARY KEY, free boolean NOT NULL);\n" +
        "CREATE SEQUENCE IF NOT EXISTS parley_test_pool_seq; COMMIT;",
    )
    pgPoolReady = true
  }
  for (;;) {
    const [name] = await admin.run(
      "WITH t AS (UPDATE parley_test_pool SET free = false WHERE name = (SELECT name FROM " +
        "parley_test_pool WHERE free ORDER BY name LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING name) " +
        "SELECT name FROM t;",
    )
    if (!name) {
      // None free: a new one.
      const [fresh] = await admin.run(
        "INSERT INTO parley_test_pool SELECT 'parley_t' || nextval('parley_test_pool_seq'), false RETURNING name;",
      )
      await admin.run(`CREATE DATABASE ${fresh};`)
      return { name: fresh, url: pgDatabaseUrl(fresh) }
    }
    try {
      await pgEmpty(name)
      return { name, url: pgDatabaseUrl(name) }
    } catch {
      // A test may have closed it to connections: open it and try once more.
      try {
        await admin.run(`ALTER DATABASE ${name} ALLOW_CONNECTIONS true;`)
        await pgEmpty(name)
        return { name, url: pgDatabaseUrl(name) }
      } catch {
        // Left taken: take another.
      }
    }
  }
}

/** Give a server's database back to the pool (its processes are gone). */
async function pgReturnDatabase(name) {
  try {
    await pgAdminSession.run(`UPDATE parley_test_pool SET free = true WHERE name = '${name}';`)
  } catch {
    // The test server is gone (it is removed with its directory) or was
    // restarted by the test; the database is simply not reused.
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
    if (this.pgDatabase) await pgReturnDatabase(this.pgDatabase)
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
    pg = await pgTakeDatabase()
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
