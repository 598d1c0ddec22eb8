"""The official SDKs against the live simulator, every reply validated with their models.

The SDKs build their reply objects without checking them (openai's `construct`), or drop
fields they do not know before checking (google-genai's `_from_response`), so a call that
"works" proves little. Here each client's httpx transport keeps the bytes it received, and
every reply is validated strictly with the SDK's own pydantic models: openai 3.57's
`ImagesResponse` and image stream events, google-genai 3.6.1's `GenerateContentResponse`
(camelCase JSON), exactly as the wire carried it, unknown fields forbidden. google-genai's
models forbid them themselves; openai's allow any extra field, so they are validated through
strict subclasses (`strict`), where a misspelt field fails. The SDK tests of
tests/test_simulator.py use the same validating client (`Wire`).
"""

import functools
import io
import json
import operator
import types
import typing
from typing import Any

import httpx
import pydantic
import pytest
from PIL import Image

from compare.simulator import faults
from tests.factories import png

openai = pytest.importorskip("openai")
genai = pytest.importorskip("google.genai")

from google.genai import errors as genai_errors  # noqa: E402
from google.genai import types as gtypes  # noqa: E402
from google.genai.models import _Model_from_mldev  # noqa: E402
from openai.types import (  # noqa: E402
    ImageEditCompletedEvent,
    ImageEditPartialImageEvent,
    ImageGenCompletedEvent,
    ImageGenPartialImageEvent,
    ImagesResponse,
)
from openai.types.shared import ErrorObject  # noqa: E402


def _strict_type(annotation: Any) -> Any:
    """The annotation with every pydantic model in it (in Optional, List, Union) made strict."""
    if isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel):
        return strict(annotation)
    args = typing.get_args(annotation)
    if not args or typing.get_origin(annotation) is typing.Literal:
        return annotation
    inner = tuple(_strict_type(arg) for arg in args)
    if inner == args:
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return functools.reduce(operator.or_, inner)
    return annotation.copy_with(inner)


@functools.cache
def strict(model: type[pydantic.BaseModel]) -> type[pydantic.BaseModel]:
    """A subclass of an openai SDK model (and of the models in its fields) that forbids the
    extra fields the SDK's own models let through: `{"b64json": …}` is an error, not an Image
    without data."""
    base = type(model.__name__, (model,), {"model_config": pydantic.ConfigDict(extra="forbid")})
    fields: Any = {name: (_strict_type(info.annotation), info) for name, info in model.model_fields.items()}
    return pydantic.create_model(f"Strict{model.__name__}", __base__=base, **fields)


STRICT_IMAGES_RESPONSE = strict(ImagesResponse)
STREAM_EVENTS: dict[str, type[pydantic.BaseModel]] = {
    "image_generation.partial_image": strict(ImageGenPartialImageEvent),
    "image_generation.completed": strict(ImageGenCompletedEvent),
    "image_edit.partial_image": strict(ImageEditPartialImageEvent),
    "image_edit.completed": strict(ImageEditCompletedEvent),
}


@pytest.fixture(autouse=True)
def _fresh_counters():
    faults.reset_counters()
    yield
    faults.release_sleepers()


class Wire:
    """An httpx client for an SDK that validates every reply it receives with that SDK's
    models (see `validate`) and keeps it, body read, in `replies` (each with its request,
    body read too, multipart included)."""

    def __init__(self) -> None:
        self.replies: list[httpx.Response] = []
        hooks = {"request": [lambda request: request.read()], "response": [self._keep]}
        self.client = httpx.Client(timeout=60, event_hooks=hooks)

    def _keep(self, response: httpx.Response) -> None:
        response.read()
        validate(response)
        self.replies.append(response)

    def last(self) -> httpx.Response:
        assert self.replies, "no reply went over the wire"
        return self.replies[-1]


def validate(response: httpx.Response) -> list:
    """The reply's body validated with the SDK models for its URL: OpenAI images JSON as
    a strict ImagesResponse, its streams event by event, its errors as ErrorObject (which stays
    lenient: a refusal carries `moderation_details` and `safety_violations`, fields the
    real API sends and the SDK's ErrorObject does not list); Gemini replies
    (whole, or each SSE chunk) as GenerateContentResponse, its model lists as Model.
    Raises pydantic.ValidationError (or KeyError for an unknown event type)."""
    path = response.request.url.path
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        if "/openai/" in path:
            return validated_events(response)
        chunks = [data for _, data in sse(response)]
        return [gtypes.GenerateContentResponse.model_validate_json(chunk) for chunk in chunks]
    if "/openai/" in path:
        if not response.is_success:
            return [ErrorObject.model_validate(response.json()["error"])]
        if "/images/" in path:
            return [STRICT_IMAGES_RESPONSE.model_validate_json(response.content)]
        return []  # the model list: openai's Model is checked by the SDK's own call
    if not response.is_success:
        error = response.json()["error"]
        assert isinstance(error["code"], int) and error["status"] and error["message"]
        return [error]
    if ":generateContent" in path:
        return [gtypes.GenerateContentResponse.model_validate_json(response.content)]
    if ":streamGenerateContent" in path:
        return [gtypes.GenerateContentResponse.model_validate(chunk) for chunk in response.json()]
    body = response.json()  # a model list, read as the SDK reads it (renamed fields, extra ones dropped)
    return [gtypes.Model._from_response(response=_Model_from_mldev(m), kwargs={}) for m in body.get("models", [body])]


def sse(response: httpx.Response) -> list[tuple[str, str]]:
    """(event, data) of each server-sent event, read independently of the app's reader."""
    out = []
    for block in response.text.replace("\r\n", "\n").split("\n\n"):
        event, data = "", []
        for line in block.split("\n"):
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].strip())
        if data:
            out.append((event, "\n".join(data)))
    return out


def validated_events(response: httpx.Response) -> list:
    """Every event of an image stream validated by its SDK type ([DONE] ends it); an
    error event as the SDK reads it: an ErrorObject under "error"."""
    events: list[Any] = []
    for event, data in sse(response):
        if data == "[DONE]":
            break
        body = json.loads(data)
        if body["type"] == "error":
            assert event == "error"
            events.append(ErrorObject.model_validate(body["error"]))
            continue
        parsed: Any = STREAM_EVENTS[body["type"]].model_validate(body)
        assert event == parsed.type  # the `event:` line names the same type as the JSON
        events.append(parsed)
    return events


def images_reply(wire: Wire) -> Any:
    """The last reply as an ImagesResponse (Any: the tests reach into optional fields)."""
    return STRICT_IMAGES_RESPONSE.model_validate_json(wire.last().content)


def picture(b64: str) -> Image.Image:
    import base64

    image = Image.open(io.BytesIO(base64.b64decode(b64)))
    image.load()
    return image


# --- openai -------------------------------------------------------------------------------------


def reply(path: str, body: str, content_type: str = "application/json") -> httpx.Response:
    request = httpx.Request("POST", f"http://testserver/sim/openai/v1{path}")
    return httpx.Response(200, content=body.encode(), headers={"content-type": content_type}, request=request)


def test_a_misspelt_field_fails_validation_although_the_sdk_lets_it_through():
    misspelt = '{"created": 1, "data": [{"b64json": "aGk="}]}'
    ImagesResponse.model_validate_json(misspelt)  # the SDK's own model: an Image with no data, no error

    with pytest.raises(pydantic.ValidationError, match="b64json"):
        validate(reply("/images/generations", misspelt))
    with pytest.raises(pydantic.ValidationError, match="image_tokenz"):
        usage = '"usage": {"input_tokens": 1, "output_tokens": 1, "total_tokens": 2, "input_tokens_details": '
        validate(reply("/images/edits", '{"created": 1, ' + usage + '{"image_tokenz": 0, "text_tokens": 1}}}'))
    event = {"type": "image_generation.partial_image", "b64_json": "aGk=", "partial_image_index": 0}
    stream = f"event: {event['type']}\ndata: {json.dumps({**event, 'sise': '1024x1024'})}\n\n"
    with pytest.raises(pydantic.ValidationError, match="sise"):
        validate(reply("/images/generations", stream, "text/event-stream"))

    (checked,) = validate(reply("/images/generations", '{"created": 1, "data": [{"b64_json": "aGk="}]}'))
    assert checked.data[0].b64_json == "aGk="


@pytest.fixture
def oa(live_server):
    wire = Wire()
    client = openai.OpenAI(
        base_url=live_server.url + "/sim/openai/v1", api_key="sk-test", max_retries=0, http_client=wire.client
    )
    return client, wire


@pytest.mark.parametrize(("fmt", "pil"), [("jpeg", "JPEG"), ("webp", "WEBP")])
def test_openai_jpeg_and_webp_replies_validate(oa, fmt, pil):
    client, wire = oa
    result = client.images.generate(
        model="gpt-image-2", prompt='"Lossy"', quality="low", output_format=fmt, output_compression=70
    )
    checked = images_reply(wire)
    assert checked.output_format == fmt == result.output_format
    assert json.loads(wire.last().request.content)["output_compression"] == 70
    assert picture(checked.data[0].b64_json).format == pil


def test_openai_several_images_validate(oa):
    client, wire = oa
    client.images.generate(model="gpt-image-2", prompt='"Three"', quality="low", n=3, size="1536x1024")
    checked = images_reply(wire)
    assert json.loads(wire.last().request.content)["n"] == 3
    assert len(checked.data) == 3 and len({item.b64_json for item in checked.data}) == 3
    assert all(picture(item.b64_json).size == (1536, 1024) for item in checked.data)
    assert checked.usage.output_tokens == 3 * 167


def test_openai_masked_edit_validates(oa):
    client, wire = oa
    mask = Image.new("RGBA", (1024, 1024), (0, 0, 0, 255))
    mask.paste((0, 0, 0, 0), (0, 0, 512, 1024))  # alpha 0 = edit the left half
    buffer = io.BytesIO()
    mask.save(buffer, "PNG")
    client.images.edit(
        model="gpt-image-2",
        prompt='"Masked"',
        quality="low",
        size="1024x1024",
        image=("base.png", png((0, 200, 0), (1024, 1024)), "image/png"),
        mask=("mask.png", buffer.getvalue(), "image/png"),
    )
    sent = wire.last().request
    assert sent.headers["content-type"].startswith("multipart/form-data")
    assert b'name="mask"; filename="mask.png"' in sent.content and b'name="image"; filename="base.png"' in sent.content
    checked = images_reply(wire)
    edited = picture(checked.data[0].b64_json).convert("RGB")
    assert edited.size == (1024, 1024) and edited.getpixel((1000, 60)) == (0, 200, 0)  # outside the mask: kept


def test_openai_edit_stream_events_validate(oa):
    client, wire = oa
    events = list(
        client.images.edit(
            model="gpt-image-2",
            prompt='"Streamed edit"',
            quality="low",
            image=[("a.png", png((255, 0, 0)), "image/png"), ("b.png", png((0, 0, 255)), "image/png")],
            stream=True,
            partial_images=2,
        )
    )
    assert b'name="stream"' in wire.last().request.content
    checked = validated_events(wire.last())
    assert [e.type for e in checked] == [e.type for e in events]
    assert [e.type for e in checked] == ["image_edit.partial_image"] * 2 + ["image_edit.completed"]
    assert checked[-1].usage.input_tokens_details.image_tokens > 0


def test_openai_generation_stream_events_validate(oa):
    client, wire = oa
    list(
        client.images.generate(
            model="gpt-image-2", prompt='"Stream"', quality="low", output_format="webp", stream=True, partial_images=1
        )
    )
    checked = validated_events(wire.last())
    assert [e.type for e in checked] == ["image_generation.partial_image", "image_generation.completed"]
    assert picture(checked[-1].b64_json).format == "WEBP"


def test_openai_error_event_mid_stream_raises_in_the_sdk(oa):
    client, wire = oa
    stream = client.images.generate(
        model="gpt-image-2", prompt='"Break" [[fault:stream_error]]', quality="low", stream=True, partial_images=2
    )
    received = []
    with pytest.raises(openai.APIError) as info:
        received.extend(stream)
    assert [e.type for e in received] == ["image_generation.partial_image"]
    assert info.value.code == "server_error" and "server had an error" in info.value.message
    events = sse(wire.last())
    assert events[-1][0] == "error" and json.loads(events[-1][1])["error"]["type"] == "server_error"


def test_openai_refusal_carries_moderation_details(oa):
    client, _ = oa
    with pytest.raises(openai.BadRequestError) as info:
        client.images.generate(model="gpt-image-2", prompt="x [[fault:refusal]]")
    body = info.value.body
    assert info.value.code == "moderation_blocked" and body["type"] == "image_generation_user_error"
    assert body["moderation_details"] == {"moderation_stage": "output", "categories": ["violence"]}
    assert body["safety_violations"] == ["violence"]


# --- google-genai --------------------------------------------------------------------------------


@pytest.fixture
def gm(live_server):
    wire = Wire()
    client = genai.Client(
        api_key="AIza-test",
        http_options=gtypes.HttpOptions(
            base_url=live_server.url + "/sim/gemini", api_version="v1beta", httpx_client=wire.client
        ),
    )
    return client, wire


def validated(wire: Wire) -> Any:
    """The last reply as a GenerateContentResponse (Any: the tests reach into optional fields)."""
    return gtypes.GenerateContentResponse.model_validate_json(wire.last().content)


def test_genai_image_reply_with_grounding_validates(gm):
    client, wire = gm
    response: Any = client.models.generate_content(
        model="gemini-3-pro-image",
        contents='"Grounded"',
        config=gtypes.GenerateContentConfig(
            response_modalities=["TEXT", "IMAGE"], tools=[gtypes.Tool(google_search=gtypes.GoogleSearch())]
        ),
    )
    sent = json.loads(wire.last().request.content)
    assert sent["tools"] == [{"googleSearch": {}}] and wire.last().request.headers["x-goog-api-key"] == "AIza-test"
    checked = validated(wire)
    meta = checked.candidates[0].grounding_metadata
    assert "<style>" in meta.search_entry_point.rendered_content
    assert response.candidates[0].grounding_metadata.search_entry_point.rendered_content == (
        meta.search_entry_point.rendered_content
    )
    finals = [p for p in checked.candidates[0].content.parts if p.inline_data and not p.thought]
    assert len(finals) == 1 and Image.open(io.BytesIO(finals[0].inline_data.data)).size == (1024, 1024)


def test_genai_prompt_blocked_validates(gm):
    client, wire = gm
    response: Any = client.models.generate_content(model="gemini-3-pro-image", contents="x [[fault:prompt_blocked]]")
    checked = validated(wire)
    assert not checked.candidates and checked.prompt_feedback.block_reason == gtypes.BlockedReason.PROHIBITED_CONTENT
    assert response.prompt_feedback.block_reason == gtypes.BlockedReason.PROHIBITED_CONTENT
    assert checked.usage_metadata.prompt_token_count > 0


def test_genai_no_image_validates(gm):
    client, wire = gm
    response: Any = client.models.generate_content(model="gemini-3-pro-image", contents="x [[fault:no_image]]")
    checked = validated(wire)
    candidate = checked.candidates[0]
    assert candidate.finish_reason == gtypes.FinishReason.NO_IMAGE and candidate.finish_message
    assert candidate.content.parts is None and response.parts is None


def test_genai_text_only_validates(gm):
    client, wire = gm
    response: Any = client.models.generate_content(model="gemini-3-pro-image", contents="a fox [[fault:text_only]]")
    checked = validated(wire)
    assert checked.candidates[0].finish_reason == gtypes.FinishReason.STOP
    assert [p.inline_data for p in checked.candidates[0].content.parts] == [None]
    assert response.text.startswith("I can't create that image")


@pytest.mark.parametrize(
    ("key", "marker", "code", "status", "reason"),
    [
        ("invalid-key", "", 400, "INVALID_ARGUMENT", "API_KEY_INVALID"),
        ("AIza-test", " [[fault:auth]]", 400, "INVALID_ARGUMENT", "API_KEY_INVALID"),
        ("AIza-test", " [[fault:no_key]]", 403, "PERMISSION_DENIED", None),
    ],
)
def test_genai_key_errors(live_server, key, marker, code, status, reason):
    client = genai.Client(
        api_key=key, http_options=gtypes.HttpOptions(base_url=live_server.url + "/sim/gemini", api_version="v1beta")
    )
    with pytest.raises(genai_errors.ClientError) as info:
        client.models.generate_content(model="gemini-3-pro-image", contents="a fox" + marker)
    assert (info.value.code, info.value.status) == (code, status)
    reasons = {d.get("reason") for d in info.value.details["error"].get("details", [])}
    assert (reason in reasons) if reason else not reasons
