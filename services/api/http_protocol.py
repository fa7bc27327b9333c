"""The HTTP/1.1 protocol the api serves: uvicorn's (httptools), except that a request its
parser refuses (bytes that are not HTTP: a control character in the path, a broken header)
is answered in the §4 error shape like every other 400, instead of uvicorn's plain text."""

from __future__ import annotations

import orjson
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol


class ShapedHttpToolsProtocol(HttpToolsProtocol):
    def send_400_response(self, msg: str) -> None:
        body = orjson.dumps(
            {"error": {"code": "BAD_REQUEST", "message": f"not a valid HTTP request: {msg}"}}
        )
        content = [STATUS_LINE[400]]
        for name, value in self.server_state.default_headers:
            content.extend([name, b": ", value, b"\r\n"])
        content.extend(
            [
                b"content-type: application/json\r\n",
                b"content-length: " + str(len(body)).encode("ascii") + b"\r\n",
                b"connection: close\r\n",
                b"\r\n",
                body,
            ]
        )
        self.transport.write(b"".join(content))
        self.transport.close()
