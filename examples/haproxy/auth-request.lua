-- poolgate as HAProxy's authorizer: an auth subrequest to /v1/forward-auth, as nginx's
-- auth_request makes one (HAProxy 2.6+: core.httpclient). Use it in a frontend with
--
--     http-request lua.poolgate-auth http://127.0.0.1:8180/v1/forward-auth
--     http-request deny deny_status 503 unless { var(txn.poolgate_allowed) -m int 1 }
--
-- poolgate judges the original method and URI (X-Original-Method, X-Original-URI) with the
-- client's Authorization and X-Id-Token headers. On a 2xx the request goes on carrying the
-- identity poolgate answered (X-Poolgate-Pool, -Sub, -Groups, -Attr-<name>), the client's own
-- X-Poolgate-* headers removed; a 401 (with its WWW-Authenticate challenge) or a 403 goes back
-- to the client as poolgate wrote it; anything else is a 503. The deny line is the guard for
-- an error inside this script, after which HAProxy would go on with the request.

local IDENTITY_PREFIX = "x-poolgate-"
-- Just above poolgate's own limit (`server.request_timeout`, 5 s by default), so that its 503
-- arrives first. HAProxy 2.6's httpclient tries up to 4 times when nothing answers: a hung
-- poolgate is a 503 after about 4 times this (measured).
local TIMEOUT_MS = 6000
local PASSED_TO_POOLGATE = { "authorization", "x-id-token" }
local PASSED_TO_CLIENT = { "www-authenticate", "content-type" }

-- HAProxy lists a header's values from index 0 (request) or 1: the first one either way.
local function first(values)
    if values == nil then
        return nil
    end
    return values[0] or values[1]
end

local function is_identity(name)
    return string.lower(name):sub(1, #IDENTITY_PREFIX) == IDENTITY_PREFIX
end

local function ask(url, headers)
    local ok, response = pcall(function()
        return core.httpclient():get({ url = url, headers = headers, timeout = TIMEOUT_MS })
    end)
    if not ok or type(response) ~= "table" or type(response.status) ~= "number" then
        return nil
    end
    return response
end

core.register_action("poolgate-auth", { "http-req" }, function(txn, url)
    local http = txn.http
    local request_headers = http:req_get_headers()
    for name, _ in pairs(request_headers) do
        if is_identity(name) then
            http:req_del_header(name)
        end
    end

    local headers = {
        ["x-original-method"] = { txn.sf:method() },
        ["x-original-uri"] = { txn.sf:pathq() },
    }
    for _, name in ipairs(PASSED_TO_POOLGATE) do
        local value = first(request_headers[name])
        if value ~= nil then
            headers[name] = { value }
        end
    end

    local response = ask(url, headers)
    local status = response and response.status or 0
    if status >= 200 and status < 300 then
        for name, values in pairs(response.headers or {}) do
            local value = first(values)
            if is_identity(name) and value ~= nil then
                http:req_set_header(name, value)
            end
        end
        txn:set_var("txn.poolgate_allowed", 1)
        return
    end

    local reply = txn:reply({ status = 503 })
    if status == 401 or status == 403 then
        reply:set_status(status)
        for _, name in ipairs(PASSED_TO_CLIENT) do
            local value = first(response.headers and response.headers[name])
            if value ~= nil then
                reply:add_header(name, value)
            end
        end
        reply:set_body(response.body or "")
    else
        reply:add_header("content-type", "text/plain")
        reply:set_body("authorization unavailable\n")
    end
    txn:done(reply)
end, 1)
