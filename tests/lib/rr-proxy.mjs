// tests/lib/rr-proxy.mjs — a small round-robin TCP proxy in front of
// several parley nodes, for tests that must see consecutive requests land
// on different nodes (tests/conformance/run.mjs with
// PARLEY_CONFORMANCE_NODES=2).
//
// HTTP clients keep connections alive, so balancing whole connections
// would send most of a test's requests to one node. This proxy balances
// requests: it reads only the framing of what the client sends (request
// line and headers up to the blank line, then a Content-Length or chunked
// body) and sends each request, byte for byte, to the next node in turn,
// over a connection of its own to that node (one per client connection and
// node, opened on first use). Responses are not parsed: every byte a node
// sends goes back to the client as is. That is correct because an HTTP/1.1
// client without pipelining (Node's fetch and http both) sends its next
// request on a connection only once the previous response has ended, so
// only one node's response is ever under way on a connection. When the
// node serving the current request closes its connection, the client's is
// closed too (a response delimited by the close); a node's idle connection
// that closes is just forgotten.
//
// mode "connection" balances whole connections instead (every request of a
// client connection goes to the node chosen when it opened), to compare.
//
// As a library: startProxy(upstreams, { mode }) → { url, port, stats(),
// close() }, upstreams being "http://host:port" URLs. As a program:
//   node tests/lib/rr-proxy.mjs [--mode request|connection] URL...
// prints "listening on http://127.0.0.1:PORT" and, on SIGTERM or SIGINT,
// the requests each node got.
import net from "node:net"
import { fileURLToPath } from "node:url"

const MAX_HEAD = 64 * 1024

/** Where one request's framing stands while its bytes go through. */
class RequestFramer {
  constructor() {
    this.state = "head" // head | length | chunk-size | chunk-data | chunk-crlf | trailer
    this.head = Buffer.alloc(0) // bytes of the head read so far
    this.left = 0 // bytes left in a length body or chunk
    this.line = "" // a chunk-size or trailer line read so far
  }

  /**
   * Feed bytes; calls onHead(headBuffer) when a request head is complete
   * and onBytes(buf) with every byte of the request (head included, after
   * onHead). Returns nothing; throws on malformed framing.
   */
  feed(buf, onHead, onBytes) {
    let i = 0
    while (i < buf.length) {
      if (this.state === "head") {
        const joined = Buffer.concat([this.head, buf.subarray(i)])
        const end = joined.indexOf("\r\n\r\n")
        if (end < 0) {
          if (joined.length > MAX_HEAD) throw new Error("request head too large")
          this.head = joined
          return
        }
        const head = joined.subarray(0, end + 4)
        const used = head.length - this.head.length
        this.head = Buffer.alloc(0)
        i += used
        const text = head.toString("latin1").toLowerCase()
        const te = /\r\ntransfer-encoding:[ \t]*([^\r]*)/.exec(text)
        const cl = /\r\ncontent-length:[ \t]*(\d+)/.exec(text)
        onHead(head)
        onBytes(head)
        if (te && /chunked/.test(te[1])) {
          this.state = "chunk-size"
          this.line = ""
        } else if (cl && Number(cl[1]) > 0) {
          this.state = "length"
          this.left = Number(cl[1])
        }
        continue
      }
      if (this.state === "length" || this.state === "chunk-data") {
        const n = Math.min(this.left, buf.length - i)
        onBytes(buf.subarray(i, i + n))
        i += n
        this.left -= n
        if (this.left === 0) this.state = this.state === "length" ? "head" : "chunk-crlf"
        continue
      }
      if (this.state === "chunk-crlf") {
        // The two bytes after a chunk's data; counted as a line.
        this.left = 2
        this.state = "chunk-crlf-bytes"
      }
      if (this.state === "chunk-crlf-bytes") {
        const n = Math.min(this.left, buf.length - i)
        onBytes(buf.subarray(i, i + n))
        i += n
        this.left -= n
        if (this.left === 0) {
          this.state = "chunk-size"
          this.line = ""
        }
        continue
      }
      // chunk-size or trailer: a line ending in CRLF.
      const nl = buf.indexOf(0x0a, i)
      const end = nl < 0 ? buf.length : nl + 1
      onBytes(buf.subarray(i, end))
      this.line += buf.subarray(i, end).toString("latin1")
      i = end
      if (nl < 0) {
        if (this.line.length > MAX_HEAD) throw new Error("chunk line too long")
        continue
      }
      const line = this.line.replace(/\r?\n$/, "")
      this.line = ""
      if (this.state === "chunk-size") {
        const size = parseInt(line.split(";")[0].trim(), 16)
        if (!Number.isFinite(size) || size < 0) throw new Error(`bad chunk size ${JSON.stringify(line)}`)
        if (size === 0) this.state = "trailer"
        else {
          this.state = "chunk-data"
          this.left = size
        }
      } else if (line === "") {
        this.state = "head" // the blank line after the trailers ends the request
      }
    }
  }
}

/** Start a proxy on a free loopback port in front of upstreams. */
export function startProxy(upstreams, { mode = "request" } = {}) {
  const targets = upstreams.map((u) => {
    const url = new URL(u)
    return { host: url.hostname, port: Number(url.port) }
  })
  const requests = targets.map(() => 0)
  const connections = targets.map(() => 0)
  let nextRequest = 0
  let nextConnection = 0
  let clients = 0 // client connections accepted
  let switches = 0 // consecutive requests (in arrival order) sent to different nodes
  let last = -1
  const sockets = new Set()

  // noDelay: a request's head and body go out as separate writes, and
  // with Nagle's algorithm the second would wait for the first one's
  // delayed ACK (40 ms on Linux) on every request.
  const server = net.createServer({ noDelay: true }, (client) => {
    sockets.add(client)
    clients++
    const framer = new RequestFramer()
    const ups = targets.map(() => null) // this client's connection to each node
    const fixed = mode === "connection" ? nextConnection++ % targets.length : -1
    let current = null // the upstream socket of the request under way
    let closed = false
    const closeAll = () => {
      if (closed) return
      closed = true
      client.destroy()
      for (const u of ups) u?.destroy()
    }
    const upstream = (k) => {
      if (ups[k]) return ups[k]
      const u = net.connect({ ...targets[k], noDelay: true })
      connections[k]++
      sockets.add(u)
      ups[k] = u
      u.on("data", (d) => {
        if (!client.write(d)) {
          u.pause()
          client.once("drain", () => u.resume())
        }
      })
      u.on("error", () => {})
      u.on("close", () => {
        sockets.delete(u)
        if (ups[k] === u) ups[k] = null
        // The response under way ended with the connection: so does the client's.
        if (current === u) client.end()
      })
      return u
    }
    client.on("data", (buf) => {
      try {
        framer.feed(
          buf,
          () => {
            const k = fixed >= 0 ? fixed : nextRequest++ % targets.length
            requests[k]++
            if (last >= 0 && last !== k) switches++
            last = k
            current = upstream(k)
          },
          (bytes) => current.write(bytes),
        )
      } catch {
        closeAll()
      }
    })
    client.on("end", () => {
      for (const u of ups) u?.end()
    })
    client.on("error", () => {})
    client.on("close", () => {
      sockets.delete(client)
      closeAll()
    })
  })

  return new Promise((resolve, reject) => {
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const port = server.address().port
      resolve({
        port,
        url: `http://127.0.0.1:${port}`,
        stats: () => ({ mode, clients, requests: [...requests], connections: [...connections], switches }),
        close: () =>
          new Promise((ok) => {
            for (const s of sockets) s.destroy()
            server.close(() => ok())
          }),
      })
    })
  })
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2)
  let mode = "request"
  if (args[0] === "--mode") {
    mode = args[1]
    args.splice(0, 2)
  }
  if (!args.length || !["request", "connection"].includes(mode)) {
    console.error("usage: rr-proxy.mjs [--mode request|connection] http://host:port...")
    process.exit(2)
  }
  const proxy = await startProxy(args, { mode })
  console.log(`listening on ${proxy.url}`)
  for (const sig of ["SIGTERM", "SIGINT"]) {
    process.once(sig, async () => {
      console.log(JSON.stringify(proxy.stats()))
      await proxy.close()
      process.exit(0)
    })
  }
}
