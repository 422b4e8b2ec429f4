"""HTTP/1.1 request framing for `sml serve`: a request's body from Content-Length or chunks, checked strictly.

http.server parses the request line and headers; the body is ours to read, and a lenient reader either hangs
(a negative chunk size reads to the end of the stream) or hands the function a body the client never sent.
"""

import re
from email.message import Message
from io import BufferedIOBase

from sml.local.worker import MAX_PAYLOAD_BYTES

DRAIN_LIMIT_BYTES = 64 * 1024 * 1024  # past this we close the connection instead of reading the rest
MAX_LINE_BYTES = 64 * 1024  # a chunk-size or trailer line, as http.server limits a header line
MAX_TRAILERS = 100  # as http.server limits headers
CHUNK_SIZE = re.compile(rb"([0-9A-Fa-f]{1,15})[ \t]*(?:;[^\r\n]*)?\r?\n")
CONTENT_LENGTH = re.compile(r"[0-9]{1,18}")


class HttpError(Exception):
    """A request we refuse with `status`; unless `keep_alive`, the connection closes after the answer."""

    def __init__(self, status: int, message: str, *, keep_alive: bool = False) -> None:
        super().__init__(message)
        self.status, self.message, self.keep_alive = status, message, keep_alive


def too_large(*, keep_alive: bool = False) -> HttpError:
    return HttpError(413, f"the body is over Lambda's {MAX_PAYLOAD_BYTES} byte limit", keep_alive=keep_alive)


def read_body(rfile: BufferedIOBase, headers: Message) -> bytes:
    """The request's body, at most MAX_PAYLOAD_BYTES.

    Raises:
        HttpError: the framing is not valid HTTP/1.1, the body ends early, its coding is not chunked, or
            it is over the limit (then drained when short enough, so the connection may go on).
    """
    lengths = headers.get_all("Content-Length") or []
    codings = ",".join(headers.get_all("Transfer-Encoding") or [])
    if codings:
        if lengths:  # the request smuggling case: refuse it rather than guess which one the client meant
            raise HttpError(400, "a request may not carry both Transfer-Encoding and Content-Length")
        if [coding.strip().lower() for coding in codings.split(",")] != ["chunked"]:
            raise HttpError(501, f"Transfer-Encoding {codings!r} is not supported: send chunked or Content-Length")
        return read_chunked(rfile)
    if len({value.strip() for value in lengths}) > 1:
        raise HttpError(400, "the request has more than one Content-Length")
    text = lengths[0].strip() if lengths else "0"
    if not CONTENT_LENGTH.fullmatch(text):
        raise HttpError(400, f"Content-Length {text[:40]!r} is not a number of bytes")
    length = int(text)
    if length > MAX_PAYLOAD_BYTES:
        drain(rfile, length)
        raise too_large(keep_alive=True)
    body = rfile.read(length)
    if len(body) < length:
        raise HttpError(400, f"the body ended after {len(body)} of its {length} bytes")
    return body


def read_chunked(rfile: BufferedIOBase) -> bytes:
    chunks, total = [], 0
    while size := chunk_size(rfile.readline(MAX_LINE_BYTES + 1)):
        total += size
        if total > MAX_PAYLOAD_BYTES:
            raise too_large()  # the rest of the stream is never read
        chunk = rfile.read(size)
        if len(chunk) < size:
            raise HttpError(400, "the body ended inside a chunk")
        chunks.append(chunk)
        if rfile.readline(3) not in (b"\r\n", b"\n"):
            raise HttpError(400, "a chunk is longer than its size says")
    for _ in range(MAX_TRAILERS):
        line = rfile.readline(MAX_LINE_BYTES + 1)
        if line in (b"\r\n", b"\n"):
            return b"".join(chunks)
        if not line or len(line) > MAX_LINE_BYTES:
            raise HttpError(400, "the chunked body does not end with an empty line")
    raise HttpError(431, f"more than {MAX_TRAILERS} trailer fields")


def chunk_size(line: bytes) -> int:
    found = CHUNK_SIZE.fullmatch(line)
    if found is None:
        shown = line[:40].decode("latin-1").rstrip("\r\n")
        raise HttpError(400, f"chunk size {shown!r} is not a hexadecimal number of bytes")
    return int(found.group(1), 16)


def drain(rfile: BufferedIOBase, length: int) -> None:
    """Read and drop an oversized body, so the client gets our 413 rather than a reset connection."""
    if length > DRAIN_LIMIT_BYTES:
        raise too_large()
    while length > 0:
        chunk = rfile.read(min(length, 1 << 16))
        if not chunk:
            raise HttpError(400, "the body ended before its Content-Length")
        length -= len(chunk)
