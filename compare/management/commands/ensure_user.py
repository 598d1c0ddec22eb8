"""`manage.py ensure_user`: make sure somebody can log in to a fresh install.

With no users at all it creates the superuser `admin` with a random password
and prints the credentials once; they are written nowhere else (not to a file,
not to the log). With users present it does nothing but say so. `--username`
names the account to ensure instead (created only if it does not exist);
`--password` or COMPARE_ADMIN_PASSWORD sets the password for scripted set-ups.
"""

import os
import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction


class Command(BaseCommand):
    help = "Create a first superuser (default `admin`, random password) when there is none; print its credentials once."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--username", help="Ensure this account exists (default: `admin`, only when no user exists)."
        )
        parser.add_argument("--password", help="Its password (default: COMPARE_ADMIN_PASSWORD, else a random one).")

    def handle(self, *args, username: str | None, password: str | None, **opts) -> None:
        User = get_user_model()
        with transaction.atomic():
            if username is None:
                if User.objects.exists():
                    self.stdout.write("Users exist already; no account created (see `manage.py changepassword`).")
                    return
                username = "admin"
            elif User.objects.filter(**{User.USERNAME_FIELD: username}).exists():
                self.stdout.write(f"User {username!r} exists already; its password is unchanged.")
                return
            given = password or os.environ.get("COMPARE_ADMIN_PASSWORD") or None
            chosen = given or secrets.token_urlsafe(12)
            if given:
                user = User(**{User.USERNAME_FIELD: username})
                try:
                    validate_password(given, user)
                except ValidationError as exc:
                    raise CommandError("The password is too weak: " + " ".join(exc.messages)) from None
            User.objects.create_superuser(username=username, email="", password=chosen)
        address = f"http://127.0.0.1:{settings.PORT}"
        if given:
            # The caller chose the password; echoing it would only put it in a log.
            self.stdout.write(f"Created superuser {username!r} with the password you gave. Log in at {address}.")
        else:
            self.stdout.write(self.style.SUCCESS(f"Log in at {address} as {username} / {chosen}"))
            self.stdout.write("This password is shown only once; change it after logging in.")
