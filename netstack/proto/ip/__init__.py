"""What IPv4 and IPv6 share above and beside them: the route a datagram takes
(:mod:`.route`) and the dual-family facade TCP, UDP and ping use (:mod:`.dual`)."""
