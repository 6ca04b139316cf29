"""Text exports as numbered lines of bytes: which encoding a file is in, and where its lines end.

A line ends at LF, CRLF or a lone CR (old Mac exports), mixed freely in one file, and lines are
numbered as a text editor numbers them. Lines stay bytes so that one undecodable byte costs only
its own line (`pipeline.ingest` decodes them). UTF-16 (Excel's 「Unicode テキスト」) is recoded to
UTF-8 on the way in, so every encoding is split into lines by the same code.
"""

from __future__ import annotations

import codecs
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from pipeline.errors import InputError

_ENCODING_SNIFF_BYTES = 1 << 20
_READ_BYTES = 1 << 16
_NOT_UTF16 = "voc.not_utf16"  # codec error handler, registered below

Line = tuple[int, bytes, bool]  # line number, bytes without the line end, longer than the limit


def detect_encoding(path: Path, configured: str) -> str:
    """The codec to read ``path`` with: ``configured`` (source.encoding), or for "auto" what the
    byte-order mark or the bytes themselves say."""
    with path.open("rb") as handle:
        head = handle.read(_ENCODING_SNIFF_BYTES)
    if configured == "shift_jis":
        return "cp932"  # what Japanese Windows and Excel call Shift_JIS (①, ㈱ and 髙 included)
    if configured != "auto":
        return "utf-8-sig" if configured == "utf-8" and head.startswith(codecs.BOM_UTF8) else configured
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"  # the codec reads the byte order from the mark
    # CP932 read as UTF-8 fails on nearly every Japanese character, so a file whose
    # non-ASCII bytes are almost all valid UTF-8 is UTF-8 with a few broken bytes (those
    # lines are quarantined later), not CP932. The last bytes may be a character cut in two.
    non_ascii = sum(1 for b in head if b >= 0x80)
    tolerated = max(1, non_ascii // 100)
    for encoding in ("utf-8", "cp932"):
        errors = head[:-4].decode(encoding, errors="replace").count("\ufffd") if len(head) > 4 else 0
        if errors <= tolerated and (encoding == "utf-8" or errors < non_ascii // 2):
            return encoding
    raise InputError(
        f"{path.name} is neither UTF-8, UTF-16 with a byte-order mark nor CP932 (Shift_JIS); "
        "re-export it as UTF-8 or set source.encoding"
    )


def text_lines(handle: BinaryIO, encoding: str, limit: int) -> tuple[Iterator[Line], str]:
    """The lines of a text file, and the encoding their bytes are in: UTF-8 for a UTF-16 file,
    which is recoded (so ``limit``, source.max_record_bytes, counts its UTF-8 bytes)."""
    if encoding == "utf-16":
        return physical_lines(io.BufferedReader(_Utf16AsUtf8(handle)), limit), "utf-8"
    return physical_lines(handle, limit), encoding


def physical_lines(handle: BinaryIO, limit: int) -> Iterator[Line]:
    """Yield (line number, bytes without the line end, too_long); too-long lines are cut at ``limit``."""
    # Latin-1 maps each byte to one character and back, so this reads bytes with Python's universal
    # newlines (LF, CRLF and CR), which also keep a CRLF that straddles two reads together
    text = io.TextIOWrapper(handle, encoding="latin-1", newline=None)
    number = 0
    try:
        while line := text.readline(limit + 1):
            number += 1
            too_long = len(line) > limit and not line.endswith("\n")
            if too_long:  # skip the rest of this line without holding it in memory
                while (rest := text.readline(limit)) and not rest.endswith("\n"):
                    pass
            yield number, line.removesuffix("\n").encode("latin-1"), too_long
    finally:
        # the caller owns the file and still asks it how far it has read: a wrapper that is
        # let go closes the file under it, so it is detached instead
        if not handle.closed:
            text.detach()


class _Utf16AsUtf8(io.RawIOBase):
    """A UTF-16 file read as UTF-8 bytes. What is not UTF-16 (a lone surrogate, an odd last byte)
    comes out as bytes that are not UTF-8 either, so only its line is quarantined as undecodable,
    as a bad byte is in any other encoding."""

    def __init__(self, handle: BinaryIO) -> None:
        super().__init__()
        self._handle = handle
        head = handle.read(2)
        # without a byte-order mark, little-endian: what Windows and Excel write
        codec = "utf-16-be" if head == codecs.BOM_UTF16_BE else "utf-16-le"
        self._decoder = codecs.getincrementaldecoder(codec)(errors=_NOT_UTF16)
        first = b"" if head in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE) else head
        self._pending, self._offset = self._recode(first, final=False), 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while self._offset == len(self._pending):
            data = self._handle.read(_READ_BYTES)
            self._pending, self._offset = self._recode(data, final=not data), 0
            if not data and not self._pending:
                return 0
        count = min(len(buffer), len(self._pending) - self._offset)
        buffer[:count] = self._pending[self._offset : self._offset + count]
        self._offset += count
        return count

    def _recode(self, data: bytes, final: bool) -> bytes:
        return self._decoder.decode(data, final=final).encode("utf-8", errors="surrogatepass")


def _mark_not_utf16(error: UnicodeError) -> tuple[str, int]:
    """A lone surrogate in place of the bad code unit: "surrogatepass" writes it as bytes that no
    strict UTF-8 decoder accepts."""
    if not isinstance(error, UnicodeDecodeError):  # pragma: no cover - registered for decoding only
        raise error
    return "\udcff", error.end


codecs.register_error(_NOT_UTF16, _mark_not_utf16)
