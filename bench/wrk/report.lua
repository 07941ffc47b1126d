-- Shared by every scenario: counts non-2xx answers in each thread and, when the run
-- is done, prints one line `WRK_JSON {...}` that bench/api.py reads.
-- Loaded with dofile() by the scenario scripts (wrk runs them from bench/wrk/).
-- A script may name numeric globals of its threads in COUNTERS: their sums are reported too.

local threads = {}

function setup(thread)
   table.insert(threads, thread)
   thread:set("thread_index", #threads)
end

non2xx = 0
first_error = ""

function response(status, headers, body)
   if status < 200 or status > 299 then
      non2xx = non2xx + 1
      if first_error == "" then
         first_error = tostring(status) .. " " .. string.sub(body or "", 1, 300)
      end
   end
end

local function quote(s)
   s = string.gsub(s, '[%c"\\]', function(c) return string.format("\\u%04x", string.byte(c)) end)
   return '"' .. s .. '"'
end

function done(summary, latency, requests)
   local bad, sample = 0, ""
   for _, thread in ipairs(threads) do
      bad = bad + (thread:get("non2xx") or 0)
      local e = thread:get("first_error") or ""
      if sample == "" then sample = e end
   end
   local counts = {}
   for _, name in ipairs(COUNTERS or {}) do
      local n = 0
      for _, thread in ipairs(threads) do
         n = n + (thread:get(name) or 0)
      end
      counts[#counts + 1] = string.format('"%s": %d', name, n)
   end
   local e = summary.errors
   local seconds = summary.duration / 1e6
   io.write(string.format(
      'WRK_JSON {"requests": %d, "duration_s": %.3f, "rps": %.1f, "bytes": %d, ' ..
      '"latency_us": {"mean": %.1f, "stdev": %.1f, "max": %d, "p50": %d, "p90": %d, "p99": %d, "p999": %d}, ' ..
      '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, ' ..
      '"non2xx": %d, "first_error": %s, "counters": {%s}}\n',
      summary.requests, seconds, summary.requests / seconds, summary.bytes,
      latency.mean, latency.stdev, latency.max,
      latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9),
      e.connect, e.read, e.write, e.status, e.timeout,
      bad, quote(sample), table.concat(counts, ", ")))
end
