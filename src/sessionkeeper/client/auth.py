"""``SessionAuth``: the httpx auth flow that puts a kept session on every call.

httpx's habit: an ``Auth`` is a generator -- ``response = yield request``. Both flows are
written out (rather than one ``auth_flow``) because getting a token may wait for a refresh: the
sync flow blocks its thread, the async flow awaits without blocking the loop.

Per call: attach the header; on 401, get the header to retry with (a refresh, or the result of
the one another call started) and retry once; a second 401 raises :class:`AuthExpiredError`.
The body is read before the first send (``requires_request_body``) so that a POST can be
replayed byte for byte.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator

import httpx

from sessionkeeper.client.keeper import SessionKeeper


class SessionAuth(httpx.Auth):
    """Use with ``httpx.Client(auth=SessionAuth(keeper))`` or ``httpx.AsyncClient(...)``.

    One keeper may serve any number of clients, sync and async, in any threads.
    """

    requires_request_body = True

    def __init__(self, keeper: SessionKeeper) -> None:
        self.keeper = keeper

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        authorization = self.keeper.get_authorization()
        request.headers["Authorization"] = authorization
        response = yield request
        if response.status_code != 401:
            self.keeper.accepted(authorization)
            return
        authorization = self.keeper.recover(authorization)
        request.headers["Authorization"] = authorization
        response = yield request
        if response.status_code == 401:
            raise self.keeper.rejected(authorization)
        self.keeper.accepted(authorization)

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        authorization = await self.keeper.aget_authorization()
        request.headers["Authorization"] = authorization
        response = yield request
        if response.status_code != 401:
            self.keeper.accepted(authorization)
            return
        authorization = await self.keeper.arecover(authorization)
        request.headers["Authorization"] = authorization
        response = yield request
        if response.status_code == 401:
            raise self.keeper.rejected(authorization)
        self.keeper.accepted(authorization)
