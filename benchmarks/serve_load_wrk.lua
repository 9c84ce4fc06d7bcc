-- wrk script of benchmarks/serve_load.py: POST the PNGs in a folder (wrk ... -- FOLDER COUNT) to
-- /v1/classify in turn, count answers by status class, print one machine-readable summary line.

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  bodies = {}
  for i = 0, tonumber(args[2]) - 1 do
    local f = assert(io.open(string.format("%s/%05d.png", args[1], i), "rb"))
    bodies[#bodies + 1] = f:read("*a")
    f:close()
  end
  sent, ok, client_errors, server_errors, other = 0, 0, 0, 0, 0
end

function request()
  sent = sent + 1
  return wrk.format("POST", "/v1/classify", { ["Content-Type"] = "image/png" }, bodies[(sent % #bodies) + 1])
end

function response(status, headers, body)
  if status >= 500 then
    server_errors = server_errors + 1
  elseif status >= 400 then
    client_errors = client_errors + 1
  elseif status >= 200 and status < 300 then
    ok = ok + 1
  else
    other = other + 1
  end
end

function done(summary, latency, requests)
  local totals = { ok = 0, client_errors = 0, server_errors = 0, other = 0 }
  for _, thread in ipairs(threads) do
    for key, _ in pairs(totals) do
      totals[key] = totals[key] + thread:get(key)
    end
  end
  local e = summary.errors
  io.write(string.format("EDGECLS-WRK %d %d %d %d %d %d %.6f %.3f %.3f %.3f\n", summary.requests, totals.ok,
    totals.client_errors, totals.server_errors, totals.other, e.connect + e.read + e.write + e.timeout,
    summary.duration / 1e6, latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.mean / 1000))
end
