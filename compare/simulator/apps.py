from django.apps import AppConfig


class SimulatorConfig(AppConfig):
    """The provider simulator: OpenAI's Images API and Gemini's generateContent,
    answered over real HTTP with deterministic images. No models of its own."""

    name = "compare.simulator"
    label = "simulator"
    verbose_name = "Provider simulator"
