-- wrk script for bench/serve.py: GET requests read from BENCH_PATHS, one path per line, picked at
-- random per request. A line "COLD" becomes a never-seen visitor (a fresh anonymous id) on the
-- recommendations URL in BENCH_COLD_PREFIX. Browser-style: the Origin header from BENCH_ORIGIN.
-- done() prints one line "BENCH_JSON {...}" with the counts and latency percentiles.

local paths_file = os.getenv("BENCH_PATHS") or error("BENCH_PATHS is not set")
local cold_prefix = os.getenv("BENCH_COLD_PREFIX") or ""
local origin = os.getenv("BENCH_ORIGIN") or "http://bench.example"

local paths = {}
for line in io.lines(paths_file) do
  if #line > 0 then table.insert(paths, line) end
end
local threads = {}

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  math.randomseed(os.time() * 1000 + (tid or 0))
  wrk.headers["Origin"] = origin
  wrk.headers["User-Agent"] = "ecrm-bench/wrk"
end

function request()
  local path = paths[math.random(1, #paths)]
  if path == "COLD" then
    path = cold_prefix .. "cold-" .. (tid or 0) .. "-" .. math.random(1, 2000000000)
  end
  return wrk.format("GET", path)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"p50":%d,"p90":%d,"p99":%d,"p999":%d,"max":%d,"mean":%.1f}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max, latency.mean))
end
