// What the browser tests share: the pages bundled from the built SDK
// (esbuild), an app server that serves them and answers /api/chat with
// answerChat over the AI SDK's mock model, and headless Chromium (Debian's
// /usr/bin/chromium, driven by playwright-core; nothing is downloaded).
// Parley itself is started by the client tests' helper (a free loopback
// port, a temporary data directory).
import fs from "node:fs"
import http from "node:http"
import path from "node:path"
import { after } from "node:test"
import { fileURLToPath } from "node:url"
import { streamText } from "ai"
import { MockLanguageModelV4 } from "ai/test"
import { build } from "esbuild"
import { chromium } from "playwright-core"

import { answerChat } from "../dist/ai-server.js"
import { createClient } from "../dist/index.js"

export { mintJwt, sleep, startServer, until } from "../.test-build/test/lib/server.js"

const here = path.dirname(fileURLToPath(import.meta.url))
export const CHROMIUM = process.env.CHROMIUM_BIN ?? "/usr/bin/chromium"
export const ADMIN = "browser-admin"
export const SECRET = "browser-secret"
export const TOKENS = Array.from({ length: 30 }, (_, i) => `w${i} `)
export const FULL = TOKENS.join("")

/** Screenshots and logs go here (kept after the run). */
export const OUT = path.resolve(here, "..", ".test-build", "browser")
fs.mkdirSync(OUT, { recursive: true })

let bundles = null
/** sdk.js (window.Parley) and chat.js (the useChat app), built once per process. */
async function bundle() {
  bundles ??= build({
    entryPoints: { sdk: path.join(here, "pages", "sdk.ts"), chat: path.join(here, "pages", "chat.tsx") },
    bundle: true,
    format: "esm",
    platform: "browser",
    target: "es2022",
    jsx: "automatic",
    minify: true,
    write: false,
    outdir: "/",
    define: { "process.env.NODE_ENV": '"production"' },
    logLevel: "error",
  }).then((r) => Object.fromEntries(r.outputFiles.map((f) => [path.basename(f.path), f.contents])))
  return bundles
}

/** The AI SDK's mock model: TOKENS, one every delayMs. */
export function slowModel(delayMs) {
  return new MockLanguageModelV4({
    doStream: async () => {
      let i = -2
      return {
        stream: new ReadableStream({
          async pull(c) {
            if (i === -2) c.enqueue({ type: "stream-start", warnings: [] })
            else if (i === -1) c.enqueue({ type: "text-start", id: "t" })
            else if (i < TOKENS.length) {
              await new Promise((r) => setTimeout(r, delayMs))
              c.enqueue({ type: "text-delta", id: "t", delta: TOKENS[i] })
            } else {
              c.enqueue({ type: "text-end", id: "t" })
              c.enqueue({ type: "finish", finishReason: { unified: "stop", raw: "stop" }, usage: { inputTokens: { total: 1 }, outputTokens: { total: TOKENS.length } } })
              c.close()
            }
            i++
          },
        }),
      }
    },
  })
}

/**
 * The app: GET /page.html, /chat.html, /sdk.js, /chat.js; POST /api/chat
 * {chatId} answers the conversation's pending sessions (answerChat with the
 * admin key) — the route handler an app would write.
 */
export async function startApp(parleyUrl, { delayMs = 80 } = {}) {
  const files = await bundle()
  const admin = createClient({ baseUrl: parleyUrl, token: ADMIN, outbox: "memory" })
  const model = slowModel(delayMs)
  const turns = []
  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url, "http://x")
    if (req.method === "POST" && url.pathname === "/api/chat") {
      let body = ""
      for await (const d of req) body += d
      const { chatId } = JSON.parse(body)
      try {
        const done = await answerChat(admin, chatId, ({ messages, signal }) =>
          streamText({ model, messages: [{ role: "user", content: messages.at(-1).parts.map((p) => p.text ?? "").join("") }], abortSignal: signal }),
        )
        turns.push(...done)
        res.writeHead(200, { "Content-Type": "application/json" }).end(JSON.stringify(done))
      } catch (e) {
        res.writeHead(500).end(String(e))
      }
      return
    }
    const name = url.pathname.slice(1)
    if (name === "page.html" || name === "chat.html") {
      res.writeHead(200, { "Content-Type": "text/html" }).end(fs.readFileSync(path.join(here, "pages", name)))
    } else if (files[name]) {
      res.writeHead(200, { "Content-Type": "text/javascript" }).end(Buffer.from(files[name]))
    } else if (name === "favicon.ico") res.writeHead(204).end()
    else res.writeHead(404).end()
  })
  await new Promise((r) => server.listen(0, "127.0.0.1", r))
  const app = { url: `http://127.0.0.1:${server.address().port}`, turns, admin }
  after(() => {
    admin.close()
    server.closeAllConnections()
    server.close()
  })
  return app
}

/** Headless Chromium; fails (never skips) when the binary is missing. */
export async function launch() {
  if (!fs.existsSync(CHROMIUM)) throw new Error(`chromium not found at ${CHROMIUM}: install the Debian package chromium (scripts/setup)`)
  const args = ["--disable-dev-shm-usage"]
  if (process.getuid?.() === 0) args.push("--no-sandbox")
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args })
  after(() => browser.close())
  return browser
}

/** A page whose console errors and uncaught exceptions are collected in `errors`. */
export async function watchedPage(context, errors) {
  const page = await context.newPage()
  page.on("console", (m) => {
    if (m.type() === "error") errors.push(`${m.text()} (${m.location().url})`)
  })
  page.on("pageerror", (e) => errors.push(String(e)))
  return page
}

export function query(params) {
  return new URLSearchParams(params).toString()
}
