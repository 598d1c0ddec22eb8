"""One adapter module per wire protocol; `adapter_for` picks it."""

from types import ModuleType


def adapter_for(protocol: str) -> ModuleType:
    if protocol == "openai-images":
        from compare.providers import openai_images

        return openai_images
    if protocol == "gemini":
        from compare.providers import gemini

        return gemini
    raise ValueError(f"No adapter for protocol {protocol!r}")
