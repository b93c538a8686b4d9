"""A tiny HTTP/1.1 client over a raw socket, so requests can carry anything: invalid UTF-8 in the
path, bare control bytes, duplicate or huge headers, bodies whose Content-Length is a lie.
Keep-alive is used while the server allows it."""

from __future__ import annotations

import socket
import time


class ConnectionFailed(Exception):
    """The server accepted no connection, or closed it without answering."""


class Response:
    __slots__ = ("status", "headers", "body", "elapsed")

    def __init__(self, status: int, headers: dict[str, str], body: bytes, elapsed: float):
        self.status = status
        self.headers = headers
        self.body = body
        self.elapsed = elapsed


class Conn:
    def __init__(self, host: str, port: int, timeout: float = 30.0):
        self.host, self.port, self.timeout = host, port, timeout
        self.sock: socket.socket | None = None
        self.buf = b""

    def close(self) -> None:
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
        self.sock, self.buf = None, b""

    def _connect(self) -> None:
        self.close()
        last: Exception | None = None
        for _ in range(3):
            try:
                self.sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
                self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                return
            except OSError as e:  # pragma: no cover - only when the server is gone
                last = e
                time.sleep(0.2)
        raise ConnectionFailed(f"connect: {last}")

    def _recv(self) -> bytes:
        assert self.sock is not None
        data = self.sock.recv(65536)
        return data

    def _read_until(self, marker: bytes, limit: int = 1 << 20) -> bytes:
        while marker not in self.buf:
            if len(self.buf) > limit:
                raise ConnectionFailed("response head too large")
            data = self._recv()
            if not data:
                raise EOFError
            self.buf += data
        head, self.buf = self.buf.split(marker, 1)
        return head

    def _read_exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            data = self._recv()
            if not data:
                raise ConnectionFailed("connection closed inside a response body")
            self.buf += data
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _read_to_close(self) -> bytes:
        chunks = [self.buf]
        self.buf = b""
        while True:
            data = self._recv()
            if not data:
                break
            chunks.append(data)
        self.close()
        return b"".join(chunks)

    def send(self, raw: bytes, method: str = "GET") -> Response:
        """Sends one request (bytes exactly as given) and reads one response. A stale keep-alive
        connection is retried once on a fresh one; a second silent close is a failure."""
        for attempt in range(2):
            fresh = self.sock is None
            if fresh:
                self._connect()
            start = time.monotonic()
            try:
                assert self.sock is not None
                self.sock.sendall(raw)
                return self._read_response(method, start)
            except (EOFError, ConnectionResetError, BrokenPipeError) as e:
                self.close()
                if fresh or attempt == 1:
                    raise ConnectionFailed(f"no response ({type(e).__name__})") from None
            except socket.timeout:
                self.close()
                raise ConnectionFailed("timed out waiting for a response") from None
            except OSError as e:
                self.close()
                raise ConnectionFailed(f"socket error: {e}") from None
        raise ConnectionFailed("unreachable")

    def _read_response(self, method: str, start: float) -> Response:
        while True:
            head = self._read_until(b"\r\n\r\n")
            lines = head.split(b"\r\n")
            parts = lines[0].split(b" ", 2)
            if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
                raise ConnectionFailed(f"malformed status line {lines[0][:80]!r}")
            status = int(parts[1])
            headers: dict[str, str] = {}
            for line in lines[1:]:
                k, _, v = line.partition(b":")
                headers[k.strip().lower().decode("latin-1")] = v.strip().decode("latin-1")
            if 100 <= status < 200 and status != 101:
                continue  # 100 Continue: the real answer follows
            break
        if method == "HEAD" or status in (204, 304):
            body = b""
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            body = self._read_chunked()
        elif "content-length" in headers:
            body = self._read_exact(int(headers["content-length"]))
        else:
            body = self._read_to_close()
        elapsed = time.monotonic() - start
        if headers.get("connection", "").lower() == "close":
            self.close()
        return Response(status, headers, body, elapsed)

    def _read_chunked(self) -> bytes:
        out = []
        while True:
            size_line = self._read_until(b"\r\n")
            size = int(size_line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                # trailers end with an empty line
                while True:
                    line = self._read_until(b"\r\n")
                    if not line:
                        break
                return b"".join(out)
            out.append(self._read_exact(size))
            self._read_exact(2)


def build(
    method: str | bytes,
    target: str | bytes,
    host: str,
    headers: list[tuple[str | bytes, str | bytes]] | None = None,
    body: bytes | None = None,
    content_length: bool = True,
) -> bytes:
    """Builds raw request bytes. `headers` may repeat names; pass bytes for invalid values."""

    def b(x: str | bytes) -> bytes:
        return x if isinstance(x, bytes) else x.encode("utf-8", "surrogatepass")

    out = [b(method) + b" " + b(target) + b" HTTP/1.1", b"Host: " + b(host)]
    for k, v in headers or []:
        out.append(b(k) + b": " + b(v))
    if body is not None and content_length:
        out.append(b"Content-Length: " + str(len(body)).encode())
    return b"\r\n".join(out) + b"\r\n\r\n" + (body or b"")
