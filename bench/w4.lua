-- wrk script for W4 (catch-up reads) and for building its stream.
--
--   wrk -t2 -c64 -d60s -s w4.lua URL -- load PATH COUNT THREADS
--     appends the 1 KiB JSON object of post.lua to PATH, one message per
--     request; each thread stops sending after COUNT / THREADS answers (wrk
--     itself still waits for the duration to end; w4.sh reads the stream's
--     tail afterwards).
--   wrk -t2 -c64 -d10s --latency -s w4.lua URL -- read PATH MAXOFF [MINOFF]
--     GETs PATH?offset=0000000000000000_<n>, n uniformly random in
--     [MINOFF, MAXOFF] (MINOFF 0 by default), a new n per request; prints
--     W4RESULT. The query string
--     is sent to nginx too (it ignores it for a static file), so both peers
--     get requests of the same size.
-- done() prints W4RESULT (done() runs apart from the threads and does not
-- know the mode; for a load run only requests= matters).

local counter = 0
function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
end

local function make_body()
  local head = '{"type":"message","role":"user","author":"bench","text":"'
  local tail = '"}'
  local fill = 1024 - #head - #tail
  local words = "the quick brown fox jumps over the lazy dog "
  local text = string.rep(words, math.ceil(fill / #words)):sub(1, fill)
  return head .. text .. tail
end

local mode, path, minoff, maxoff, quota, answered
local body = make_body()
local headers = { ["Content-Type"] = "application/json" }

function init(args)
  mode = args[1] or "read"
  path = args[2] or "/v1/stream/w4"
  answered = 0
  if mode == "load" then
    quota = math.ceil(tonumber(args[3] or "1000") / tonumber(args[4] or "2"))
  else
    maxoff = tonumber(args[3] or "0")
    minoff = tonumber(args[4] or "0")
    math.randomseed(os.time() * 1000 + (id or 0) * 7919)
    -- the response callback slows wrk down; reads do without it
    response = nil
  end
end

function request()
  if mode == "load" then
    return wrk.format("POST", path, headers, body)
  end
  return wrk.format("GET", string.format("%s?offset=0000000000000000_%016d", path,
    math.random(minoff, maxoff)))
end

function response(status, hdrs, b)
  answered = answered + 1
  if answered >= quota then wrk.thread:stop() end
end

function done(summary, latency, requests)
  local secs = summary.duration / 1e6
  local e = summary.errors
  io.write(string.format(
    "W4RESULT rps=%.1f p50_us=%d p99_us=%d requests=%d non2xx=%d socket_errors=%d bytes_per_response=%.0f\n",
    summary.requests / secs, latency:percentile(50), latency:percentile(99),
    summary.requests, e.status, e.connect + e.read + e.write + e.timeout,
    summary.requests > 0 and summary.bytes / summary.requests or 0))
end
