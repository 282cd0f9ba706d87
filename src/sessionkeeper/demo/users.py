"""The demo user: created at start, its password reset to the one the demo prints."""

from __future__ import annotations

import logging

from sessionkeeper.core.validation import normalize_email
from sessionkeeper.service.context import AuthContext
from sessionkeeper.service.signup import create_user

log = logging.getLogger("sessionkeeper.demo")


def ensure_demo_user(ctx: AuthContext, *, email: str, password: str) -> None:
    """Create ``email`` with ``password``, or, when it exists with another password (an older
    demo database, a changed ``--demo-password``), set the password so the printed credentials
    work."""
    with ctx.store.transaction(write=False) as tx:
        user = tx.user_by_email(normalize_email(email))
    if user is None:
        create_user(ctx, email=email, password=password)
        log.info("demo user created", extra={"event": "demo_user_created", "email": email})
        return
    if ctx.passwords.check(user.password_hash, password):
        return
    with ctx.store.transaction() as tx:
        locked = tx.lock_user(user.id)
        if locked is not None:
            locked.password_hash = ctx.passwords.hash(password)
            locked.updated_at = ctx.clock.now()
            tx.update_user(locked)
    log.info("demo user password reset", extra={"event": "demo_user_reset", "email": email})
