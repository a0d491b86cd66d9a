-- wrk script of bench/api_load.py: one request shape per run, chosen by environment variables.
--   APILOAD_TOKENS  file with one X-Session-Token per line (one member each)
--   APILOAD_MODE    get | book | concierge
--   APILOAD_PATH    the path of a GET
--   APILOAD_EVENTS  comma-separated event ids to book (mode book)
--   APILOAD_BOOK_ORDER  member (default) | event
-- Every request takes the next member in turn (threads interleave their counters). A booking run (order
-- "member") takes the next member each request and shifts the events by one after each round of members; order
-- "event" takes the events in turn and the next member after each round of events (so one member has as many
-- bookings in flight as there are clients). Either way its (member, event) pairs are all distinct until
-- members x events requests: each 201 is a new booking.
-- done() prints one JSON line with the counts and latency percentiles (microseconds).

local tokens = {}
for line in io.lines(os.getenv("APILOAD_TOKENS")) do
  tokens[#tokens + 1] = line
end
local mode = os.getenv("APILOAD_MODE") or "get"
local path = os.getenv("APILOAD_PATH") or "/api/v1/me"
local events = {}
for id in string.gmatch(os.getenv("APILOAD_EVENTS") or "", "%d+") do
  events[#events + 1] = id
end

local book_order = os.getenv("APILOAD_BOOK_ORDER") or "member"

local thread_count = 0
function setup(thread)
  thread:set("tid", thread_count)
  thread_count = thread_count + 1
end

local counter = 0
local nthreads = tonumber(os.getenv("APILOAD_THREADS") or "1")

function request()
  local i = (tid or 0) + nthreads * counter
  counter = counter + 1
  local token = tokens[(i % #tokens) + 1]
  if mode == "book" then
    local event
    if book_order == "member" then
      -- the next member each request, the events shifted by one after each round of members
      event = events[((i % #tokens) + math.floor(i / #tokens)) % #events + 1]
    else
      -- the events in turn, the next member after each round of events (one member books 16 events at once)
      event = events[(i % #events) + 1]
      token = tokens[(math.floor(i / #events) % #tokens) + 1]
    end
    return wrk.format("POST", "/api/v1/events/" .. event .. "/bookings",
      { ["X-Session-Token"] = token, ["Content-Type"] = "application/json" }, '{"guests": 0}')
  elseif mode == "concierge" then
    local body = '{"category": "dining", "subject": "Bench table ' .. i .. '", "details": "For two."}'
    return wrk.format("POST", "/api/v1/concierge/requests",
      { ["X-Session-Token"] = token, ["Content-Type"] = "application/json" }, body)
  end
  return wrk.format("GET", path, { ["X-Session-Token"] = token })
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "non_2xx": %d, "socket_errors": %d, "p50_us": %d, "p90_us": %d, ' ..
    '"p99_us": %d, "max_us": %d, "mean_us": %.1f}\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
