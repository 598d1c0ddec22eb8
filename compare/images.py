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
from PIL import UnidentifiedImageError

# Refuse decompression bombs: the largest real output is 4096×4096.
PILImage.MAX_IMAGE_PIXELS = 40_000_000
THUMBNAIL_EDGE = 480
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


def _put(name: str, data: bytes) -> None:
    # Content addressing makes this idempotent; a short file left by a crash is replaced.
    if default_storage.exists(name):
        if default_storage.size(name) == len(data):
            return
        default_storage.delete(name)
    default_storage.save(name, ContentFile(data))


def thumbnail_bytes(data: bytes) -> bytes:
    with PILImage.open(io.BytesIO(data)) as img:
        img.thumbnail((THUMBNAIL_EDGE, THUMBNAIL_EDGE))
        if img.mode not in {"RGB", "RGBA"}:
            img = img.convert("RGBA" if "A" in img.mode or "transparency" in img.info else "RGB")
        out = io.BytesIO()
        img.save(out, "WEBP", quality=80, method=4)
        return out.getvalue()


def store(data: bytes) -> tuple[str, str, str, ImageInfo]:
    """Write image + thumbnail; return (sha256, file name, thumbnail name, info)."""
    info = inspect(data)
    digest = sha256(data)
    name = f"images/{digest[:2]}/{digest}.{info.format}"
    thumb = f"thumbs/{digest[:2]}/{digest}.webp"
    _put(name, data)
    _put(thumb, thumbnail_bytes(data))
    return digest, name, thumb, info
