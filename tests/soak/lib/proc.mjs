// What a running server holds, read from /proc: resident memory and open
// file descriptors, for the churn and soak tests' before/after checks.
import { execFileSync } from "node:child_process"
import fs from "node:fs"

/** Resident set size of pid, in bytes (VmRSS). */
export function rssBytes(pid) {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"))
  if (!m) throw new Error(`no VmRSS for ${pid}`)
  return Number(m[1]) * 1024
}

/** Number of open file descriptors of pid. */
export function fdCount(pid) {
  return fs.readdirSync(`/proc/${pid}/fd`).length
}

/** Open sockets of pid (descriptors that are sockets). */
export function socketCount(pid) {
  let n = 0
  for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
    try {
      if (fs.readlinkSync(`/proc/${pid}/fd/${fd}`).startsWith("socket:")) n++
    } catch {
      // closed meanwhile
    }
  }
  return n
}

/** Poll until pred() is true or ms pass; resolves the last value of pred. */
export async function settle(pred, ms = 10_000, step = 100) {
  const end = Date.now() + ms
  for (;;) {
    const v = pred()
    if (v || Date.now() >= end) return v
    await new Promise((r) => setTimeout(r, step))
  }
}

export const MiB = 1024 * 1024

/** What pid's descriptors point at, summarised ("socket x3, /data/parley.db x2, ..."). */
export function fdSummary(pid) {
  const counts = new Map()
  for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
    let what
    try {
      what = fs.readlinkSync(`/proc/${pid}/fd/${fd}`).replace(/:\[\d+\]$/, "")
    } catch {
      continue
    }
    counts.set(what, (counts.get(what) ?? 0) + 1)
  }
  return [...counts].map(([w, n]) => `${w} x${n}`).join(", ")
}

/** TCP states of the connections pid holds on its port, summarised ("ESTAB x2, CLOSE-WAIT x1"); "" if ss(8) is missing. */
export function tcpStates(pid, port) {
  let out
  try {
    out = execFileSync("ss", ["-tanpH", `sport = :${port}`], { encoding: "utf8", maxBuffer: 64 * 1024 * 1024 })
  } catch {
    return ""
  }
  const counts = new Map()
  for (const line of out.split("\n")) {
    if (!line.includes(`pid=${pid},`)) continue
    const state = line.split(/\s+/)[0]
    counts.set(state, (counts.get(state) ?? 0) + 1)
  }
  return [...counts].map(([s, n]) => `${s} x${n}`).join(", ")
}
