"""Pillow: verify, normalise, thumbnail, metadata; content-addressed storage.

Every file is named by the SHA-256 of its bytes, so the same image stored twice
is one file, and a name never points at different content.
"""

import hashlib
import io
from dataclasses import dataclass

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from PIL import Image as PILImage
from PIL import ImageOps, UnidentifiedImageError

# Refuse decompression bombs: the largest real output is 4096×4096.
PILImage.MAX_IMAGE_PIXELS = 40_000_000
THUMBNAIL_EDGE = 480
MAX_UPLOAD_BYTES = 20 * 1024 * 1024
MAX_UPLOAD_PIXELS = 36_000_000
FORMATS = {"PNG": "png", "JPEG": "jpeg", "WEBP": "webp"}


class ImageRejected(ValueError):
    """Bytes that are not an image we accept, with a message for the user."""


@dataclass(frozen=True)
class ImageInfo:
    format: str
    width: int
    height: int
    has_alpha: bool


def inspect(data: bytes) -> ImageInfo:
    """Verify the bytes really are a complete PNG/JPEG/WebP and read its metadata."""
    try:
        with PILImage.open(io.BytesIO(data)) as probe:
            probe.verify()
        with PILImage.open(io.BytesIO(data)) as img:
            img.load()  # verify() does not decode pixels; a truncated file fails here
            fmt = FORMATS.get(img.format or "")
            if fmt is None:
                raise ImageRejected(f"{img.format or 'This'} images are not supported; use PNG, JPEG or WebP.")
            has_alpha = img.mode in {"RGBA", "LA", "PA"} or (img.mode == "P" and "transparency" in img.info)
            return ImageInfo(fmt, img.width, img.height, has_alpha)
    except PILImage.DecompressionBombError:
        raise ImageRejected("The image has too many pixels.") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        if isinstance(exc, ImageRejected):
            raise
        raise ImageRejected("The file is not a readable image (or it is truncated).") from None


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


def thumbnail_bytes(data: bytes) -> bytes:
    with PILImage.open(io.BytesIO(data)) as opened:
        img: PILImage.Image = opened
        img.thumbnail((THUMBNAIL_EDGE, THUMBNAIL_EDGE))
        if img.mode not in {"RGB", "RGBA"}:
            img = img.convert("RGBA" if "A" in img.mode or "transparency" in img.info else "RGB")
        out = io.BytesIO()
        img.save(out, "WEBP", quality=80, method=4)
        return out.getvalue()


def store(data: bytes, strip: bool = False) -> dict:
    """Write image + thumbnail; return the fields of a StoredImage row. With `strip`,
    embedded metadata (a provider's signature naming the model) goes first."""
    info = inspect(data)
    if strip:
        from compare.metadata import strip_metadata

        data = strip_metadata(data, info.format)
    digest = sha256(data)
    name = f"images/{digest[:2]}/{digest}.{info.format}"
    thumb = f"thumbs/{digest[:2]}/{digest}.webp"
    name = _put(name, data)
    thumb = _put(thumb, thumbnail_bytes(data))
    return {
        "sha256": digest,
        "file": name,
        "thumbnail": thumb,
        "width": info.width,
        "height": info.height,
        "format": info.format,
        "bytes": len(data),
        "has_alpha": info.has_alpha,
    }


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
    with PILImage.open(io.BytesIO(data)) as opened:
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


def discard_unreferenced(stored: list[dict]) -> None:
    """Delete files written for rows that were never saved (and that no other row uses)."""
    from compare.models import Image, Reference

    for fields in stored:
        digest = fields["sha256"]
        if Image.objects.filter(sha256=digest).exists() or Reference.objects.filter(sha256=digest).exists():
            continue
        for name in (fields["file"], fields["thumbnail"]):
            if default_storage.exists(name):
                default_storage.delete(name)
