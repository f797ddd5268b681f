// The example chat app in headless Chromium (Debian's /usr/bin/chromium,
// driven by playwright-core; nothing is downloaded), against the real
// parley binary ($PARLEY_BIN, else the repository's build/parley) and the
// stand-in worker, all started by lib/app.mjs as `npm start` does, on a
// temporary data directory and free loopback ports.
//
// Every page is watched for console errors and uncaught exceptions; the
// pages are 375 px wide (a phone) unless a test says otherwise, and none
// may scroll sideways. Screenshots go to .test-output/.
import assert from "node:assert/strict"
import fs from "node:fs"
import os from "node:os"
import path from "node:path"
import { after, before, test } from "node:test"
import { fileURLToPath } from "node:url"
import zlib from "node:zlib"

import { chromium } from "playwright-core"

import { REPO, startChat } from "../lib/app.mjs"
import { answerTo } from "../worker/model.mjs"

const here = path.dirname(fileURLToPath(import.meta.url))
const OUT = path.resolve(here, "..", ".test-output")
const CHROMIUM = process.env.CHROMIUM_BIN ?? "/usr/bin/chromium"
const PARLEY_BIN = process.env.PARLEY_BIN ? path.resolve(process.env.PARLEY_BIN) : path.join(REPO, "build", "parley")
const WORDS = 60 // words per answer: 61 tokens, one every DELAY_MS
const DELAY_MS = 50

let chat, browser, dataDir
before(async () => {
  fs.mkdirSync(OUT, { recursive: true })
  if (!fs.existsSync(CHROMIUM)) throw new Error(`chromium not found at ${CHROMIUM}: install the Debian package chromium (scripts/setup)`)
  if (!fs.existsSync(PARLEY_BIN)) throw new Error(`parley not found at ${PARLEY_BIN}: build it or set PARLEY_BIN`)
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "parley-chat-"))
  chat = await startChat({ parleyBin: PARLEY_BIN, dataDir, delayMs: DELAY_MS, words: WORDS, log: null })
  const args = ["--disable-dev-shm-usage"]
  if (process.getuid?.() === 0) args.push("--no-sandbox")
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args })
})
after(async () => {
  await browser?.close()
  await chat?.close()
  if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true })
})

const full = (prompt) => answerTo(prompt, WORDS).join("")

/** A fresh browser profile (its own user) and a watched page at `width` px. */
async function open(t, { width = 375 } = {}) {
  const context = await browser.newContext({ viewport: { width, height: 740 } })
  t.after(() => context.close())
  const errors = []
  const watch = (page) => {
    page.on("console", (m) => m.type() === "error" && errors.push(`${m.text()} (${m.location().url})`))
    page.on("pageerror", (e) => errors.push(String(e)))
  }
  context.on("page", watch)
  const page = await context.newPage()
  return { context, page, errors }
}

async function ready(page) {
  await page.waitForSelector("body[data-ready=true]")
}

/** Type a message and press Send. */
async function sendMessage(page, text) {
  await page.fill("#input", text)
  await page.click("#send")
}

/** The text of the answer being streamed ("" when none). */
const streamingText = (page) => page.evaluate(() => document.querySelector(".msg.assistant.streaming .text")?.textContent ?? "")

/** Wait until the streaming answer holds at least n tokens. */
async function waitForTokens(page, n) {
  await page.waitForFunction((n) => (document.querySelector(".msg.assistant.streaming .text")?.textContent ?? "").split(") ").length > n, n, { timeout: 60_000 })
}

/** The stored assistant messages on the page (not the streaming one). */
const answers = (page) => page.$$eval(".msg.assistant[data-id]", (els) => els.map((e) => ({ text: e.querySelector(".text").textContent, stopped: e.dataset.stopped === "true" })))

async function noSidewaysScroll(page, what) {
  const { scroll, client } = await page.evaluate(() => ({ scroll: document.documentElement.scrollWidth, client: document.documentElement.clientWidth }))
  assert.ok(scroll <= client, `${what}: the page is ${scroll} px wide in a ${client} px window`)
}

async function shot(page, name) {
  await page.screenshot({ path: path.join(OUT, `${name}.png`), fullPage: true })
}

test("chat - a message is sent and its answer streams in, token by token, then is stored", { timeout: 150_000 }, async (t) => {
  const { page, errors } = await open(t)
  await page.goto(chat.url)
  await ready(page)
  await noSidewaysScroll(page, "the empty chat")
  await sendMessage(page, "Hello there")
  // Seen while it streams (the Send button is a Stop button meanwhile) ...
  await waitForTokens(page, 3)
  assert.equal(await page.textContent("#send"), "Stop")
  const partial = await streamingText(page)
  assert.ok(partial.length < full("Hello there").length, "seen before the end")
  await shot(page, "chat-streaming-375")
  // ... and then stored: one user message, one assistant message, the whole answer.
  await page.waitForSelector(".msg.assistant[data-id]", { timeout: 60_000 })
  assert.deepEqual(await answers(page), [{ text: full("Hello there"), stopped: false }])
  assert.deepEqual(await page.$$eval(".msg.user[data-id] .text", (els) => els.map((e) => e.textContent)), ["Hello there"])
  assert.equal(await page.textContent("#send"), "Send")
  assert.match(page.url(), /\?c=[A-Za-z0-9_-]+$/, "the chat's id is in the URL")
  // A very long word wraps instead of widening the page.
  await sendMessage(page, "x".repeat(300))
  await page.waitForFunction(() => document.querySelectorAll(".msg.assistant[data-id]").length === 2, null, { timeout: 60_000 })
  await noSidewaysScroll(page, "a chat with a 300-character word")
  await shot(page, "chat-answered-375")
  assert.deepEqual(errors, [])
})

test("chat - a reload in the middle of an answer resumes it and finishes with every token once", { timeout: 150_000 }, async (t) => {
  const { page, errors } = await open(t, { width: 1024 })
  await page.goto(chat.url)
  await ready(page)
  await sendMessage(page, "Tell me about reloads")
  await waitForTokens(page, 4)
  const before = await streamingText(page)
  await page.reload()
  await ready(page)
  // Following again, live: the answer is still streaming after the reload ...
  await page.waitForSelector(".msg.assistant.streaming", { timeout: 30_000 })
  await waitForTokens(page, 1)
  const resumed = await streamingText(page)
  assert.ok(resumed.startsWith(before.slice(0, 20)), "the same answer, from its start")
  assert.ok(resumed.length < full("Tell me about reloads").length, `still streaming after the reload (${resumed.length} chars)`)
  await shot(page, "reload-resumed")
  // ... and it ends as the whole answer, no token twice, one assistant message.
  await page.waitForSelector(".msg.assistant[data-id]", { timeout: 60_000 })
  assert.deepEqual(await answers(page), [{ text: full("Tell me about reloads"), stopped: false }])
  assert.equal(await page.$$eval(".msg.assistant", (els) => els.length), 1)
  await shot(page, "reload-finished")
  assert.deepEqual(errors, [])
})

test("chat - stop ends the answer and keeps what was streamed, also after a reload", { timeout: 150_000 }, async (t) => {
  const { page, errors } = await open(t)
  await page.goto(chat.url)
  await ready(page)
  await sendMessage(page, "Stop me")
  await waitForTokens(page, 5)
  await page.click("#send") // the Stop button
  await page.waitForSelector(".msg.assistant[data-stopped=true]", { timeout: 30_000 })
  const [kept] = await answers(page)
  const whole = full("Stop me")
  assert.ok(kept.text.length > 0 && kept.text.length < whole.length, `a part of the answer: ${kept.text.length} of ${whole.length} chars`)
  assert.ok(whole.startsWith(kept.text), "the part is the answer's start, each token once")
  assert.equal(await page.textContent("#send"), "Send")
  await shot(page, "stop-kept-375")
  // The worker stopped: nothing more arrives, and the server has it stored the same way.
  await new Promise((r) => setTimeout(r, 5 * DELAY_MS))
  await page.reload()
  await ready(page)
  assert.deepEqual(await answers(page), [{ text: kept.text, stopped: true }])
  assert.equal(await page.$$eval(".msg.assistant.streaming", (els) => els.length), 0)
  assert.deepEqual(errors, [])
})

test("chat - a share link opens a read-only copy with no token, and later messages are not in it", { timeout: 150_000 }, async (t) => {
  const { page, errors } = await open(t)
  await page.goto(chat.url)
  await ready(page)
  await sendMessage(page, "Share this")
  await page.waitForSelector(".msg.assistant[data-id]", { timeout: 60_000 })
  await page.click("#share")
  await page.waitForSelector("#share-box:not([hidden])")
  const link = await page.inputValue("#share-link")
  assert.match(link, new RegExp(`^${chat.url}/s/[A-Za-z0-9_-]+$`))
  await noSidewaysScroll(page, "the share box")
  await shot(page, "share-link-375")
  await sendMessage(page, "After the share")
  await page.waitForFunction(() => document.querySelectorAll(".msg.assistant[data-id]").length === 2, null, { timeout: 60_000 })

  // Someone else, in a new profile: no user, no token.
  const other = await open(t)
  const toParley = []
  other.page.on("request", (r) => r.url().startsWith(chat.parleyUrl) && toParley.push({ url: r.url(), auth: r.headers().authorization ?? null }))
  await other.page.goto(link)
  await ready(other.page)
  assert.deepEqual(await other.page.$$eval(".msg .text", (els) => els.map((e) => e.textContent)), ["Share this", full("Share this")])
  assert.equal(await other.page.isVisible("#composer"), false, "read-only")
  assert.ok(toParley.length > 0, "the page read the snapshot from parley")
  assert.deepEqual(toParley.filter((r) => r.auth !== null), [], "without a token")
  await noSidewaysScroll(other.page, "the shared copy")
  await shot(other.page, "share-opened-375")
  assert.deepEqual(errors, [])
  assert.deepEqual(other.errors, [])
})

/** The texts of the stored messages shown, in order. */
const shown = (page) => page.$$eval(".msg[data-id] .text", (els) => els.map((e) => e.textContent))

/** The switcher's "i/n" under the message at position `index` (0-based) of the shown ones. */
const switcherAt = (page, index) => page.$$eval(".msg[data-id]", (els, i) => els[i]?.querySelector(".switcher .count")?.textContent ?? null, index)

/** Wait until the shown messages are exactly `texts` (and nothing streams). */
async function waitShown(page, texts) {
  await page.waitForFunction(
    (texts) => !document.querySelector(".msg.streaming") && JSON.stringify([...document.querySelectorAll(".msg[data-id] .text")].map((e) => e.textContent)) === JSON.stringify(texts),
    texts,
    { timeout: 60_000 },
  )
}

test("chat - editing a message makes a second version with its own answer; the switcher goes back and forth", { timeout: 150_000 }, async (t) => {
  const { page, errors } = await open(t)
  const toParley = []
  page.on("request", (r) => r.url().startsWith(chat.parleyUrl) && toParley.push(`${r.method()} ${new URL(r.url()).pathname}`))
  await page.goto(chat.url)
  await ready(page)
  await sendMessage(page, "Plan a trip to Lisbon")
  await waitShown(page, ["Plan a trip to Lisbon", full("Plan a trip to Lisbon")])
  assert.equal(await switcherAt(page, 0), null, "no switcher before an edit")

  await page.click(".msg.user[data-id] [data-action=edit]")
  await page.fill(".msg.user .editor textarea", "Plan a trip to Porto")
  await noSidewaysScroll(page, "a message being edited")
  await page.click(".msg.user .editor [data-action=save]")
  await page.waitForSelector(".msg.assistant.streaming", { timeout: 30_000 })
  await waitShown(page, ["Plan a trip to Porto", full("Plan a trip to Porto")])
  assert.equal(await switcherAt(page, 0), "2/2")
  await shot(page, "edit-2of2-375")

  // Back to the first version, with its own answer, and forth again.
  toParley.length = 0
  await page.click(".msg.user[data-id] [data-action=prev]")
  await waitShown(page, ["Plan a trip to Lisbon", full("Plan a trip to Lisbon")])
  assert.equal(await switcherAt(page, 0), "1/2")
  assert.equal(await page.isDisabled(".msg.user[data-id] [data-action=prev]"), true)
  assert.equal(toParley.filter((r) => /\/messages$/.test(r)).length, 1, `one messages request draws the thread and its switcher: ${toParley}`)
  await page.click(".msg.user[data-id] [data-action=next]")
  await waitShown(page, ["Plan a trip to Porto", full("Plan a trip to Porto")])
  assert.equal(await switcherAt(page, 0), "2/2")
  // The active version is the server's: a reload shows it.
  await page.reload()
  await ready(page)
  await waitShown(page, ["Plan a trip to Porto", full("Plan a trip to Porto")])
  assert.equal(await switcherAt(page, 0), "2/2")
  await noSidewaysScroll(page, "a thread with a switcher")
  assert.deepEqual(errors, [])
})

test("chat - regenerate streams a second answer; the switcher shows both", { timeout: 150_000 }, async (t) => {
  const { page, errors } = await open(t)
  await page.goto(chat.url)
  await ready(page)
  await sendMessage(page, "Say it twice")
  await waitShown(page, ["Say it twice", full("Say it twice")])
  const firstId = await page.getAttribute(".msg.assistant[data-id]", "data-id")

  await page.click(".msg.assistant[data-id] [data-action=regenerate]")
  await page.waitForSelector(".msg.assistant.streaming", { timeout: 30_000 })
  await waitForTokens(page, 2)
  await waitShown(page, ["Say it twice", full("Say it twice")])
  const secondId = await page.getAttribute(".msg.assistant[data-id]", "data-id")
  assert.notEqual(secondId, firstId, "a second answer, stored as its own message")
  assert.equal(await switcherAt(page, 1), "2/2")
  assert.equal(await switcherAt(page, 0), null, "the question is shared, not a version")
  await shot(page, "regenerate-2of2-375")

  await page.click(".msg.assistant[data-id] [data-action=prev]")
  await page.waitForFunction((id) => document.querySelector(".msg.assistant[data-id]")?.dataset.id === id, firstId, { timeout: 30_000 })
  assert.equal(await switcherAt(page, 1), "1/2")
  await page.click(".msg.assistant[data-id] [data-action=next]")
  await page.waitForFunction((id) => document.querySelector(".msg.assistant[data-id]")?.dataset.id === id, secondId, { timeout: 30_000 })
  assert.equal(await switcherAt(page, 1), "2/2")
  assert.deepEqual(await shown(page), ["Say it twice", full("Say it twice")])
  await noSidewaysScroll(page, "a regenerated answer")
  assert.deepEqual(errors, [])
})

// A 16×16 PNG (a red square), made here so the test needs no file.
function png16() {
  const crc = (buf) => {
    let c = ~0
    for (const b of buf) {
      c ^= b
      for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0xedb88320 & -(c & 1))
    }
    return ~c >>> 0
  }
  const chunk = (type, data) => {
    const len = Buffer.alloc(4)
    len.writeUInt32BE(data.length)
    const td = Buffer.concat([Buffer.from(type, "ascii"), data])
    const c = Buffer.alloc(4)
    c.writeUInt32BE(crc(td))
    return Buffer.concat([len, td, c])
  }
  const ihdr = Buffer.alloc(13)
  ihdr.writeUInt32BE(16, 0)
  ihdr.writeUInt32BE(16, 4)
  ihdr[8] = 8 // bit depth
  ihdr[9] = 2 // RGB
  const raw = Buffer.alloc(16 * (1 + 16 * 3))
  for (let y = 0; y < 16; y++) for (let x = 0; x < 16; x++) raw[y * 49 + 1 + x * 3] = 0xdd
  return Buffer.concat([Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]), chunk("IHDR", ihdr), chunk("IDAT", zlib.deflateSync(raw)), chunk("IEND", Buffer.alloc(0))])
}

test("chat - an attached image is uploaded as a blob, shown in the chat, and in the share link without a token", { timeout: 150_000 }, async (t) => {
  const { page, errors } = await open(t)
  await page.goto(chat.url)
  await ready(page)
  await page.setInputFiles("#file", { name: "red.png", mimeType: "image/png", buffer: png16() })
  await page.waitForSelector("#files:not([hidden]) .file")
  assert.match(await page.textContent("#files"), /red\.png/)
  await sendMessage(page, "What is in this picture?")
  await page.waitForSelector(".msg.user[data-id] img.attachment", { timeout: 30_000 })
  await page.waitForFunction(() => document.querySelector(".msg.user[data-id] img.attachment")?.naturalWidth === 16, null, { timeout: 30_000 })
  assert.match(await page.getAttribute(".msg.user[data-id] img.attachment", "src"), /^blob:/, "read with the token, shown from an object URL")
  assert.equal(await page.isHidden("#files"), true, "the picked file was sent")
  await waitShown(page, ["What is in this picture?", full("What is in this picture? [red.png]")])
  await noSidewaysScroll(page, "a message with an image")
  await shot(page, "attachment-375")

  await page.click("#share")
  await page.waitForSelector("#share-box:not([hidden])")
  const link = await page.inputValue("#share-link")
  const other = await open(t)
  const toParley = []
  other.page.on("request", (r) => r.url().startsWith(chat.parleyUrl) && toParley.push({ url: r.url(), auth: r.headers().authorization ?? null }))
  await other.page.goto(link)
  await ready(other.page)
  await other.page.waitForFunction(() => document.querySelector(".msg img.attachment")?.naturalWidth === 16, null, { timeout: 30_000 })
  const src = await other.page.getAttribute(".msg img.attachment", "src")
  assert.match(src, new RegExp(`^${chat.parleyUrl}/v1/snapshots/[^/]+/blobs/[0-9a-f]{64}$`), "the public snapshot blob URL")
  assert.ok(toParley.some((r) => r.url === src), "the image was read from parley")
  assert.deepEqual(toParley.filter((r) => r.auth !== null), [], "without a token")
  assert.equal(await other.page.$$eval("[data-action]", (els) => els.length), 0, "no edit or regenerate in a shared copy")
  await noSidewaysScroll(other.page, "a shared copy with an image")
  await shot(other.page, "attachment-shared-375")
  assert.deepEqual(errors, [])
  assert.deepEqual(other.errors, [])
})

test("chat - npm start's script runs parley, the worker and the page, and Ctrl-C stops them all", { timeout: 90_000 }, async () => {
  const { spawn } = await import("node:child_process")
  const data = fs.mkdtempSync(path.join(os.tmpdir(), "parley-chat-start-"))
  const proc = spawn(process.execPath, [path.join(here, "..", "start.mjs")], {
    env: { ...process.env, PARLEY_BIN, CHAT_DATA: data, PORT: "0" },
    stdio: ["ignore", "pipe", "pipe"],
  })
  try {
    let out = ""
    const urls = await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no URL printed: ${out}`)), 30_000)
      proc.stdout.setEncoding("utf8").on("data", (d) => {
        out += d
        const parley = /parley on (http:\/\/\S+)/.exec(out)
        const app = /the chat app on (http:\/\/\S+)/.exec(out)
        if (parley && app) {
          clearTimeout(timer)
          resolve({ parley: parley[1], app: app[1] })
        }
      })
      proc.once("exit", (code) => reject(new Error(`start.mjs exited (${code}): ${out}`)))
    })
    assert.match(await (await fetch(urls.app)).text(), /<title>Parley chat<\/title>/)
    assert.deepEqual(await (await fetch(`${urls.app}/api/config`)).json(), { parleyUrl: urls.parley })
    assert.equal((await fetch(`${urls.parley}/healthz`)).status, 200)
    const exited = new Promise((r) => proc.once("exit", (code, signal) => r({ code, signal })))
    proc.kill("SIGINT")
    assert.deepEqual(await exited, { code: 0, signal: null })
    await assert.rejects(fetch(`${urls.parley}/healthz`), "parley stopped with it")
  } finally {
    if (proc.exitCode === null) proc.kill("SIGKILL")
    fs.rmSync(data, { recursive: true, force: true })
  }
})
