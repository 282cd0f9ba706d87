"""The auth server: a Starlette app speaking the Supabase Auth (GoTrue) wire contract."""

from sessionkeeper.server.app import build_context, create_app, create_auth_app

__all__ = ["build_context", "create_app", "create_auth_app"]
