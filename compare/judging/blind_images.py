"""The images a viewer sees while a run's names are hidden from them.

An output file tells its model apart in three ways besides its pixels: its format
(one provider answers in WebP, another in PNG), its exact pixel size (2720×1536
against 2752×1536 for the same 16:9 request) and its metadata (C2PA, XMP, EXIF).
So a blind viewer never gets the original: every side is served as a PNG at one
common display size, re-encoded from the pixels (no metadata survives), through
an address that names the run and the side's letter, never the file's hash.

The common size is the largest width and the largest height among the run's
images. An image within 3 % of that frame's aspect ratio is resampled to exactly
that frame (2720×1536 becomes 2752×1536: a 1.2 % stretch that no eye sees); an
image of a clearly different shape keeps its shape and its size (fitted inside
the frame, never enlarged), since a different shape is plain to see anyway.
Why the largest and not the smallest: the compare stage shows every side at one
scale, set by the largest image. With the largest as the frame, that scale is the
same before the vote (display copies) and after it (originals), so when the names
appear the larger side stays exactly where it was and the smaller one shrinks by
its 1 % in place, instead of both sides changing scale. Once the viewer has
voted, the originals are shown.

The copies are derived files, cached in storage next to the originals
(`blind/…`), made on the first request for them; a thumbnail of a copy (WebP, made
from the copy, so it has the common shape too) is what the history shows of a
hidden run.

The originals themselves (`/images/<sha256>`, by their hash) are served only to a
viewer who may see them: `originals` is that rule, in one query."""

import hashlib
import io
import os
import threading
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db.models import Exists, OuterRef, QuerySet
from PIL import Image as PILImage

from compare.images import open_bytes, pixel_work, thumbnail_bytes
from compare.models import Image, Run

SAME_ASPECT = 0.03  # the stage's own rule for "the same shape" (static/stage.js)
FORMAT = "png"


@dataclass(frozen=True)
class BlindImage:
    """One image as a blind viewer is shown it: the attributes an `Image` has, with the
    display copy's address and size, and nothing that tells the original apart."""

    url: str
    thumbnail_url: str
    width: int
    height: int
    has_alpha: bool
    format: str = FORMAT
    bytes: None = None
    sha256: str = ""  # the original's hash is an address of the original: never shown
    blind: bool = True


class Sized(Protocol):
    """Anything with a pixel size: an `Image` row, a `BlindImage`."""

    width: int
    height: int


def frame(images: Iterable[Sized]) -> tuple[int, int] | None:
    """The common display frame of a run's images: the largest width and height."""
    sizes = [(img.width, img.height) for img in images]
    if not sizes:
        return None
    return max(w for w, _ in sizes), max(h for _, h in sizes)


def display_size(image: Sized, common: tuple[int, int]) -> tuple[int, int]:
    """The size `image` is shown at in the common frame (see the module's docstring)."""
    fw, fh = common
    if abs((image.width / image.height) / (fw / fh) - 1) < SAME_ASPECT:
        return fw, fh
    scale = min(fw / image.width, fh / image.height, 1.0)
    return max(1, round(image.width * scale)), max(1, round(image.height * scale))


def version(image: Image, size: tuple[int, int]) -> str:
    """A cache-busting key of the display copy: one-way, so it does not lead to the original."""
    return hashlib.sha256(f"blind:{image.sha256}:{size[0]}x{size[1]}".encode()).hexdigest()[:20]


_making: dict[str, threading.Lock] = {}
_making_lock = threading.Lock()


def _cached(name: str, make) -> bytes:
    """The stored copy `name`, made and stored on first use. Requests of this process for
    the same copy take turns (the side and list thumbnails of a page come at once), and a
    copy on local disk appears whole or not at all, so no reader gets half a file."""
    with _making_lock:
        lock = _making.setdefault(name, threading.Lock())
    with lock:
        try:
            return open_bytes(name)
        except FileNotFoundError:
            pass
        data = make()
        if not default_storage.exists(name):  # another process may have stored it meanwhile
            _save_whole(name, data)
        return data


def _save_whole(name: str, data: bytes) -> None:
    """Store `data` as `name` atomically: on local disk written aside and renamed into place
    (another process reading meanwhile sees no file, never a short one); elsewhere (S3) a
    single upload is atomic already."""
    try:
        final = default_storage.path(name)
    except NotImplementedError:
        default_storage.save(name, ContentFile(data))
        return
    os.makedirs(os.path.dirname(final), exist_ok=True)
    aside = f"{final}.{uuid.uuid4().hex}.part"
    with open(aside, "wb") as out:
        out.write(data)
    os.replace(aside, final)


def _encode(image: Image, size: tuple[int, int]) -> bytes:
    # Decoding and resizing hold one of the process's pixel slots (compare/images.py).
    with pixel_work(), PILImage.open(io.BytesIO(open_bytes(image.file))) as opened:
        img: PILImage.Image = opened
        img.load()
        alpha = img.mode in {"RGBA", "LA", "PA"} or "transparency" in img.info
        img = img.convert("RGBA" if alpha else "RGB")
        if img.size != size:
            img = img.resize(size, PILImage.Resampling.LANCZOS)
        out = io.BytesIO()
        img.save(out, "PNG", compress_level=3)  # no pnginfo: no metadata is written
        return out.getvalue()


def display_bytes(image: Image, size: tuple[int, int]) -> bytes:
    """The PNG display copy of `image` at `size`."""
    key = version(image, size)
    return _cached(f"blind/{key[:2]}/{key}.png", lambda: _encode(image, size))


def display_thumbnail(image: Image, size: tuple[int, int]) -> bytes:
    """A WebP thumbnail made from the display copy (so it has the common shape too)."""
    key = version(image, size)
    return _cached(f"blind/{key[:2]}/{key}-thumb.webp", lambda: thumbnail_bytes(display_bytes(image, size)))


def originals(user) -> QuerySet[Image]:
    """The images whose original file `user` may fetch by its hash: those of a run whose
    names this viewer may see (`RunQuerySet.with_viewer`, the blind rule). Files are
    content-addressed, so the same bytes may belong to several runs: one such run is
    enough, since the viewer can open that run and see the file anyway. A hash learnt
    elsewhere (an API reply of a teammate, a fork link) thus fetches nothing while the
    viewer has not voted on the blind run it comes from."""
    shown = Run.objects.with_viewer(user).filter(pk=OuterRef("generation__run_id"), names_hidden=False)
    return Image.objects.filter(Exists(shown))
