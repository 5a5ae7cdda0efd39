"""HTTP plumbing with no domain knowledge: access log and request ids, request headers, the
Host/Origin guard, rate limits, pages, metrics and logging set-up.

Imports only the primitives (`clock`, `tokens`), never domain code.
"""
