-- wrk script for W1: POST a fixed 1 KiB JSON object to one or more streams.
--
--   wrk -t2 -c64 -d10s --latency -s post.lua http://127.0.0.1:PORT -- PREFIX N T
--
-- PREFIX is the stream path without its number (e.g. /v1/stream/w1-many-),
-- N how many streams there are: PREFIX0 .. PREFIX(N-1), created beforehand,
-- and T the thread count given to wrk with -t. Each thread takes the streams congruent to its id modulo the
-- thread count and walks them round robin, so the requests in flight are
-- spread evenly over all N streams. With N = 1 every request goes to PREFIX0.
-- done() prints one machine-readable line, W1RESULT, for bench/w1.sh.

local counter = 0

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
end

-- The body: a JSON object of exactly 1024 bytes.
local function make_body()
  local head = '{"type":"message","role":"user","author":"bench","text":"'
  local tail = '"}'
  local fill = 1024 - #head - #tail
  local words = "the quick brown fox jumps over the lazy dog "
  local text = string.rep(words, math.ceil(fill / #words)):sub(1, fill)
  return head .. text .. tail
end

local body = make_body()
assert(#body == 1024, "body is " .. #body .. " bytes")

local headers = { ["Content-Type"] = "application/json" }
local prefix, nstreams, tid, nthreads, i

function init(args)
  prefix = args[1] or "/v1/stream/w1-one-"
  nstreams = tonumber(args[2] or "1")
  tid = id or 0
  nthreads = tonumber(args[3] or "2")
  i = 0
end

function request()
  local s = (i * nthreads + tid) % nstreams
  i = i + 1
  return wrk.format("POST", prefix .. s, headers, body)
end

function done(summary, latency, requests)
  local secs = summary.duration / 1e6
  local e = summary.errors
  io.write(string.format(
    "W1RESULT rps=%.1f p50_us=%d p99_us=%d requests=%d non2xx=%d socket_errors=%d\n",
    summary.requests / secs, latency:percentile(50), latency:percentile(99),
    summary.requests, e.status, e.connect + e.read + e.write + e.timeout))
end
