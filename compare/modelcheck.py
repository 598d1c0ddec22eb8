"""Is every model in the registry still offered by its provider?

Model ids are retired often, so an admin needs a quick way to
see that `gemini-3-pro-image-preview` died before designers see failed panes.
Each provider account is asked once for its model list (GET /v1/models or
GET /v1beta/models); every registry model is then marked ok, missing, error,
no_key, disabled or retired. Provider trouble never raises: it becomes a row.

A model past its registry `retires_on` day is "retired" without asking anyone: it is
no longer offered for new runs, but while the registry still enables it the check fails,
so an admin disables it (or switches to its replacement) before the list of models
quietly shrinks. A disabled retired model is only noted. Before the day, the row's
note says when it retires and what to use.
"""

from collections.abc import Iterable
from dataclasses import asdict, dataclass

import httpx

from compare.http import shared_client
from compare.providers._common import auth_headers, scrub
from compare.redact import shorten_redacted
from compare.registry import Model, registry

OK, MISSING, ERROR, NO_KEY, DISABLED, RETIRED = "ok", "missing", "error", "no_key", "disabled", "retired"
FAILING = {MISSING, ERROR, RETIRED}  # what makes `check_models` exit 1 (only enabled models get these)
LABELS = {OK: "OK", MISSING: "Missing", ERROR: "Error", NO_KEY: "No key", DISABLED: "Disabled", RETIRED: "Retired"}

# A model list is small and quick; the 300 s generation timeout would hang the page.
TIMEOUT = httpx.Timeout(15.0, connect=5.0)
GEMINI_PAGE_SIZE = 1000
MAX_PAGES = 20  # a provider that keeps handing out page tokens must not loop us forever

VENDOR = {"openai-images": "OpenAI", "gemini": "Google"}


@dataclass(frozen=True)
class ModelStatus:
    key: str
    label: str
    model_id: str
    protocol: str
    provider: str  # base URL the list came from, scrubbed; never the key
    simulated: bool
    status: str
    note: str = ""

    @property
    def status_label(self) -> str:
        return LABELS.get(self.status, self.status)

    @property
    def failing(self) -> bool:
        return self.status in FAILING

    def as_dict(self) -> dict:
        return asdict(self)


class ListError(Exception):
    """The provider's model list could not be read; the message is for people."""


def _provider_name(model: Model) -> str:
    """Who answered, capitalised for the start of a sentence."""
    return "The simulator" if model.simulated else (model.vendor or VENDOR.get(model.protocol, "The provider"))


def _lower(name: str) -> str:
    return name[:1].lower() + name[1:] if name.startswith("The ") else name


def _error_message(response: httpx.Response) -> str:
    """The provider's own words when it sent its JSON error shape, else a short body."""
    try:
        body = response.json()
        message = body["error"]["message"] if isinstance(body.get("error"), dict) else ""
    except (ValueError, AttributeError, KeyError, TypeError):
        message = ""
    if not message and not response.text.lstrip().startswith("<"):  # proxies' HTML pages say nothing
        message = response.text
    return shorten_redacted(str(message), 200)


def _get_json(client: httpx.Client, url: str, model: Model, params: dict | None = None) -> dict:
    name = _provider_name(model)
    try:
        response = client.get(url, params=params, headers=auth_headers(model), timeout=TIMEOUT)
    except httpx.TimeoutException:
        raise ListError(f"{name} did not answer within {TIMEOUT.read:.0f} s.") from None
    except httpx.ConnectError as exc:
        # The simulator lives in the web server; from the CLI it is only there while that runs.
        hint = " (is the web server running?)" if model.simulated else ""
        raise ListError(
            f"Could not reach {_lower(name)}{hint}: {shorten_redacted(str(exc) or type(exc).__name__, 200)}"
        ) from None
    except httpx.HTTPError as exc:
        raise ListError(
            f"Could not reach {_lower(name)}: {shorten_redacted(str(exc) or type(exc).__name__, 200)}"
        ) from None
    if response.status_code != 200:
        message = f"{name} answered HTTP {response.status_code} {response.reason_phrase}".rstrip()
        detail = _error_message(response)
        if response.status_code in (401, 403) and not model.simulated:
            detail = f"{detail} (check {model.api_key_env})".strip()
        raise ListError(f"{message}: {detail}" if detail else f"{message}.")
    try:
        body = response.json()
    except ValueError:
        raise ListError(f"{name} sent a reply that is not JSON.") from None
    if not isinstance(body, dict):
        raise ListError(f"{name} sent an unexpected reply (not a model list).")
    return body


def _openai_ids(client: httpx.Client, model: Model) -> set[str]:
    body = _get_json(client, f"{model.endpoint_base()}/models", model)
    items = body.get("data")
    if not isinstance(items, list):
        raise ListError(f"{_provider_name(model)} sent an unexpected reply (no data list).")
    return {str(item.get("id")) for item in items if isinstance(item, dict)}


def _gemini_ids(client: httpx.Client, model: Model) -> set[str]:
    ids: set[str] = set()
    params: dict = {"pageSize": GEMINI_PAGE_SIZE}
    for _ in range(MAX_PAGES):
        body = _get_json(client, f"{model.endpoint_base()}/models", model, params)
        items = body.get("models", [])  # an empty account answers {} with no "models"
        if not isinstance(items, list):
            raise ListError(f"{_provider_name(model)} sent an unexpected reply (no models list).")
        for item in items:
            if isinstance(item, dict) and item.get("name"):
                ids.add(str(item["name"]).removeprefix("models/"))
        token = body.get("nextPageToken")
        if not token:
            return ids
        params = {"pageSize": GEMINI_PAGE_SIZE, "pageToken": token}
    raise ListError(f"{_provider_name(model)} kept paging after {MAX_PAGES} pages of models.")


LISTERS = {"openai-images": _openai_ids, "gemini": _gemini_ids}


def _account(model: Model) -> tuple[str, str, str]:
    # Same base URL, auth style and key = same provider account = one list request.
    return (model.endpoint_base(), model.auth, model.credential())


def _row(model: Model, status: str, note: str) -> ModelStatus:
    if model.retires_on is not None and status != RETIRED:
        note = f"{note} {model.retirement_note()}"
    return ModelStatus(
        key=model.key,
        label=model.label,
        model_id=model.model_id,
        protocol=model.protocol,
        provider=scrub(model.endpoint_base(), model.api_key),
        simulated=model.simulated,
        status=status,
        note=note,
    )


def check_models(client: httpx.Client | None = None, models: Iterable[Model] | None = None) -> list[ModelStatus]:
    """One status per registry model, in registry order; disabled ones are not called."""
    client = client or shared_client()
    models = list(registry().values() if models is None else models)
    listed: dict[tuple[str, str, str], set[str] | ListError] = {}
    rows: list[ModelStatus] = []
    for model in models:
        if model.enabled and model.retired:
            rows.append(_row(model, RETIRED, f"{model.retirement_note()} No longer offered for new runs: disable it."))
            continue
        if not model.enabled:
            rows.append(_row(model, DISABLED, "Disabled in the registry; not checked."))
            continue
        if not model.available:
            rows.append(_row(model, NO_KEY, f"No API key: set {model.api_key_env} (the simulator is off)."))
            continue
        account = _account(model)
        if account not in listed:
            try:
                listed[account] = LISTERS[model.protocol](client, model)
            except ListError as exc:
                listed[account] = exc
        ids = listed[account]
        if isinstance(ids, ListError):
            rows.append(_row(model, ERROR, scrub(str(ids), model.api_key)))
        elif model.model_id in ids:
            rows.append(_row(model, OK, "Listed by the simulator." if model.simulated else "Listed by the provider."))
        else:
            rows.append(_row(model, MISSING, f"Missing or retired: {model.model_id} is not in the model list."))
    return rows
