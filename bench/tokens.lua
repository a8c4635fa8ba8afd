-- wrk script for bench/load.sh: POST the JSON in $BODY to the URL's path, each request with the
-- next bearer token of a file (one token a line), cycling through the file.
--
--   BODY='{...}' wrk -tT -cC -dD -s bench/tokens.lua URL -- TOKENS_FILE T [MAX_REQUESTS DONE_PREFIX]
--
-- The token goes in an `Authorization: Bearer` header, unless $BODY contains the placeholder
-- @TOKEN@: then each request's body carries the token there instead (Cerbos's auxData.jwt.token),
-- and no Authorization header is sent. @SUB@ in $BODY is replaced by the token's `sub` claim,
-- read from its payload once, at start.
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

-- Placeholders in a templated body, told apart from literal pieces by identity.
local TOKEN, SUB = {}, {}

local B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
local b64_value = {}
for i = 1, #B64URL do
  b64_value[B64URL:sub(i, i)] = i - 1
end

-- Decodes unpadded base64url (a JWT segment); arithmetic only, Lua 5.1 has no bit operators.
local function b64url_decode(text)
  local out, acc, nbits = {}, 0, 0
  for c in text:gmatch(".") do
    local v = b64_value[c]
    if v then
      acc = acc * 64 + v
      nbits = nbits + 6
      if nbits >= 8 then
        nbits = nbits - 8
        local byte = math.floor(acc / 2 ^ nbits)
        out[#out + 1] = string.char(byte)
        acc = acc - byte * 2 ^ nbits
      end
    end
  end
  return table.concat(out)
end

local function sub_of(token)
  local payload = token:match("^[^.]+%.([^.]+)%.")
  local sub = payload and b64url_decode(payload):match('"sub"%s*:%s*"([^"]*)"')
  if not sub then
    error("no sub claim in token " .. token:sub(1, 40) .. "...")
  end
  return sub
end

-- Splits BODY at @TOKEN@ and @SUB@ into literal pieces and placeholders.
local function template(body)
  local pieces, from = {}, 1
  while true do
    local at, to, name = body:find("@(%u+)@", from)
    if not at or (name ~= "TOKEN" and name ~= "SUB") then
      if at then
        error("unknown placeholder @" .. name .. "@ in BODY")
      end
      pieces[#pieces + 1] = body:sub(from)
      return pieces
    end
    pieces[#pieces + 1] = body:sub(from, at - 1)
    pieces[#pieces + 1] = name == "TOKEN" and TOKEN or SUB
    from = to + 1
  end
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
  local start = "POST " .. wrk.path .. " HTTP/1.1\r\nHost: " .. wrk.host .. "\r\nContent-Type: application/json\r\n"
  if body:find("@TOKEN@", 1, true) then
    pieces = template(body)
    head = start .. "Content-Length: "
    subs = {}
    if body:find("@SUB@", 1, true) then
      for i, token in ipairs(tokens) do
        subs[i] = sub_of(token)
      end
    end
  else
    head = start .. "Content-Length: " .. #body .. "\r\nAuthorization: Bearer "
    tail = "\r\n\r\n" .. body
  end
  next_token = 1
  passes = 1
  sent = 0
  limit = max > 0 and math.ceil(max / nthreads) or nil
end

-- A request whose body carries the token (and maybe its sub).
local function templated(token, sub)
  local parts = {}
  for i = 1, #pieces do
    local piece = pieces[i]
    parts[i] = piece == TOKEN and token or piece == SUB and sub or piece
  end
  local body = table.concat(parts)
  return head .. #body .. "\r\n\r\n" .. body
end

function request()
  if next_token > #tokens then
    next_token = 1
    passes = passes + 1
  end
  local i = next_token
  next_token = next_token + 1
  sent = sent + 1
  if limit and sent == limit then
    wrk.thread:stop()
    io.open(done_file, "w"):close()
  end
  if pieces then
    return templated(tokens[i], subs[i])
  end
  return head .. tokens[i] .. tail
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
