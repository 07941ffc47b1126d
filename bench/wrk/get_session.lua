-- GetSession: the whole session, as a game server reads it back (see read_session.lua).
method = "GetSession"
dofile("read_session.lua")
