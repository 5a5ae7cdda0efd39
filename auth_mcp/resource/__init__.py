"""The MCP resource server: the bearer guard, token verification and audience (RFC 8707).

Never imports `authorization`: a resource server only needs to verify what the authorization
server stored.
"""
