-- A read of one session by id (`method`, set by the script that loads this one).
-- Arguments after `--`: the sandbox API key, the game id, then the ids of sessions created
-- before the run; each thread rotates over them.
dofile("report.lua")

local reqs = {}
local counter = 0

function init(args)
   local key = args[1]
   for i = 3, #args do
      reqs[#reqs + 1] = wrk.format("POST", "/pay.v1.PaymentService/" .. method, {
         ["Content-Type"] = "application/json",
         ["Authorization"] = "Bearer " .. key,
      }, '{"session_id":"' .. args[i] .. '"}')
   end
   assert(#reqs > 0, "no session ids given")
   counter = thread_index or 0
end

function request()
   counter = counter + 1
   return reqs[counter % #reqs + 1]
end
