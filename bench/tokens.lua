-- wrk script for bench/load.sh: POST the JSON in $BODY to the URL's path, each request with the
-- next bearer token of a file (one token a line), cycling through the file.
--
--   BODY='{...}' wrk -tT -cC -dD -s bench/tokens.lua URL -- TOKENS_FILE T [MAX_REQUESTS DONE_PREFIX]
--
-- T must repeat wrk's thread count: thread i of T takes lines i, i+T, i+2T, ... so no two threads
-- share a token. A pass is one trip through a thread's share; `passes` in the result is the most
-- any thread started, so `passes=1` means that no token was sent twice.
-- With MAX_REQUESTS, every thread stops after sending its part of that many requests (the
-- requests still in flight then are not counted) and creates the file DONE_PREFIX.<thread>.
-- wrk itself still runs for the whole -d: set it long, wait for the T files, then send wrk
-- SIGINT, which ends the run with the usual summary.
--
-- Prints one line for bench/load.sh to read:
--   result requests=N seconds=S rps=R p50_us=P p99_us=Q non2xx=X errors=E passes=K
-- `non2xx` is wrk's count of answers with a status of 400 or more (wrk counts no 3xx there).

local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  local file, nthreads, max = args[1], tonumber(args[2]), tonumber(args[3] or "0")
  done_file = args[4] and (args[4] .. "." .. id)
  tokens = {}
  local line_no = 0
  for line in io.lines(file) do
    if line_no % nthreads == id and line ~= "" then
      tokens[#tokens + 1] = line
    end
    line_no = line_no + 1
  end
  if #tokens == 0 then
    error("no tokens for thread " .. id .. " in " .. file)
  end
  local body = os.getenv("BODY")
  head = "POST " .. wrk.path .. " HTTP/1.1\r\nHost: " .. wrk.host .. "\r\nContent-Type: application/json\r\n"
    .. "Content-Length: " .. #body .. "\r\nAuthorization: Bearer "
  tail = "\r\n\r\n" .. body
  next_token = 1
  passes = 1
  sent = 0
  limit = max > 0 and math.ceil(max / nthreads) or nil
end

function request()
  if next_token > #tokens then
    next_token = 1
    passes = passes + 1
  end
  local token = tokens[next_token]
  next_token = next_token + 1
  sent = sent + 1
  if limit and sent == limit then
    wrk.thread:stop()
    io.open(done_file, "w"):close()
  end
  return head .. token .. tail
end

function done(summary, latency, requests)
  local passes = 0
  for _, thread in ipairs(threads) do
    passes = math.max(passes, thread:get("passes"))
  end
  local errors = summary.errors
  local seconds = summary.duration / 1e6
  io.write(string.format("result requests=%d seconds=%.3f rps=%.1f p50_us=%.0f p99_us=%.0f non2xx=%d errors=%d passes=%d\n",
    summary.requests, seconds, summary.requests / seconds, latency:percentile(50), latency:percentile(99),
    errors.status, errors.connect + errors.read + errors.write + errors.timeout, passes))
end
