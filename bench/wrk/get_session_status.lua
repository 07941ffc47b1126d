-- GetSessionStatus, the call a game polls when the player comes back from the payment page
-- (see read_session.lua).
method = "GetSessionStatus"
dofile("read_session.lua")
