-- The ceiling: the empty Connect RPC, unauthenticated, same server and stack.
dofile("report.lua")

local req

function init(args)
   req = wrk.format("POST", "/pay.v1.HealthService/Check",
      {["Content-Type"] = "application/json"}, "{}")
end

function request()
   return req
end
