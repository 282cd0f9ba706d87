"""The token service: each operation of the auth API as a plain function over a store.

One module per operation, as in GoTrue's ``internal/api``; the HTTP layer only parses, calls
and renders. Everything here is synchronous (the store and argon2 block); the server runs these
calls in a worker thread.
"""

from sessionkeeper.service.context import AuthContext, IssuedSession, Principal

__all__ = ["AuthContext", "IssuedSession", "Principal"]
