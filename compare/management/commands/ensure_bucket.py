"""`manage.py ensure_bucket`: make sure the S3 bucket of COMPARE_S3_BUCKET exists and lets
the compare stage read its images (a CORS rule). Safe to run on every deployment; the
bucket's objects stay private either way (compare/storage.py)."""

from django.core.management.base import BaseCommand, CommandError

from compare import storage


class Command(BaseCommand):
    help = "Create the S3 bucket named by COMPARE_S3_BUCKET if it is missing, and set the CORS rule the stage needs."

    def handle(self, *args, **opts) -> None:
        if not storage.is_remote():
            raise CommandError("COMPARE_S3_BUCKET is not set: images are stored on the local disk (COMPARE_VAR_DIR).")
        from botocore.exceptions import BotoCoreError, ClientError

        bucket = getattr(storage.default_storage, "bucket_name", "")
        try:
            created, cors = storage.ensure_bucket()
        except (BotoCoreError, ClientError) as exc:
            raise CommandError(f"Could not reach or create the bucket {bucket!r}: {exc}") from None
        self.stdout.write(f"Bucket {bucket!r} {'created' if created else 'exists'}; {cors}.")
