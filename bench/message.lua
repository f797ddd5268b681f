-- wrk script for W2 and W3: POST a user message of 1 KiB content to
-- conversations, each request with an Idempotency-Key.
--
--   wrk -t2 -c64 -d10s --latency -s message.lua http://127.0.0.1:PORT -- MODE TAG IDS T
--
-- MODE  w2: every request carries a new key, TAG-<thread id>-<counter>
--           (the counter is per thread; wrk's Lua API does not name the
--           connection a request goes out on, so thread id and counter are
--           what make the key unique; TAG must differ between wrk runs on the
--           same server, or a key would come back as a replay). IDS is a
--           comma-separated list of conversation ids, created beforehand;
--           each thread takes the conversations congruent to its id modulo
--           the thread count and walks them round robin, as post.lua does
--           with streams.
--       w3: every request is the same: the first id of IDS, and TAG as the
--           key, sent once beforehand, so each answer is a replay.
-- T is the thread count given to wrk with -t.
-- done() prints one machine-readable line, MSGRESULT, for bench/w2.sh; sent=
-- counts the requests handed to wrk to send (some are still unanswered when
-- wrk stops), ok_rps the 2xx answers per second (wrk counts a status >= 400
-- as an error).
-- With MSG_STATUSES=1 in the environment, it also counts the answers by
-- status (and the replays, Idempotent-Replayed: true) and prints them as
-- MSGSTATUS; that makes wrk parse every response in Lua, so it is for a
-- probe run, not for a measured one.

local counter = 0
local threads = {}

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

-- The content: 1,024 bytes of text. The body is the message object around it.
local function make_body()
  local words = "the quick brown fox jumps over the lazy dog "
  local text = string.rep(words, math.ceil(1024 / #words)):sub(1, 1024)
  return '{"role":"user","content":"' .. text .. '"}'
end

local body = make_body()
assert(#body == 1024 + 28, "body is " .. #body .. " bytes")

local MARK = "@@KEY@@"
local mode, tag, tid, nthreads, i
local heads, tails = {}, {}   -- each request split around its key
local fixed                   -- W3: the one request
sent = 0

local function split(path, key)
  local req = wrk.format("POST", path,
    { ["Content-Type"] = "application/json", ["Idempotency-Key"] = key }, body)
  local s, e = req:find(MARK, 1, true)
  if not s then return req end
  return req:sub(1, s - 1), req:sub(e + 1)
end

function init(args)
  mode = args[1] or "w2"
  tag = args[2] or "w2"
  local ids = {}
  for id in string.gmatch(args[3] or "", "[^,]+") do table.insert(ids, id) end
  assert(#ids > 0, "no conversation ids")
  tid = id or 0
  nthreads = tonumber(args[4] or "2")
  i = 0
  if mode == "w3" then
    fixed = split("/v1/conversations/" .. ids[1] .. "/messages", tag)
  else
    -- this thread's conversations, in the order it walks them (with more
    -- threads than conversations, a thread shares one)
    local mine = {}
    for c = tid, #ids - 1, nthreads do table.insert(mine, ids[c + 1]) end
    if #mine == 0 then mine = { ids[tid % #ids + 1] } end
    for _, cid in ipairs(mine) do
      local h, t = split("/v1/conversations/" .. cid .. "/messages", MARK)
      table.insert(heads, h)
      table.insert(tails, t)
    end
  end
end

function request()
  sent = sent + 1
  if fixed then return fixed end
  local c = i % #heads + 1
  i = i + 1
  return heads[c] .. tag .. "-" .. tid .. "-" .. i .. tails[c]
end

if os.getenv("MSG_STATUSES") == "1" then
  statuses = {}
  replayed = 0
  function response(status, headers, body)
    statuses[status] = (statuses[status] or 0) + 1
    if headers["Idempotent-Replayed"] == "true" then replayed = replayed + 1 end
  end
end

function done(summary, latency, requests)
  local secs = summary.duration / 1e6
  local e = summary.errors
  local total_sent = 0
  for _, t in ipairs(threads) do total_sent = total_sent + (t:get("sent") or 0) end
  io.write(string.format(
    "MSGRESULT rps=%.1f ok_rps=%.1f p50_us=%d p99_us=%d max_us=%d requests=%d non2xx=%d socket_errors=%d sent=%d\n",
    summary.requests / secs, (summary.requests - e.status) / secs,
    latency:percentile(50), latency:percentile(99), latency.max,
    summary.requests, e.status, e.connect + e.read + e.write + e.timeout, total_sent))
  if statuses then
    local all, rep = {}, 0
    for _, t in ipairs(threads) do
      for st, n in pairs(t:get("statuses") or {}) do all[st] = (all[st] or 0) + n end
      rep = rep + (t:get("replayed") or 0)
    end
    local keys = {}
    for st in pairs(all) do table.insert(keys, st) end
    table.sort(keys)
    local parts = {}
    for _, st in ipairs(keys) do table.insert(parts, st .. "=" .. all[st]) end
    io.write("MSGSTATUS " .. table.concat(parts, " ") .. " replayed=" .. rep .. "\n")
  end
end
