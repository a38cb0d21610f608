"""Refuse oversized bodies with 413 before reading them whole (pure ASGI middleware).

Routes that stream their body in bounded memory (the CSV lead and suppression imports) get a larger limit."""

from __future__ import annotations

import json

STREAMED_PATH_SUFFIXES = ("/leads/import", "/suppressions/import")


class BodySizeLimit:
    def __init__(self, app, max_bytes: int, max_streamed_bytes: int = 2 * 1024**3) -> None:
        self.app, self.max_bytes, self.max_streamed_bytes = app, max_bytes, max_streamed_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        streamed = scope["path"].endswith(STREAMED_PATH_SUFFIXES)
        max_bytes = self.max_streamed_bytes if streamed else self.max_bytes
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_bytes:
            return await self._refuse(send, max_bytes)
        seen = 0
        too_large = False

        async def counting_receive():
            nonlocal seen, too_large
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > max_bytes:
                    too_large = True
                    raise BodyTooLarge
            return message

        started = False
        replaced = False

        async def tracking_send(message):
            # A route may catch the BodyTooLarge raised while it reads (FastAPI turns any error
            # reading a body into a 400): whatever it answers then, the answer is the 413.
            nonlocal started, replaced
            if message["type"] == "http.response.start":
                started = True
                if too_large:
                    replaced = True
                    return await self._refuse(send, max_bytes)
            if not replaced:
                await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await self._refuse(send, max_bytes)

    async def _refuse(self, send, max_bytes: int):
        body = json.dumps({"error": {"code": "payload_too_large",
                                     "message": f"the request body is larger than {max_bytes} bytes",
                                     "details": {"max_bytes": max_bytes}}}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


class BodyTooLarge(Exception):
    pass
