"""`manage.py issue_token USERNAME [--name NAME]`: a new API token, printed once.

`--revoke HINT` revokes a token by its hint (the first 8 characters, shown in
the token list) or by the whole token; `--list` shows a user's tokens.
The token alone goes to stdout, so `TOKEN=$(manage.py issue_token alice)` works.
"""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from compare.models import ApiToken


class Command(BaseCommand):
    help = "Issue an API token for a user (printed once), list a user's tokens, or revoke one."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username", nargs="?", help="The user the token belongs to.")
        parser.add_argument("--name", default="API token", help="A label to recognise the token by.")
        parser.add_argument(
            "--revoke", metavar="HINT", help="Revoke the active token with this hint (or this full token)."
        )
        parser.add_argument(
            "--list", dest="list_tokens", action="store_true", help="List the user's tokens instead of issuing one."
        )

    def handle(self, *args, username: str | None, name: str, revoke: str | None, list_tokens: bool, **opts) -> None:
        user = self._user(username) if username else None
        if revoke:
            return self._revoke(revoke, user)
        if user is None:
            raise CommandError("Name the user: manage.py issue_token USERNAME (or use --revoke HINT).")
        if list_tokens:
            return self._list(user)
        name = name.strip()[:100] or "API token"
        row, token = ApiToken.issue(user, name)
        self.stdout.write(token)
        self.stderr.write(
            f"Token {name!r} for {user.get_username()} ({row.hint}…). Copy it now: it is not shown again.",
            style_func=str,
        )

    @staticmethod
    def _user(username: str):
        try:
            return get_user_model().objects.get_by_natural_key(username)
        except get_user_model().DoesNotExist:
            raise CommandError(f"No user named {username!r}.") from None

    def _revoke(self, hint: str, user) -> None:
        tokens = ApiToken.objects.active().select_related("user")
        if user is not None:
            tokens = tokens.filter(user=user)
        # A whole token is matched by its digest; a hint by the stored prefix.
        matches = list(tokens.filter(digest=ApiToken.hash(hint))) or list(tokens.filter(hint=hint))
        if not matches:
            raise CommandError(f"No active token matches {hint!r}.")
        if len(matches) > 1:
            owners = ", ".join(sorted({t.user.get_username() for t in matches}))
            raise CommandError(
                f"{len(matches)} active tokens match {hint!r} (users: {owners}); "
                "name the user too, or pass the whole token."
            )
        token = matches[0]
        ApiToken.objects.filter(pk=token.pk).update(revoked_at=timezone.now())
        self.stdout.write(f"Revoked {token.name!r} ({token.hint}…) of {token.user.get_username()}.")

    def _list(self, user) -> None:
        rows = user.api_tokens.order_by("-created_at")
        if not rows:
            self.stdout.write(f"{user.get_username()} has no tokens.")
        for row in rows:
            state = f"revoked {row.revoked_at:%Y-%m-%d}" if row.revoked_at else "active"
            used = f"last used {row.last_used_at:%Y-%m-%d %H:%M}" if row.last_used_at else "never used"
            self.stdout.write(f"{row.hint}…  {row.name:<20}  {state:<18}  {used}")
