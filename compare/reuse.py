"""Reuse of identical requests: the same model, prompt, options and input images
within the cache window gets the stored images again, marked cached, at no cost.

The key covers everything that changes what the provider is asked; options that
only change how we display a run (tags, blind) are not part of it."""

import hashlib
import json
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from compare.models import Generation, Image

# Options that do not change the request a provider receives.
NOT_IN_KEY = {"regenerate", "fallback_model", "fallback_quality", "fallback_on_text_check", "references", "mask"}


def key_for(gen: Generation) -> str:
    run = gen.run
    inputs = [(r.kind, r.position, r.sha256) for r in run.references.all()]
    payload = {
        "model": gen.model_key,
        "model_id": gen.model_id,
        "prompt": run.prompt,
        "options": {k: v for k, v in sorted({**run.options, **gen.option_overrides}.items()) if k not in NOT_IN_KEY},
        "inputs": sorted(inputs),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def find_hit(gen: Generation) -> Generation | None:
    if settings.COMPARE_CACHE_SECONDS <= 0 or gen.run.options.get("regenerate"):
        return None
    if gen.run.blind:
        # Byte-identical images would tie a blind side to a named earlier run.
        return None
    since = timezone.now() - timedelta(seconds=settings.COMPARE_CACHE_SECONDS)
    return (
        Generation.objects.filter(
            cache_key=gen.cache_key,
            status=Generation.Status.SUCCEEDED,
            finished_at__gte=since,
            cached_from__isnull=True,
            simulated=gen.simulated,
        )
        .exclude(pk=gen.pk)
        .order_by("-finished_at")
        .first()
    )


def copy_images(source: Generation, target: Generation) -> None:
    """New rows for the same content-addressed files: nothing is written twice."""
    for image in source.images.filter(is_partial=False):
        Image.objects.create(generation=target, index=image.index, **image.stored_fields())
