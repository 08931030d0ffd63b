-- wrk script for bench/ingest.py: every request is a Segment /v1/batch of BENCH_BATCH (default 20)
-- realistic "Product Viewed" track events, each with a unique messageId
--   <run id>-<thread>-<request number>-<event index>
-- so that the collector's dedup (same write key and messageId) cannot hide a lost event.
-- Environment: BENCH_WRITE_KEY (required), BENCH_RUN (run id), BENCH_BATCH.
-- done() prints one line "BENCH_JSON {...}" with the counts and latency percentiles.

local write_key = os.getenv("BENCH_WRITE_KEY") or error("BENCH_WRITE_KEY is not set")
local run_id = os.getenv("BENCH_RUN") or "run"
local batch_size = tonumber(os.getenv("BENCH_BATCH") or "20")

-- base64 for the Authorization header (HTTP Basic: write key as username, empty password).
local b64chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local function base64(data)
  return ((data:gsub(".", function(x)
    local r, b = "", x:byte()
    for i = 8, 1, -1 do r = r .. (b % 2 ^ i - b % 2 ^ (i - 1) > 0 and "1" or "0") end
    return r
  end) .. "0000"):gsub("%d%d%d?%d?%d?%d?", function(x)
    if #x < 6 then return "" end
    local c = 0
    for i = 1, 6 do c = c + (x:sub(i, i) == "1" and 2 ^ (6 - i) or 0) end
    return b64chars:sub(c + 1, c + 1)
  end) .. ({ "", "==", "=" })[#data % 3 + 1])
end

local headers = {
  ["Content-Type"] = "application/json",
  ["Authorization"] = "Basic " .. base64(write_key .. ":"),
  ["User-Agent"] = "ecrm-bench/wrk",
}

local categories = { "Games", "Books", "Kitchen", "Outdoor", "Beauty", "Toys", "Audio", "Shoes" }
local brands = { "Hasbro", "Lego", "Tefal", "Samsonite", "Innisfree", "Sony", "Asics", "Penguin" }
local agents = {
  "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36",
  "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
  "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15",
}

-- Per-thread state (each wrk thread has its own Lua state).
local threads = {}
local counter = 0

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  counter = 0
  issued = 0
  sent_bytes = 0
  math.randomseed(os.time() * 1000 + (tid or 0))
end

local function event_json(prefix, i, visitor, user_id, now, sent_at)
  local n = math.random(1, 5000)
  local cat = categories[(n % #categories) + 1]
  local price = string.format("%.2f", 5 + (n % 400) + (n % 100) / 100)
  local ts = os.date("!%Y-%m-%dT%H:%M:%S", now - (batch_size - i)) .. string.format(".%03dZ", (i * 37) % 1000)
  local user = user_id and string.format('"userId":"%s",', user_id) or ""
  return string.format(
    '{"type":"track","event":"Product Viewed","messageId":"%s-%d",' ..
    '"anonymousId":"%s",%s"timestamp":"%s",' ..
    '"properties":{"product_id":"sku-%05d","sku":"SKU-%05d","category":"%s",' ..
    '"name":"%s item %d","brand":"%s","variant":"standard","price":%s,"quantity":1,' ..
    '"currency":"KRW","position":%d,"value":%s,"list_id":"%s-top",' ..
    '"url":"https://shop.example/p/sku-%05d","image_url":"https://cdn.shop.example/img/sku-%05d.jpg"},' ..
    '"context":{"page":{"path":"/p/sku-%05d","url":"https://shop.example/p/sku-%05d",' ..
    '"referrer":"https://shop.example/c/%s","title":"%s item %d | Shop","search":""},' ..
    '"userAgent":"%s","locale":"ko-KR","timezone":"Asia/Seoul",' ..
    '"library":{"name":"ecrm.js","version":"1.0.0"},"screen":{"width":1920,"height":1080}}}',
    prefix, i, visitor, user, ts,
    n, n, cat, cat, n, brands[(n % #brands) + 1], price, i, price, cat,
    n, n, n, n, cat:lower(), cat, n,
    agents[(n % #agents) + 1])
end

function request()
  counter = counter + 1
  issued = counter
  local now = os.time()
  local prefix = string.format("%s-%d-%d", run_id, tid or 0, counter)
  local visitor_n = math.random(1, 20000)
  local visitor = string.format("anon-%s-%06d", run_id, visitor_n)
  local user_id = nil
  if visitor_n % 4 == 0 then user_id = string.format("user-%06d", visitor_n) end
  local sent_at = os.date("!%Y-%m-%dT%H:%M:%S.000Z", now)
  local parts = {}
  for i = 1, batch_size do
    parts[i] = event_json(prefix, i, visitor, user_id, now, sent_at)
  end
  local body = '{"batch":[' .. table.concat(parts, ",") .. '],"sentAt":"' .. sent_at .. '"}'
  sent_bytes = sent_bytes + #body
  return wrk.format("POST", "/v1/batch", headers, body)
end

function done(summary, latency, requests)
  local issued_total, body_total = 0, 0
  for _, t in ipairs(threads) do
    issued_total = issued_total + (t:get("issued") or 0)
    body_total = body_total + (t:get("sent_bytes") or 0)
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"issued":%d,"body_bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"p50":%d,"p90":%d,"p99":%d,"p999":%d,"max":%d,"mean":%.1f}}\n',
    summary.requests, summary.duration, summary.bytes, issued_total, body_total,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max, latency.mean))
end
