"""Ids and numbers from untrusted text (compare/parsing.py), and the views that read them:
a made-up value is treated like a missing one or explained, never a 500."""

import uuid

import pytest

from compare.models import ApiToken, Criterion, Rating
from compare.parsing import parse_uuid, parse_whole_number
from tests.factories import make_run

MANY_DIGITS = "9" * 5000  # more than int() reads from text: it raises ValueError


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2f1e8a4e-4b8f-4f5a-9d2c-1a2b3c4d5e6f", uuid.UUID("2f1e8a4e-4b8f-4f5a-9d2c-1a2b3c4d5e6f")),
        ("2F1E8A4E4B8F4F5A9D2C1A2B3C4D5E6F", uuid.UUID("2f1e8a4e-4b8f-4f5a-9d2c-1a2b3c4d5e6f")),
        (uuid.UUID(int=7), uuid.UUID(int=7)),
        ("nope", None),
        ("", None),
        (None, None),
        (42, None),
        ("2f1e8a4e-4b8f-4f5a-9d2c-1a2b3c4d5e6f0", None),
    ],
)
def test_parse_uuid(value, expected):
    assert parse_uuid(value) == expected


@pytest.mark.parametrize(
    ("value", "kwargs", "expected"),
    [
        ("12", {}, 12),
        ("0", {}, 0),
        ("007", {}, 7),
        (3, {}, 3),
        ("0", {"minimum": 1}, None),
        ("6", {"minimum": 1, "maximum": 5}, None),
        ("5", {"minimum": 1, "maximum": 5}, 5),
        ("", {"default": 4}, 4),
        (None, {"default": 4}, 4),
        ("-1", {}, None),
        ("+1", {}, None),
        (" 1", {}, None),
        ("1.0", {}, None),
        ("1e3", {}, None),
        ("²", {}, None),  # str.isdigit says yes, int() says no
        ("١٢", {}, None),  # Arabic-Indic digits: int() would read them
        (MANY_DIGITS, {}, None),
        (True, {}, None),
        (1.5, {}, None),
        (["1"], {"default": 2}, 2),
    ],
)
def test_parse_whole_number(value, kwargs, expected):
    assert parse_whole_number(value, **kwargs) == expected


@pytest.mark.parametrize(
    "url",
    [
        f"/runs/options?part=summary&reference_count={MANY_DIGITS}",
        f"/api/runs?page={MANY_DIGITS}",
    ],
)
def test_thousands_of_digits_in_a_query_are_not_a_500(auth_client, user, url):
    if url.startswith("/api/"):
        _, token = ApiToken.issue(user, "t")
        response = auth_client.get(url, headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 400
        assert "page must be a whole number" in response.json()["error"]["fields"]["page"][0]
    else:
        assert auth_client.get(url).status_code == 200


def test_thousands_of_digits_on_the_run_page_are_not_a_500(auth_client, user):
    run = make_run(user)
    gen = run.generations.get(position=0)
    response = auth_client.get(f"/runs/{run.id}/parts/notes?sides={MANY_DIGITS}", HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    criterion = Criterion.objects.filter(active=True)[0]
    response = auth_client.post(
        f"/runs/{run.id}/generations/{gen.id}/rate", {f"stars-{criterion.id}": MANY_DIGITS}, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 422 and "give 1 to 5 stars" in response.content.decode()
    assert not Rating.objects.exists()


def test_thousands_of_digits_revoke_no_token(auth_client, user):
    ApiToken.issue(user, "keep")
    response = auth_client.post("/settings/tokens", {"revoke": MANY_DIGITS}, follow=True)
    assert response.status_code == 200 and "No such token." in response.content.decode()
    assert ApiToken.objects.get().revoked_at is None
