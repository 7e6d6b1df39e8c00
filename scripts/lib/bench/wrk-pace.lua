-- wrk at a set rate, for scripts/bench (see drive.py). From the environment:
--   BENCH_RATE, BENCH_THREADS   requests per second in all; each thread paces its share
--   BENCH_METHOD, BENCH_BODY_FILE
--   BENCH_OK                    when set, any other status counts as an error (not only >= 400)
--   BENCH_TARGETS               a file of "path<TAB>authorization" lines, taken in turn
--   BENCH_BODY_TEMPLATE         a body whose "{n}" becomes a number unique to the request
-- Prints "BENCH_JSON {...}" at the end: requests, errors, p50/p99/max in microseconds.
local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clk_id, bench_timespec *tp);
]]
local ts = ffi.new("bench_timespec")
local function now_ms()
    ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
    return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end

local rate = tonumber(os.getenv("BENCH_RATE") or "100")
local threads = tonumber(os.getenv("BENCH_THREADS") or "1")
local interval = 1000 / (rate / threads)
local ok_status = tonumber(os.getenv("BENCH_OK") or "")
local targets_file = os.getenv("BENCH_TARGETS") or ""
local template = os.getenv("BENCH_BODY_TEMPLATE") or ""

wrk.method = os.getenv("BENCH_METHOD") or "GET"
local body_file = os.getenv("BENCH_BODY_FILE") or ""
if body_file ~= "" then
    local f = assert(io.open(body_file, "rb"))
    wrk.body = f:read("*a")
    f:close()
end

local all_threads = {}
local counter = 0
function setup(thread)
    counter = counter + 1
    thread:set("thread_no", counter)
    table.insert(all_threads, thread)
end

local next_at = nil
function delay()
    local now = now_ms()
    -- A thread more than 100 ms behind drops the backlog instead of bursting: the step then
    -- falls short of its rate, which counts against it.
    if next_at == nil or next_at < now - 100 then
        next_at = now
    end
    local wait = next_at - now
    next_at = next_at + interval
    if wait < 0 then
        return 0
    end
    return wait
end

bad = 0
if ok_status then
    function response(status, headers, body)
        -- 400 and above are wrk's own status errors already.
        if status ~= ok_status and status < 400 then
            bad = bad + 1
        end
    end
end

if targets_file ~= "" or template ~= "" then
    local targets = {}
    if targets_file ~= "" then
        for line in io.lines(targets_file) do
            local path, auth = line:match("^([^\t]+)\t(.*)$")
            if path then
                table.insert(targets, { path, auth })
            end
        end
    end
    local i = 0
    local seed = tostring(math.floor(now_ms()))
    function request()
        i = i + 1
        local path, headers = wrk.path, wrk.headers
        if #targets > 0 then
            local t = targets[(i - 1) % #targets + 1]
            path = t[1]
            headers = {}
            for k, v in pairs(wrk.headers) do
                headers[k] = v
            end
            headers["Authorization"] = t[2]
        end
        local body = wrk.body
        if template ~= "" then
            body = template:gsub("{n}", seed .. "-" .. tostring(thread_no) .. "-" .. tostring(i))
        end
        return wrk.format(wrk.method, path, headers, body)
    end
end

function done(summary, latency, requests)
    local wrong = 0
    for _, t in ipairs(all_threads) do
        wrong = wrong + (tonumber(t:get("bad")) or 0)
    end
    local e = summary.errors
    io.write(string.format(
        'BENCH_JSON {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "max_us": %d, ' ..
        '"errors": {"connect": %d, "read": %d, "write": %d, "timeout": %d, "status": %d, "unexpected_status": %d}}\n',
        summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), latency.max,
        e.connect, e.read, e.write, e.timeout, e.status, wrong))
end
