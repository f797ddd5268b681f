// The command line and what ships beside it: every option from its PARLEY_
// variable (a flag winning over it, a bad one refused), --help of every
// command, the manual page kept in step with `parley serve --help`, and the
// systemd unit checked by systemd-analyze.
import assert from "node:assert/strict"
import { execFileSync, spawn, spawnSync } from "node:child_process"
import fs from "node:fs"
import net from "node:net"
import os from "node:os"
import path from "node:path"
import { test } from "node:test"
import { fileURLToPath } from "node:url"

import { append, createStream, request } from "./lib/http.mjs"
import { PARLEY_BIN, runParley, startServer } from "./lib/server.mjs"

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..")
const MAN_PAGE = path.join(root, "man", "parley.1")
const UNIT = path.join(root, "dist", "parley.service")

// The variables under test must come from the test alone.
for (const name of Object.keys(process.env)) if (name.startsWith("PARLEY_") && name !== "PARLEY_BIN") delete process.env[name]

/** PARLEY_ and the flag's name in capitals, '-' as '_'. */
const envName = (flag) => "PARLEY_" + flag.replace(/^--/, "").toUpperCase().replaceAll("-", "_")

/**
 * The options `parley serve --help` lists: [{ heading ("--listen HOST:PORT"),
 * flag ("--listen"), text (its help, joined) }]. An option line is two
 * spaces, a dash, the flag and its argument, then its help after two or more
 * spaces; continuation lines are indented past the flag column.
 */
function helpOptions(help) {
  const opts = []
  let cur = null
  for (const line of help.split("\n")) {
    const m = /^ {2}((?:-\w, )?--[\w-]+(?: [A-Z][A-Z:]*)?)(?: {2,}(.*))?$/.exec(line)
    if (m) {
      cur = { heading: m[1], flag: /--[\w-]+/.exec(m[1])[0], text: m[2] ?? "" }
      opts.push(cur)
    } else if (cur && /^ {20,}\S/.test(line)) cur.text += " " + line.trim()
    else cur = null
  }
  return opts
}

/** The man page rendered to plain text, one paragraph a line (no wrapping, no hyphenation). */
function renderMan() {
  const r = spawnSync("groff", ["-man", "-Tutf8", "-P-cbu", "-rLL=1000n", "-rHY=0", "-ww", MAN_PAGE], { encoding: "utf8" })
  assert.equal(r.status, 0, `groff: ${r.stderr}`)
  return r.stdout
}

/** The entries of the man page's OPTIONS section: [{ heading, flag, text }]. */
function manOptions(text) {
  const lines = text.split("\n")
  const start = lines.indexOf("OPTIONS")
  assert.ok(start >= 0, "the man page has an OPTIONS section")
  const opts = []
  for (let i = start + 1; i < lines.length && !/^[A-Z]/.test(lines[i]); i++) {
    const m = /^ {7}(-\S.*?)\s*$/.exec(lines[i])
    if (m) opts.push({ heading: m[1], flag: /--[\w-]+/.exec(m[1])[0], text: "" })
    else if (opts.length && /^ {14}\S/.test(lines[i])) opts.at(-1).text += " " + lines[i].trim()
  }
  return opts
}

/**
 * A port nothing listens on right now, below the kernel's range of ephemeral
 * ports: between this check and parley's bind, an outgoing connection of
 * another suite running beside this one (make test runs two at a time)
 * cannot take it as its local port.
 */
async function freePort() {
  let low = 32768
  try {
    low = Number(fs.readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/)[0])
  } catch {
    // no /proc: the kernel's default
  }
  if (!(low > 11000)) low = 32768
  for (let i = 0; i < 100; i++) {
    const port = 10000 + Math.floor(Math.random() * (low - 10000))
    const free = await new Promise((resolve) => {
      const s = net.createServer()
      s.once("error", () => resolve(false))
      s.listen(port, "127.0.0.1", () => s.close(() => resolve(true)))
    })
    if (free) return port
  }
  throw new Error(`no free port between 10000 and ${low}`)
}

/**
 * Run `parley serve` with exactly these arguments and extra environment (the
 * helper's startServer always passes --listen and --data); resolves once
 * GET /healthz on 127.0.0.1:port answers 200. Killed after the test.
 */
async function serveRaw(t, args, env, port) {
  const child = spawn(PARLEY_BIN, ["serve", ...args], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...env } })
  const out = { stdout: "", stderr: "" }
  child.stdout.setEncoding("utf8").on("data", (d) => (out.stdout += d))
  child.stderr.setEncoding("utf8").on("data", (d) => (out.stderr += d))
  const exited = new Promise((resolve) => child.once("exit", (code) => resolve(code)))
  t.after(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGKILL")
      await exited
    }
  })
  const deadline = Date.now() + 10_000
  for (;;) {
    if (child.exitCode !== null) throw new Error(`parley exited with ${child.exitCode}: ${out.stderr}`)
    try {
      if ((await request(`http://127.0.0.1:${port}`, "/healthz", { timeoutMs: 1000 })).status === 200) break
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`parley did not answer on port ${port}: ${out.stderr}`)
    await new Promise((r) => setTimeout(r, 50))
  }
  return {
    out,
    url: `http://127.0.0.1:${port}`,
    async stop() {
      child.kill("SIGTERM")
      return exited
    },
  }
}

/** Time a long-poll on an empty stream takes to answer 204, in ms. */
async function longPollMs(url) {
  assert.equal((await createStream(url, "lp")).status, 201)
  const t0 = Date.now()
  const res = await request(url, "/v1/stream/lp?offset=now&live=long-poll", { timeoutMs: 40_000 })
  assert.equal(res.status, 204, `long-poll: ${res.status} ${res.text}`)
  return Date.now() - t0
}

// ---- --help of every command -------------------------------------------

test("cli - parley --help, -h and help print the overview and exit 0", { timeout: 30_000 }, async () => {
  const outs = []
  for (const args of [["--help"], ["-h"], ["help"], ["help", "help"]]) {
    const r = await runParley(args)
    assert.equal(r.code, 0, `${args.join(" ")}: exit code; stderr ${r.stderr}`)
    assert.match(r.stdout, /^commands:$/m, `${args.join(" ")} lists the commands`)
    assert.match(r.stdout, /^ {2}serve\b/m, `${args.join(" ")} names serve`)
    outs.push(r.stdout)
  }
  assert.equal(new Set(outs).size, 1, "the same overview every way")
})

test("cli - parley serve --help, -h and help serve print serve's usage and exit 0", { timeout: 30_000 }, async () => {
  const outs = []
  for (const args of [["serve", "--help"], ["serve", "-h"], ["help", "serve"], ["serve", "--listen", "x", "--help"]]) {
    const r = await runParley(args)
    assert.equal(r.code, 0, `${args.join(" ")}: exit code; stderr ${r.stderr}`)
    assert.match(r.stdout, /^usage: parley serve \[options\]/)
    outs.push(r.stdout)
  }
  assert.equal(new Set(outs).size, 1, "the same usage every way")
  const help = outs[0]
  assert.ok(helpOptions(help).length >= 25, `serve --help lists its options:\n${help}`)
  // --store names both backends (it once named only sqlite:).
  const store = helpOptions(help).find((o) => o.flag === "--store")
  assert.ok(store, `serve --help lists --store:\n${help}`)
  for (const scheme of ["sqlite:", "postgres://", "postgresql://"])
    assert.ok(store.text.includes(scheme), `serve --help's --store names ${scheme}: ${store.text}`)
  for (const line of help.split("\n")) assert.ok(line.length <= 80, `a line of serve --help is over 80 columns: ${line}`)
  // The environment is not read for --help: a bad variable does not stop it.
  const r = await runParley(["serve", "--help"], { env: { PARLEY_THREADS: "many" } })
  assert.equal(r.code, 0, `serve --help with a bad PARLEY_THREADS: ${r.stderr}`)
})

test("cli - an unknown command, option or argument exits 2 with a message", { timeout: 30_000 }, async () => {
  for (const [args, message] of [
    [[], /usage: parley/],
    [["bogus"], /unknown command 'bogus'/],
    [["help", "bogus"], /unknown command 'bogus'/],
    [["help", "serve", "more"], /unexpected argument 'more'/],
    [["serve", "--bogus"], /unrecognized option '--bogus'[\s\S]*parley serve --help/],
    [["serve", "--threads"], /requires an argument/],
    [["serve", "extra"], /unexpected argument 'extra'/],
  ]) {
    const r = await runParley(args)
    assert.equal(r.code, 2, `parley ${args.join(" ")}: exit code; stderr ${r.stderr}`)
    assert.equal(r.stdout, "", `parley ${args.join(" ")}: nothing on stdout`)
    assert.match(r.stderr, message, `parley ${args.join(" ")}: stderr`)
  }
})

// ---- PARLEY_ variables -------------------------------------------------

test("cli - a value (PARLEY_LISTEN, PARLEY_DATA) and a switch (PARLEY_QUIET) from the environment", { timeout: 30_000 }, async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "parley-cli-"))
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }))
  const port = await freePort()
  const srv = await serveRaw(t, [], { PARLEY_LISTEN: `127.0.0.1:${port}`, PARLEY_DATA: dir, PARLEY_QUIET: "1" }, port)
  assert.ok(fs.existsSync(path.join(dir, "parley.db")), "the store is in PARLEY_DATA")
  assert.equal(await srv.stop(), 0, srv.out.stderr)
  assert.equal(srv.out.stdout, "", "PARLEY_QUIET=1: no start-up line")

  // PARLEY_QUIET=0 (and "off") leave the start-up line on.
  for (const v of ["0", "off"]) {
    const p = await freePort()
    const loud = await serveRaw(t, [], { PARLEY_LISTEN: `127.0.0.1:${p}`, PARLEY_DATA: dir, PARLEY_QUIET: v }, p)
    assert.equal(await loud.stop(), 0)
    assert.match(loud.out.stdout, new RegExp(`listening on http://127\\.0\\.0\\.1:${p}\\b`), `PARLEY_QUIET=${v}`)
  }
})

test("cli - numbers from the environment: PARLEY_LONG_POLL_TIMEOUT, PARLEY_MAX_APPEND_BYTES", { timeout: 30_000 }, async (t) => {
  const srv = await startServer({ t, env: { PARLEY_LONG_POLL_TIMEOUT: "300", PARLEY_MAX_APPEND_BYTES: "1000" } })
  const ms = await longPollMs(srv.url)
  assert.ok(ms >= 250 && ms < 5000, `a long-poll with PARLEY_LONG_POLL_TIMEOUT=300 answered after ${ms} ms`)
  assert.equal((await createStream(srv.url, "big")).status, 201)
  assert.equal((await append(srv.url, "big", "x".repeat(1000))).status, 204, "1000 bytes fit")
  assert.equal((await append(srv.url, "big", "x".repeat(1001))).status, 413, "PARLEY_MAX_APPEND_BYTES=1000: 1001 bytes do not")
})

test("cli - a flag wins over its variable, which is then not even read", { timeout: 30_000 }, async (t) => {
  const srv = await startServer({
    t,
    args: ["--long-poll-timeout", "300", "--max-append-bytes", "2000", "--threads", "2"],
    env: { PARLEY_LONG_POLL_TIMEOUT: "30000", PARLEY_MAX_APPEND_BYTES: "1000", PARLEY_THREADS: "not a number" },
  })
  const ms = await longPollMs(srv.url)
  assert.ok(ms < 5000, `--long-poll-timeout 300 over PARLEY_LONG_POLL_TIMEOUT=30000: answered after ${ms} ms`)
  assert.equal((await createStream(srv.url, "big")).status, 201)
  assert.equal((await append(srv.url, "big", "x".repeat(1500))).status, 204, "--max-append-bytes 2000 over PARLEY_MAX_APPEND_BYTES=1000")

  // A switch: --quiet wins over PARLEY_QUIET=0.
  const port = await freePort()
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "parley-cli-"))
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }))
  const quiet = await serveRaw(t, ["--quiet", "--listen", `127.0.0.1:${port}`, "--data", dir], { PARLEY_QUIET: "0" }, port)
  assert.equal(await quiet.stop(), 0)
  assert.equal(quiet.out.stdout, "", "--quiet over PARLEY_QUIET=0")
})

test("cli - a bad value in a variable exits 2 with a message naming the variable", { timeout: 60_000 }, async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "parley-cli-"))
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }))
  for (const [name, value] of [
    ["PARLEY_LONG_POLL_TIMEOUT", "soon"],
    ["PARLEY_MAX_APPEND_BYTES", "-1"],
    ["PARLEY_THREADS", "0"],
    ["PARLEY_READ_WINDOW", "100"],
    ["PARLEY_SESSION_MAX_ATTEMPTS", "101"],
    ["PARLEY_MAX_CONNECTIONS", "4294967296"],
    ["PARLEY_LISTEN", "127.0.0.1"],
    ["PARLEY_LISTEN", "127.0.0.1:70000"],
    ["PARLEY_QUIET", "maybe"],
    ["PARLEY_ALLOW_ORIGIN", "http://localhost:5173,ftp://x"],
    // No origin, or a bad one first: under LeakSanitizer these once ended
    // with a leak report and exit 1.
    ["PARLEY_ALLOW_ORIGIN", " , "],
    ["PARLEY_ALLOW_ORIGIN", "ftp://x,http://localhost:5173"],
    ["PARLEY_RATE_LIMIT_READS", "fast"],
    ["PARLEY_RATE_BURST_WRITES", "0"],
    ["PARLEY_RATE_LIMIT_ADMIN", "some"],
  ]) {
    // No flag for the variable under test: a flag would win over it.
    const args = ["--data", dir, ...(name === "PARLEY_LISTEN" ? [] : ["--listen", "127.0.0.1:0"])]
    const r = await runParley(["serve", ...args], { env: { [name]: value } })
    assert.equal(r.timedOut, false, `${name}=${value}: the server started`)
    assert.equal(r.code, 2, `${name}=${value}: exit code; stderr ${r.stderr}`)
    assert.ok(r.stderr.includes(name), `${name}=${value}: the message names the variable: ${r.stderr}`)
  }
  // A store URL this build cannot open, from its variable, is refused the same way.
  const store = await runParley(["serve", "--listen", "127.0.0.1:0"], { env: { PARLEY_STORE: "mysql://x" } })
  assert.equal(store.code, 2, store.stderr)
})

test("cli - numbers are digits only: a sign or a blank is refused, not wrapped", { timeout: 30_000 }, async () => {
  // strtoull reads "-1" as 2^64-1: --max-append-bytes -1 used to start a
  // server with no append limit at all.
  for (const args of [
    ["--max-append-bytes", "-1"],
    ["--max-json-bytes", "-5"],
    ["--threads", " 4"],
    ["--read-budget", "+20000"],
    ["--listen", "127.0.0.1:-1"],
    ["--rate-burst-reads", "-3"],
  ]) {
    const r = await runParley(["serve", "--listen", "127.0.0.1:0", "--data", "/nonexistent-cli", ...args])
    assert.equal(r.timedOut, false, `${args.join(" ")}: the server started`)
    assert.equal(r.code, 2, `${args.join(" ")}: exit code; stderr ${r.stderr}`)
    assert.ok(r.stderr.includes(`invalid value '${args[1]}' for ${args[0]}`), `${args.join(" ")}: ${r.stderr}`)
  }
})

// ---- the manual page ---------------------------------------------------

test("cli - the man page and serve --help list the same options, with each one's variable and default", { timeout: 30_000 }, async () => {
  const help = helpOptions((await runParley(["serve", "--help"])).stdout)
  const man = manOptions(renderMan())
  const helpHeadings = help.map((o) => o.heading)
  const manHeadings = man.map((o) => o.heading)
  for (const h of helpHeadings) assert.ok(manHeadings.includes(h), `serve --help has "${h}", the man page's OPTIONS does not`)
  for (const h of manHeadings) assert.ok(helpHeadings.includes(h), `the man page has "${h}", serve --help does not`)
  assert.equal(new Set(manHeadings).size, manHeadings.length, "no option twice in the man page")

  for (const o of help) {
    if (o.flag === "--help" || o.flag === "--version") continue
    const entry = man.find((m) => m.flag === o.flag).text
    const vars = entry.match(/\bPARLEY_[A-Z_]+/g) ?? []
    assert.ok(vars.includes(envName(o.flag)), `the man page's ${o.flag} names ${envName(o.flag)}: ${entry}`)
    const d = /\(default:? ([^;,)]+)/.exec(o.text)
    assert.ok(d, `serve --help gives ${o.flag}'s default: ${o.text}`)
    assert.ok(entry.includes(`Default: ${d[1]}`), `the man page's ${o.flag} says "Default: ${d[1]}": ${entry}`)
  }
  // Both name the two kinds of store under --store.
  const store = man.find((m) => m.flag === "--store").text
  for (const scheme of ["sqlite:", "postgres://", "postgresql://"])
    assert.ok(store.includes(scheme), `the man page's --store names ${scheme}: ${store}`)
})

test("cli - the man page renders without a warning, and make install puts it where man finds it", { timeout: 60_000 }, async (t) => {
  const groff = spawnSync("groff", ["-man", "-Tutf8", "-ww", "-z", MAN_PAGE], { encoding: "utf8" })
  assert.equal(groff.status, 0)
  assert.equal(groff.stderr, "", "groff -ww warnings")
  const man = spawnSync("man", ["--warnings", "-l", MAN_PAGE], { encoding: "utf8", env: { ...process.env, MANWIDTH: "80", MANPAGER: "cat", PAGER: "cat" } })
  assert.equal(man.status, 0, man.stderr)
  assert.equal(man.stderr, "", "man --warnings -l")
  for (const section of ["SYNOPSIS", "OPTIONS", "STORE URL", "LOCAL MODE", "ENVIRONMENT", "EXIT STATUS", "FILES", "SIGNALS", "EXAMPLES"])
    assert.match(man.stdout, new RegExp(`^${section}$`, "m"), `the man page has ${section}`)

  // The install rule of the build that made the binary under test.
  const buildDir = path.dirname(PARLEY_BIN)
  if (!fs.existsSync(path.join(buildDir, "cmake_install.cmake"))) {
    t.skip(`${buildDir} is not a CMake build directory`)
    return
  }
  const prefix = fs.mkdtempSync(path.join(os.tmpdir(), "parley-install-"))
  t.after(() => fs.rmSync(prefix, { recursive: true, force: true }))
  execFileSync("cmake", ["--install", buildDir, "--prefix", prefix], { stdio: "pipe" })
  assert.ok(fs.existsSync(path.join(prefix, "bin", "parley")), "bin/parley installed")
  const found = spawnSync("man", ["-w", "parley"], { encoding: "utf8", env: { ...process.env, MANPATH: path.join(prefix, "share", "man") } })
  assert.equal(found.status, 0, `man -w parley: ${found.stderr}`)
  assert.equal(found.stdout.trim(), path.join(prefix, "share", "man", "man1", "parley.1"))
})

// ---- the systemd unit --------------------------------------------------

test("cli - the systemd unit passes systemd-analyze verify, hardened", { timeout: 60_000 }, async (t) => {
  const unit = fs.readFileSync(UNIT, "utf8")
  const keys = new Map()
  for (const line of unit.split("\n")) {
    const m = /^([A-Za-z]+)=(.*)$/.exec(line)
    if (m) keys.set(m[1], [...(keys.get(m[1]) ?? []), m[2]])
  }
  const one = (k) => (keys.get(k) ?? [])[0]
  assert.ok(one("DynamicUser") === "yes" || one("User"), "its own user")
  for (const [k, v] of [
    ["StateDirectory", "parley"],
    ["ProtectSystem", "strict"],
    ["NoNewPrivileges", "yes"],
    ["PrivateTmp", "yes"],
    ["Restart", "on-failure"],
    ["KillSignal", "SIGTERM"],
    ["RestartPreventExitStatus", "2"],
  ])
    assert.equal(one(k), v, `${k}=${v}`)
  assert.match(one("RestrictAddressFamilies") ?? "", /^AF_INET AF_INET6\b/, "RestrictAddressFamilies")
  assert.ok(keys.has("EnvironmentFile"), "an EnvironmentFile for the secrets")
  assert.ok(keys.get("Environment").includes("PARLEY_DATA=/var/lib/parley"), "the data in the state directory")
  const stopSec = Number(/^(\d+)s$/.exec(one("TimeoutStopSec") ?? "")?.[1])
  assert.ok(stopSec >= 15, `TimeoutStopSec leaves room for the graceful shutdown: ${one("TimeoutStopSec")}`)

  // verify needs ExecStart's binary: the same unit with the binary under
  // test, and nothing else changed.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "parley-unit-"))
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }))
  const copy = unit.replace(/^ExecStart=\S+/m, `ExecStart=${PARLEY_BIN}`)
  const a = unit.split("\n")
  const b = copy.split("\n")
  assert.equal(a.length, b.length)
  const changed = a.flatMap((line, i) => (line === b[i] ? [] : [[line, b[i]]]))
  assert.deepEqual(changed, [["ExecStart=/usr/local/bin/parley serve", `ExecStart=${PARLEY_BIN} serve`]])
  fs.writeFileSync(path.join(dir, "parley.service"), copy)
  // Documentation=man:parley(1) is checked too: the page from this tree.
  fs.mkdirSync(path.join(dir, "man", "man1"), { recursive: true })
  fs.copyFileSync(MAN_PAGE, path.join(dir, "man", "man1", "parley.1"))
  const env = { ...process.env, MANPATH: path.join(dir, "man") }
  const verify = spawnSync("systemd-analyze", ["verify", path.join(dir, "parley.service")], { encoding: "utf8", env })
  assert.equal(verify.error, undefined, "systemd-analyze is installed (scripts/setup)")
  assert.equal(verify.status, 0, `systemd-analyze verify: ${verify.stderr}`)
  assert.equal(verify.stderr, "", "systemd-analyze verify says nothing (an unknown key is only a warning)")

  // systemd's own exposure score, 0 (locked down) to 10: at most 2.
  const security = spawnSync("systemd-analyze", ["security", "--offline=true", "--threshold=20", path.join(dir, "parley.service")], { encoding: "utf8" })
  assert.equal(security.status, 0, `systemd-analyze security: ${security.stdout.split("\n").at(-2)}`)
})

test("cli - SIGTERM with live readers and writes ends well within the unit's TimeoutStopSec", { timeout: 60_000 }, async (t) => {
  const stopSec = Number(/^TimeoutStopSec=(\d+)s$/m.exec(fs.readFileSync(UNIT, "utf8"))[1])
  const srv = await startServer({ t })
  assert.equal((await createStream(srv.url, "live")).status, 201)
  const polls = Array.from({ length: 20 }, () =>
    request(srv.url, "/v1/stream/live?offset=now&live=long-poll", { timeoutMs: 40_000 }).catch((e) => e),
  )
  const writes = Array.from({ length: 50 }, (_, i) => append(srv.url, "live", `m${i}`).catch((e) => e))
  await new Promise((r) => setTimeout(r, 200))
  const t0 = Date.now()
  const code = await srv.stop()
  const ms = Date.now() - t0
  await Promise.all([...polls, ...writes])
  assert.equal(code, 0, srv.stderr())
  assert.ok(ms * 3 < stopSec * 1000, `the graceful shutdown took ${ms} ms; TimeoutStopSec is ${stopSec} s`)
  t.diagnostic(`graceful shutdown with 20 long-polls and 50 appends: ${ms} ms`)
})
