"""The gateway: auth-mcp in front of other MCP servers (`AUTH_MCP_GATEWAY_CONFIG`).

config.py (the TOML file), signing.py (the keys and their JWK Set), identity.py (the RFC 9068
token each upstream receives), sessions.py (session ids sealed to their person), crossing.py
(which headers pass), streams.py (open requests per person), proxy.py (the pass-through),
health.py (is each upstream reachable), builder.py (the parts, for create_app).
"""
