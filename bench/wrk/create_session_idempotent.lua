-- CreateSession with a fresh Idempotency-Key on every request (what a careful client sends):
-- adds the claim and the stored answer, two more write transactions.
-- Arguments after `--`: the sandbox API key, the game id.
dofile("report.lua")

local key, game, body
local counter = 0
local tag

function init(args)
   key, game = args[1], args[2] or "bench_game"
   body = '{"game_id":"' .. game .. '","user_id":"player_42",' ..
      '"item":{"title":"50 Gold Coins","price":499,"currency":"USD"},' ..
      '"return_url":"mygame://payment-complete"}'
   tag = tostring(os.time()) .. "-" .. tostring(thread_index)
end

function request()
   counter = counter + 1
   return wrk.format("POST", "/pay.v1.PaymentService/CreateSession", {
      ["Content-Type"] = "application/json",
      ["Authorization"] = "Bearer " .. key,
      ["Idempotency-Key"] = "bench-" .. tag .. "-" .. counter,
   }, body)
end
