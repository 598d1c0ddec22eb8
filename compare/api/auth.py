"""Token authentication: `Authorization: Bearer cmp_…`, never the session cookie.

The API views are CSRF-exempt; accepting the cookie would let any web page post
runs on a logged-in user's behalf. Image files also accept a token (scripts fetch
the image URLs the API returns), through `bearer_token` (compare/views/files.py).
"""

from django.contrib.auth.models import User
from django.http import HttpRequest

from compare.api.errors import ApiError
from compare.models import ApiToken


def bearer_token(request: HttpRequest) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, if there is one."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return (token.strip() or None) if scheme.lower() == "bearer" else None


def authenticate(request: HttpRequest) -> User:
    """The user of the request's token; a 401 ApiError when it has none or a bad one."""
    token = bearer_token(request)
    if not token:
        raise ApiError(
            401, "Send an API token: 'Authorization: Bearer <token>'.", headers={"WWW-Authenticate": "Bearer"}
        )
    user = ApiToken.authenticate(token)
    if user is None:
        raise ApiError(
            401,
            "The API token is invalid or has been revoked.",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
    return user
