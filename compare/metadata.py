"""Metadata stripping with the pixels untouched (no re-encoding loss).

Providers sign their outputs with C2PA/XMP/EXIF that names the model; a blind
comparison must not be spoilt by "Save image as…" and exiftool, so outputs are
stored without it (colour profiles stay: designers judge colour)."""

import io

from PIL import Image as PILImage

PNG_KEEP = {
    b"IHDR",
    b"PLTE",
    b"IDAT",
    b"IEND",
    b"tRNS",
    b"gAMA",
    b"cHRM",
    b"sRGB",
    b"iCCP",
    b"sBIT",
    b"pHYs",
    b"bKGD",
    b"acTL",
    b"fcTL",
    b"fdAT",
}
WEBP_KEEP = {b"VP8 ", b"VP8L", b"VP8X", b"ALPH", b"ICCP", b"ANIM", b"ANMF"}


def _strip_png(data: bytes) -> bytes:
    out, pos = [data[:8]], 8
    while pos + 12 <= len(data):
        end = pos + 12 + int.from_bytes(data[pos : pos + 4], "big")
        if data[pos + 4 : pos + 8] in PNG_KEEP:  # colour chunks stay: designers judge colour
            out.append(data[pos:end])
        pos = end
    return b"".join(out)


def _strip_jpeg(data: bytes) -> bytes:
    out, pos = [data[:2]], 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            raise ValueError("unexpected JPEG structure")
        marker = data[pos + 1]
        if marker == 0xDA:  # start of scan: the rest is image data
            out.append(data[pos:])
            break
        segment = data[pos : pos + 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")]
        metadata = 0xE1 <= marker <= 0xEF or marker == 0xFE  # APP1–APP15 (EXIF, XMP, C2PA) and comments
        colour = segment[4:16] == b"ICC_PROFILE\0" or segment[4:9] == b"Adobe"
        if not metadata or colour:
            out.append(segment)
        pos += len(segment)
    return b"".join(out)


def _strip_webp(data: bytes) -> bytes:
    if data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        raise ValueError("not a WebP file")
    chunks, pos = [], 12
    while pos + 8 <= len(data):
        size = int.from_bytes(data[pos + 4 : pos + 8], "little")
        chunk = data[pos : pos + 8 + size + (size & 1)]
        if chunk[:4] == b"VP8X":  # clear the EXIF and XMP flags of the chunks dropped below
            chunk = chunk[:8] + bytes([chunk[8] & ~0x0C & 0xFF]) + chunk[9:]
        if chunk[:4] in WEBP_KEEP:
            chunks.append(chunk)
        pos += len(chunk)
    body = b"WEBP" + b"".join(chunks)
    return b"RIFF" + len(body).to_bytes(4, "little") + body


def _reencode(data: bytes, fmt: str) -> bytes:
    """Fallback for a file the chunk walkers do not understand: Pillow writes no
    metadata it is not given (JPEG keeps its quantisation tables, so loss is minimal)."""
    with PILImage.open(io.BytesIO(data)) as img:
        out = io.BytesIO()
        extra = {"quality": "keep"} if fmt == "jpeg" else {"lossless": True} if fmt == "webp" else {}
        img.save(out, fmt.upper(), icc_profile=img.info.get("icc_profile"), **extra)
        return out.getvalue()


def strip_metadata(data: bytes, fmt: str) -> bytes:
    strip = {"png": _strip_png, "jpeg": _strip_jpeg, "webp": _strip_webp}[fmt]
    try:
        return strip(data)
    except (ValueError, IndexError):
        return _reencode(data, fmt)
