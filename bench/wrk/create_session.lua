-- CreateSession exactly as a game server sends it (as in the Getting Started guide), without Idempotency-Key.
-- Arguments after `--`: the sandbox API key, the game id.
dofile("report.lua")

local req

function init(args)
   local key, game = args[1], args[2] or "bench_game"
   local body = '{"game_id":"' .. game .. '","user_id":"player_42",' ..
      '"item":{"title":"50 Gold Coins","price":499,"currency":"USD"},' ..
      '"return_url":"mygame://payment-complete"}'
   req = wrk.format("POST", "/pay.v1.PaymentService/CreateSession", {
      ["Content-Type"] = "application/json",
      ["Authorization"] = "Bearer " .. key,
   }, body)
end

function request()
   return req
end
