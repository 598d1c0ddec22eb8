"""Pillow: verify, normalise, thumbnail, metadata; content-addressed storage.

Every file is named by the SHA-256 of its bytes, so the same image stored twice
is one file, and a name never points at different content.

Decoded pixels are the memory of this app (a 4K image is ~51 MB decoded, its PNG a few
MB), so every decode, thumbnail and simulated rendering runs inside `pixel_work()`: a
process-wide limit of about one per core (`COMPARE_PIXEL_WORKERS`), whatever the number of
provider calls in flight. `store` decodes each image once: that decode verifies it, reads its
metadata and keeps a small reduced copy from which the thumbnails are made — at once for
references, after the generation is marked done for results (`write_thumbnails`). A
thumbnail that is missing anyway is made on the first request for it (`ensure_thumbnail`).
"""

import ctypes
import hashlib
import io
import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from PIL import Image as PILImage
from PIL import ImageOps, UnidentifiedImageError

# Refuse decompression bombs: the largest real output is 4096×4096.
PILImage.MAX_IMAGE_PIXELS = 40_000_000
THUMBNAIL_EDGE = 480
# The thumbnail sizes pages show: the run page's (the `thumbnail` field of a row) and a
# small one for lists (120 px slots at twice the pixel density).
THUMB_SIZES = {"run": THUMBNAIL_EDGE, "list": 240}
MAX_UPLOAD_BYTES = 20 * 1024 * 1024
MAX_UPLOAD_PIXELS = 36_000_000
FORMATS = {"PNG": "png", "JPEG": "jpeg", "WEBP": "webp"}

_slots = threading.BoundedSemaphore(settings.COMPARE_PIXEL_WORKERS)


def _return_freed_memory() -> None:
    """Make glibc give large freed blocks (decoded 4K pixels, their replies) back to the
    system, and keep the memory of the many smaller ones for the next image.

    By default glibc raises its mmap threshold to the size of the largest block freed (up
    to 32 MB), so after the first 4K image every later one is carved from per-thread heaps
    (up to eight per core) that keep their freed memory: with a hundred threads in flight a
    process grew to three times the memory it used (tests/bench/test_memory_bench.py). A fixed
    1 MB threshold and two heaps keep the process near what it really holds.

    Below 1 MB (a 1K picture's bands, its PNG, base64 and JSON), blocks come from the heaps,
    which keep up to 16 MB free at their top for the next request: memory first touched is
    the expensive part on a virtual machine (about 4 µs a page here, 1,000 pages per 4 MB
    picture), and a heap that gave each freed block back touched it anew every time.
    Pillow likewise keeps four freed pixel blocks (its 16 MB blocks hold a 1K picture
    whole) instead of mapping new ones for every picture. The MALLOC_ARENA_MAX,
    MALLOC_MMAP_THRESHOLD_, MALLOC_TRIM_THRESHOLD_ and PILLOW_BLOCKS_MAX environment
    variables, when set, win."""
    if "PILLOW_BLOCKS_MAX" not in os.environ:
        PILImage.core.set_blocks_max(4)
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to tune
        return
    if "MALLOC_ARENA_MAX" not in os.environ:
        mallopt(-8, 2)  # M_ARENA_MAX
    if "MALLOC_MMAP_THRESHOLD_" not in os.environ:
        mallopt(-3, 1024 * 1024)  # M_MMAP_THRESHOLD
    if "MALLOC_TRIM_THRESHOLD_" not in os.environ:
        mallopt(-1, 16 * 1024 * 1024)  # M_TRIM_THRESHOLD


_return_freed_memory()
_held = threading.local()


@contextmanager
def pixel_work() -> Iterator[None]:
    """Hold one of the process's pixel slots while decoding, resizing, encoding or
    rendering an image. Re-entrant within a thread (a holder that calls another
    holder does not wait for itself)."""
    depth = getattr(_held, "depth", 0)
    if depth:
        _held.depth = depth + 1
        try:
            yield
        finally:
            _held.depth = depth
        return
    with _slots:
        _held.depth = 1
        try:
            yield
        finally:
            _held.depth = 0


class ImageRejected(ValueError):
    """Bytes that are not an image we accept, with a message for the user."""


@dataclass(frozen=True)
class ImageInfo:
    format: str
    width: int
    height: int
    has_alpha: bool


def _decoded(data: bytes, keep: bool, decode: bool = True) -> tuple[ImageInfo, PILImage.Image | None]:
    """The one decode of `data` (its caller holds a pixel slot): verify the bytes really
    are a complete PNG/JPEG/WebP, read its metadata and, with `keep`, return a reduced
    copy large enough for every thumbnail size. With `decode` false, a PNG is checked by
    its structure alone (verify(): every chunk's checksum, and its end), nothing is kept,
    and its pixels are left for its thumbnails (other formats are decoded all the same)."""
    try:
        with PILImage.open(io.BytesIO(data)) as probe:
            probe.verify()  # the file's structure (chunk checksums); no pixels decoded
            if not decode and probe.format == "PNG":
                return _info(probe), None
        # Not closed: the picture itself may be the reduced copy (its bytes are in memory,
        # there is no file to let go of).
        img = PILImage.open(io.BytesIO(data))
        img.load()  # verify() does not decode pixels; a truncated file fails here
        info = _info(img)
        return info, (_reduced(img) if keep else None)
    except PILImage.DecompressionBombError:
        raise ImageRejected("The image has too many pixels.") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        if isinstance(exc, ImageRejected):
            raise
        raise ImageRejected("The file is not a readable image (or it is truncated).") from None


def _info(img: PILImage.Image) -> ImageInfo:
    """Format, size and transparency, all known from the header (and a PNG's chunks before
    its pixels: `tRNS`), decoded or not."""
    fmt = FORMATS.get(img.format or "")
    if fmt is None:
        raise ImageRejected(f"{img.format or 'This'} images are not supported; use PNG, JPEG or WebP.")
    has_alpha = img.mode in {"RGBA", "LA", "PA"} or (img.mode == "P" and "transparency" in img.info)
    return ImageInfo(fmt, img.width, img.height, has_alpha)


def _reduced(img: PILImage.Image) -> PILImage.Image:
    """RGB(A) pixels reduced by the integer factor Pillow's own thumbnail() would first
    reduce by for the largest size (a box filter: fast, and the thumbnails come out as
    before); a 4K image's copy is about 1000 px on its long edge. An image already small
    enough is itself the copy (no pixels are copied)."""
    if img.mode not in {"RGB", "RGBA"}:
        img = img.convert("RGBA" if "A" in img.mode or "transparency" in img.info else "RGB")
    factor = max(1, max(img.size) // (2 * max(THUMB_SIZES.values())))
    return img.reduce(factor) if factor > 1 else img


def inspect(data: bytes) -> ImageInfo:
    """Verify the bytes really are a complete PNG/JPEG/WebP and read its metadata."""
    with pixel_work():
        return _decoded(data, keep=False)[0]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _put(name: str, data: bytes) -> str:
    """Write `data` under `name`; the name it is stored under. Content addressing makes
    this idempotent (a short file left by a crash is replaced), but a storage may still
    pick another name (a prefix, a suffix, a sanitised name): only its answer is used."""
    if default_storage.exists(name):
        if default_storage.size(name) == len(data):
            return name
        default_storage.delete(name)
    return default_storage.save(name, ContentFile(data))


# libwebp's effort, 0–6: at 2 a thumbnail takes a third of the time it takes at 4 (the
# default) and comes out within 2 % of its size (a 1024 px picture's 480 px thumbnail:
# 6 ms and 12.9 KB against 16 ms and 12.7 KB here).
WEBP_METHOD = 2


def _webp(img: PILImage.Image, edge: int) -> bytes:
    """`img` as WebP, fitted within edge × edge first: in place, since each image given
    here is a copy made for the thumbnails (no pixels are copied again)."""
    img.thumbnail((edge, edge))
    out = io.BytesIO()
    img.save(out, "WEBP", quality=80, method=WEBP_METHOD)
    return out.getvalue()


def thumbnail_bytes(data: bytes, edge: int = THUMBNAIL_EDGE) -> bytes:
    with pixel_work(), PILImage.open(io.BytesIO(data)) as opened:
        img: PILImage.Image = opened
        img.thumbnail((edge, edge))
        if img.mode not in {"RGB", "RGBA"}:
            img = img.convert("RGBA" if "A" in img.mode or "transparency" in img.info else "RGB")
        out = io.BytesIO()
        img.save(out, "WEBP", quality=80, method=WEBP_METHOD)
        return out.getvalue()


def thumbnail_name(digest: str, size: str = "run") -> str:
    """Where the thumbnail of the image with this hash is stored, per `THUMB_SIZES` key."""
    suffix = "" if size == "run" else f"-{THUMB_SIZES[size]}"
    return f"thumbs/{digest[:2]}/{digest}{suffix}.webp"


class Stored(dict[str, Any]):
    """The fields of a StoredImage row (`Image(**stored)`), plus, until its thumbnails are
    written, the small reduced copy they are made from (not a field)."""

    preview: PILImage.Image | None = None


def store(data: bytes, strip: bool = False, thumbnails: bool = True, preview: bool = True) -> Stored:
    """Write the image; return the fields of a StoredImage row. With `strip`, embedded
    metadata (a provider's signature naming the model) goes first. The image is decoded
    once; its thumbnails are written now, or with `thumbnails=False` by `write_thumbnails`
    later (the row's `thumbnail` name is the same either way). With `preview=False` (no
    thumbnail is wanted soon: nobody has the run open) a PNG is not decoded here at all:
    its structure is checked (every chunk's checksum, and its end: a truncated file is
    refused as before) and its one decode happens when its thumbnails are made, on their
    first request. Decoding a 1024 px PNG was a sixth of the app's CPU for a generation."""
    with pixel_work():
        info, kept = _decoded(data, keep=preview, decode=preview)
    if strip:
        from compare.metadata import strip_metadata

        data = strip_metadata(data, info.format)
    digest = sha256(data)
    name = _put(f"images/{digest[:2]}/{digest}.{info.format}", data)
    stored = Stored(
        sha256=digest,
        file=name,
        thumbnail=thumbnail_name(digest),
        width=info.width,
        height=info.height,
        format=info.format,
        bytes=len(data),
        has_alpha=info.has_alpha,
    )
    stored.preview = kept
    if thumbnails:
        write_thumbnails(stored)
    return stored


def write_thumbnails(stored: Stored) -> dict[str, str]:
    """Write every thumbnail size of a stored image from its reduced copy (decoding the
    file again only if that copy is gone), then let the copy go. Returns the stored name
    per size; the run page's is also set as `stored["thumbnail"]` (a storage may rename)."""
    preview, stored.preview = stored.preview, None
    if preview is None:
        data = open_bytes(stored["file"])
        with pixel_work(), PILImage.open(io.BytesIO(data)) as img:
            img.load()
            preview = _reduced(img)
    encoded = {}
    with pixel_work():
        # Largest first, each size made from the one before (the small one from 480 px,
        # not from the whole picture again).
        for size, edge in sorted(THUMB_SIZES.items(), key=lambda item: -item[1]):
            encoded[size] = _webp(preview, edge)
    # Written outside the pixel slot: a remote storage's upload is no CPU work.
    names = {size: _put(thumbnail_name(stored["sha256"], size), data) for size, data in encoded.items()}
    stored["thumbnail"] = names["run"]
    return names


def ensure_thumbnail(file: str, digest: str, size: str = "run") -> str:
    """The stored name of an image's thumbnail in `size`, made from the file first if it
    is missing (an image stored before thumbnails were deferred, or a crash between
    storing and thumbnailing)."""
    name = thumbnail_name(digest, size)
    if default_storage.exists(name):
        return name
    return write_thumbnails(Stored(sha256=digest, file=file, thumbnail=name))[size]


EXTENSIONS = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".webp": "webp"}
NAMES = {"png": "PNG", "jpeg": "JPEG", "webp": "WebP"}


def check_declared_type(name: str, content_type: str | None, info: ImageInfo) -> None:
    """A file whose name or declared type says one format while its bytes are another
    is refused: it was mislabelled somewhere, and the user should know before judging."""
    suffix = "." + name.rsplit(".", 1)[-1].lower() if "." in name else ""
    claimed = EXTENSIONS.get(suffix)
    if suffix and claimed is None:
        raise ImageRejected(f"{name}: only .png, .jpg, .jpeg and .webp files are accepted.")
    declared = (content_type or "").split(";")[0].strip().lower()
    if declared.startswith("image/") and declared.removeprefix("image/").replace("jpg", "jpeg") != info.format:
        claimed = claimed or declared.removeprefix("image/")
    if claimed and claimed != info.format:
        raise ImageRejected(
            f"{name} says it is {NAMES.get(claimed, claimed)} but is really a {NAMES[info.format]} image; "
            "rename it or export it again."
        )


def normalise_upload(data: bytes, name: str = "image", content_type: str | None = None) -> tuple[bytes, ImageInfo]:
    """Verify an uploaded image and re-encode it, so that only clean pixels (no
    metadata, no trailing payload, upright orientation) are stored and sent on."""
    if len(data) > MAX_UPLOAD_BYTES:
        raise ImageRejected(f"{name} is {len(data) / 1048576:.1f} MB; the limit is {MAX_UPLOAD_BYTES // 1048576} MB.")
    if not data:
        raise ImageRejected(f"{name} is empty.")
    try:
        info = inspect(data)
    except ImageRejected as exc:
        raise ImageRejected(f"{name}: {exc}") from None
    check_declared_type(name, content_type, info)
    if info.width * info.height > MAX_UPLOAD_PIXELS:
        raise ImageRejected(
            f"{name} is {info.width}×{info.height}; at most {MAX_UPLOAD_PIXELS // 1_000_000} megapixels are accepted."
        )
    with pixel_work(), PILImage.open(io.BytesIO(data)) as opened:
        img = ImageOps.exif_transpose(opened)
        out = io.BytesIO()
        if info.has_alpha:
            img.convert("RGBA").save(out, "PNG", optimize=False, compress_level=6)
        elif info.format == "jpeg":
            img.convert("RGB").save(out, "JPEG", quality=95, subsampling=0)
        else:
            img.convert("RGB").save(out, "PNG", compress_level=6)
    clean = out.getvalue()
    return clean, inspect(clean)


def open_bytes(name: str) -> bytes:
    with default_storage.open(name, "rb") as handle:
        return handle.read()


def discard_unreferenced(stored: Sequence[dict]) -> None:
    """Delete files written for rows that were never saved (and that no other row uses)."""
    from compare.models import Image, Reference

    for fields in stored:
        digest = fields["sha256"]
        if Image.objects.filter(sha256=digest).exists() or Reference.objects.filter(sha256=digest).exists():
            continue
        for name in (fields["file"], fields["thumbnail"], *(thumbnail_name(digest, s) for s in THUMB_SIZES)):
            if default_storage.exists(name):
                default_storage.delete(name)
