-- Refresh-token rotation (bench-peers/token/run.sh). A pool of refresh tokens (read from
-- $POOL_IN, one a line) lives in the Lua state: each request takes the oldest token, each
-- 200 response's new `refresh_token` goes back at the end. A token is never sent twice, so a
-- correct run is all 200; a reuse would revoke its grant and show up as 400s. The tokens left
-- at the end are written to $POOL_OUT (for the next run: warm-up, then measurement).
-- CLIENT_ID: the public client the tokens belong to.
local path = os.getenv("TOKEN_PATH") or "/token"
local client = os.getenv("CLIENT_ID")
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  pool, head, tail = {}, 1, 0
  counts, empty = {}, 0
  for line in io.lines(os.getenv("POOL_IN")) do
    if #line > 0 then tail = tail + 1; pool[tail] = line end
  end
end

function request()
  local token
  if head <= tail then
    token = pool[head]; pool[head] = nil; head = head + 1
  else
    -- Only when every token is in flight or lost: counted, and answered 400 (unknown token).
    empty = empty + 1
    token = "pool-empty"
  end
  return wrk.format("POST", path, { ["Content-Type"] = "application/x-www-form-urlencoded" },
    "grant_type=refresh_token&client_id=" .. client .. "&refresh_token=" .. token)
end

function response(status, headers, body)
  counts[status] = (counts[status] or 0) + 1
  if status == 200 then
    local next_token = body:match('"refresh_token"%s*:%s*"([^"]+)"')
    if next_token then tail = tail + 1; pool[tail] = next_token else counts[0] = (counts[0] or 0) + 1 end
  end
end

function done(summary, latency, requests)
  local ok, other, left = 0, 0, {}
  for _, t in ipairs(threads) do
    for k, v in pairs(t:get("counts")) do
      if k == 200 then ok = ok + v else other = other + v; io.write(string.format("status %d: %d\n", k, v)) end
    end
    local p, h, tl = t:get("pool"), t:get("head"), t:get("tail")
    for i = h, tl do left[#left + 1] = p[i] end
    if t:get("empty") > 0 then io.write(string.format("pool empty %d times\n", t:get("empty"))) end
  end
  local f = assert(io.open(os.getenv("POOL_OUT"), "w"))
  f:write(table.concat(left, "\n"), "\n")
  f:close()
  io.write(string.format("RESULT ok=%d non200=%d pool_left=%d\n", ok, other, #left))
end
