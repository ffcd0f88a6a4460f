-- Client credentials (bench-peers/token/run.sh): one fixed POST /token with client_secret_basic.
-- BASIC: the `Authorization: Basic` value. Counts statuses; a correct run is all 200.
wrk.method = "POST"
wrk.path = os.getenv("TOKEN_PATH") or "/token"
wrk.body = "grant_type=client_credentials"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "Basic " .. os.getenv("BASIC")

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  counts = {}
end

function response(status, headers, body)
  counts[status] = (counts[status] or 0) + 1
end

function done(summary, latency, requests)
  local ok, other = 0, 0
  for _, t in ipairs(threads) do
    for k, v in pairs(t:get("counts")) do
      if k == 200 then ok = ok + v else other = other + v; io.write(string.format("status %d: %d\n", k, v)) end
    end
  end
  io.write(string.format("RESULT ok=%d non200=%d\n", ok, other))
end
