"""sessionkeeper: sessions that stay alive until they really end.

The auth server (``sessionkeeper.server``) speaks the Supabase Auth (GoTrue) wire protocol, so the
official clients work against it unchanged. Its rules live in ``sessionkeeper.core`` as pure
functions of ``now``; the store protocol and backends live in ``sessionkeeper.store``.
"""

__version__ = "0.1.0"
