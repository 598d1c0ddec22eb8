from django.apps import AppConfig


class CompareConfig(AppConfig):
    name = "compare"
    verbose_name = "compare"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Fail at start, with a clear message, when the model registry is wrong.
        from compare import live  # noqa: F401  (connects the signals that wake open run pages)
        from compare.redact import install_log_redaction
        from compare.registry import registry

        registry()
        # No log line, from any library, carries a provider key.
        install_log_redaction()
