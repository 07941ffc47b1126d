-- CreateSession then the sandbox PaySession on the session it created: PaySession needs a
-- pending session every time, so the two are measured as pairs. Each thread keeps a queue of
-- the sessions its CreateSession answers named; request() pays the oldest one waiting and
-- creates a new one when none waits, so about half the requests are each call.
-- Arguments after `--`: the sandbox API key, the game id.
dofile("report.lua")

COUNTERS = {"created", "paid"}
created = 0
paid = 0

local create_req, key
local waiting, head, tail = {}, 1, 0

function init(args)
   key = args[1]
   local game = args[2] or "bench_game"
   local body = '{"game_id":"' .. game .. '","user_id":"player_42",' ..
      '"item":{"title":"50 Gold Coins","price":499,"currency":"USD"},' ..
      '"return_url":"mygame://payment-complete"}'
   create_req = wrk.format("POST", "/pay.v1.PaymentService/CreateSession", {
      ["Content-Type"] = "application/json",
      ["Authorization"] = "Bearer " .. key,
   }, body)
end

function request()
   if head <= tail then
      local id = waiting[head]
      waiting[head] = nil
      head = head + 1
      return wrk.format("POST", "/pay.v1.SandboxService/PaySession", {
         ["Content-Type"] = "application/json",
         ["Authorization"] = "Bearer " .. key,
      }, '{"session_id":"' .. id .. '"}')
   end
   return create_req
end

local count_status = response

function response(status, headers, body)
   count_status(status, headers, body)
   if status < 200 or status > 299 or not body then
      return
   end
   if string.find(body, '"payment_url"', 1, true) then
      local id = string.match(body, '"id"%s*:%s*"([^"]+)"')
      if id then
         created = created + 1
         tail = tail + 1
         waiting[tail] = id
      end
   else
      paid = paid + 1
   end
end
