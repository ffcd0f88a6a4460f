-- Hostile half of the soak (bench-peers/soak/run.sh): rotating bad credentials; counts statuses.
local valid = os.getenv("TOKEN")
local hostile = {
  "x." .. string.rep("A", 9000),
  valid .. "x",
  "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.",
  "a.b.c",
  "mr_0000000000000000_" .. string.rep("a", 43) .. "000000",
}
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  n = 0
  counts = {}
end

function request()
  n = n + 1
  return wrk.format("GET", "/datasets", { ["Authorization"] = "Bearer " .. hostile[n % #hostile + 1] })
end

function response(status, headers, body)
  counts[status] = (counts[status] or 0) + 1
end

function done(summary, latency, requests)
  local total = {}
  for _, t in ipairs(threads) do
    for k, v in pairs(t:get("counts")) do
      total[k] = (total[k] or 0) + v
    end
  end
  for k, v in pairs(total) do
    io.write(string.format("hostile status %s: %d\n", k, v))
  end
end
