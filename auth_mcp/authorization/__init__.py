"""The OAuth 2.1 authorization server: clients, /authorize, consent, GitHub's leg, codes and tokens.

Imports `resource` (the verifier it keeps in step), `github`, `storage`, `http` and the primitives;
never the wiring (`app`).
"""
