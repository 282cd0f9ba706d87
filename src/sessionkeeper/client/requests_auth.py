"""``RequestsSessionAuth``: the same session behaviour for code that uses ``requests``.

Kept in its own module so that ``requests`` stays an optional extra
(``pip install sessionkeeper[requests]``): importing :mod:`sessionkeeper.client` never imports it.

``requests`` has no auth generator, so the 401 retry is a response hook, the pattern of
``requests.auth.HTTPDigestAuth``: on 401, get the header to retry with from the keeper (one
refresh, shared with every other caller), re-send the prepared request once on the same
connection adapter, and raise :class:`AuthExpiredError` if that is refused too.
"""

from __future__ import annotations

from typing import Any

import requests
import requests.auth

from sessionkeeper.client.keeper import SessionKeeper


class RequestsSessionAuth(requests.auth.AuthBase):
    """Use with ``requests.get(url, auth=RequestsSessionAuth(keeper))`` or on a ``Session``.

    A body that cannot be replayed (a generator) is sent once; its 401 is returned as is, after
    the refresh, so the next call works.
    """

    def __init__(self, keeper: SessionKeeper) -> None:
        self.keeper = keeper

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        authorization = self.keeper.get_authorization()
        request.headers["Authorization"] = authorization
        body_position = _tell(request.body)

        def hook(response: requests.Response, **kwargs: Any) -> requests.Response:
            return self._on_response(response, body_position, **kwargs)

        request.register_hook("response", hook)  # type: ignore[no-untyped-call]
        return request

    def _on_response(
        self, response: requests.Response, body_position: int | None, **kwargs: Any
    ) -> requests.Response:
        if response.status_code != 401:
            self.keeper.accepted(response.request.headers.get("Authorization", ""))
            return response
        used = response.request.headers.get("Authorization", "")
        authorization = self.keeper.recover(used)
        body = response.request.body
        if not _replayable(body, body_position):
            return response
        if body_position is not None:
            body.seek(body_position)  # type: ignore[union-attr]  # file-like, checked above
        response.content  # noqa: B018  (read it so the connection can be reused)
        response.close()
        retry = response.request.copy()
        retry.headers["Authorization"] = authorization
        # The adapter does not run hooks, so this retry cannot trigger another one.
        second = response.connection.send(retry, **kwargs)
        second.history.append(response)
        second.request = retry
        if second.status_code == 401:
            second.close()
            raise self.keeper.rejected(authorization)
        self.keeper.accepted(authorization)
        # requests follows a redirect with a copy of the request it was first given (this
        # object), not of our retry: give it the header that worked.
        response.request.headers["Authorization"] = authorization
        return second


def _tell(body: object) -> int | None:
    tell = getattr(body, "tell", None)
    if tell is None:
        return None
    try:
        position = tell()
    except OSError:
        return None
    return position if isinstance(position, int) else None


def _replayable(body: object, position: int | None) -> bool:
    if body is None or isinstance(body, bytes | str):
        return True
    return position is not None and hasattr(body, "seek")
