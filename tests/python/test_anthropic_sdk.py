"""The official `anthropic` SDK, pointed at Tollgate, behaves as against Anthropic.

Each test drives the SDK the way an application would and checks two sides:
what the SDK hands back, and (through the `mock` fixture) what reached the
provider.
"""

from __future__ import annotations

import asyncio
import time

import anthropic
import httpx
import httpx2
import pytest

import mockreply
from conftest import ANTHROPIC_MODELS, ANTHROPIC_UPSTREAM_KEY, APP_PLACEHOLDER_KEY, Mock, Proxy

MODEL = "claude-sonnet-4-5"
MAX_TOKENS = 256

SYSTEM = "You are terse"
PROMPT = "Describe the toll gate at the end of the bridge"
MESSAGES = [{"role": "user", "content": PROMPT}]
EXPECTED = mockreply.reply(MODEL, PROMPT)

# The provider resets the connection two events into a six-delta stream. The
# interval lets those first events leave the mock before the reset; without it
# they are still buffered when the connection drops.
CUT_STREAM_HEADERS = {"x-mock-chunks": "6", "x-mock-chunk-interval-ms": "20", "x-mock-reset-after-chunks": "2"}
# Long enough for a debug build to notice the reset; a hang hits it instead.
CUT_STREAM_TIMEOUT_S = 10.0

WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Current weather for a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


def text_of(message: anthropic.types.Message) -> str:
    return "".join(block.text for block in message.content if block.type == "text")


# === messages ===


def test_message(anthropic_client: anthropic.Anthropic, mock: Mock) -> None:
    message = anthropic_client.messages.create(model=MODEL, max_tokens=MAX_TOKENS, system=SYSTEM, messages=MESSAGES)

    assert message.type == "message"
    assert message.role == "assistant"
    assert text_of(message) == EXPECTED
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens == mockreply.words(SYSTEM) + mockreply.words(PROMPT)
    assert message.usage.output_tokens == mockreply.words(EXPECTED)
    upstream = mock.only("/v1/messages")
    assert upstream.body["model"] == MODEL
    assert upstream.body["system"] == SYSTEM
    assert upstream.body["messages"] == MESSAGES


def test_max_tokens_stop(anthropic_client: anthropic.Anthropic) -> None:
    message = anthropic_client.messages.create(model=MODEL, max_tokens=3, messages=MESSAGES)

    assert text_of(message) == " ".join(EXPECTED.split()[:3])
    assert message.stop_reason == "max_tokens"
    assert message.usage.output_tokens == 3


def test_stream_matches_non_stream(anthropic_client: anthropic.Anthropic) -> None:
    whole = anthropic_client.messages.create(model=MODEL, max_tokens=MAX_TOKENS, messages=MESSAGES)
    events = list(
        anthropic_client.messages.create(
            model=MODEL, max_tokens=MAX_TOKENS, messages=MESSAGES, stream=True, extra_headers={"x-mock-chunks": "4"}
        )
    )

    deltas = [e.delta.text for e in events if e.type == "content_block_delta" and e.delta.type == "text_delta"]
    assert "".join(deltas) == text_of(whole)
    # Forwarded event by event: the mock's four text deltas arrive as four events.
    assert len(deltas) == 4
    assert events[0].type == "message_start"
    assert events[-1].type == "message_stop"
    (final_delta,) = [e for e in events if e.type == "message_delta"]
    assert final_delta.delta.stop_reason == "end_turn"
    assert final_delta.usage.output_tokens == whole.usage.output_tokens


def test_stream_helper(anthropic_client: anthropic.Anthropic) -> None:
    with anthropic_client.messages.stream(model=MODEL, max_tokens=MAX_TOKENS, messages=MESSAGES) as stream:
        streamed = "".join(stream.text_stream)
        final = stream.get_final_message()

    assert streamed == EXPECTED
    assert text_of(final) == EXPECTED
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == mockreply.words(EXPECTED)


def test_async_client(async_anthropic_client: anthropic.AsyncAnthropic) -> None:
    async def run() -> tuple[str, str, str]:
        async with async_anthropic_client as client:
            whole = await client.messages.create(model=MODEL, max_tokens=MAX_TOKENS, messages=MESSAGES)
            stream = await client.messages.create(model=MODEL, max_tokens=MAX_TOKENS, messages=MESSAGES, stream=True)
            streamed = "".join(
                [e.delta.text async for e in stream if e.type == "content_block_delta" and e.delta.type == "text_delta"]
            )
            async with client.messages.stream(model=MODEL, max_tokens=MAX_TOKENS, messages=MESSAGES) as helper:
                final = await helper.get_final_message()
            return text_of(whole), streamed, text_of(final)

    assert asyncio.run(run()) == (EXPECTED, EXPECTED, EXPECTED)


def test_count_tokens(anthropic_client: anthropic.Anthropic, mock: Mock) -> None:
    counted = anthropic_client.messages.count_tokens(model=MODEL, system=SYSTEM, messages=MESSAGES)

    assert counted.input_tokens == mockreply.words(SYSTEM) + mockreply.words(PROMPT)
    assert mock.only("/v1/messages/count_tokens").headers_named("x-api-key") == [ANTHROPIC_UPSTREAM_KEY]


def test_models_list_and_retrieve(anthropic_client: anthropic.Anthropic, mock: Mock) -> None:
    ids = [m.id for m in anthropic_client.models.list()]
    model = anthropic_client.models.retrieve(MODEL)

    assert sorted(ids) == sorted(ANTHROPIC_MODELS)
    assert (model.id, model.type) == (MODEL, "model")
    with pytest.raises(anthropic.NotFoundError):
        anthropic_client.models.retrieve("claude-no-such-model")
    assert mock.requests() == [], "the proxy answers model lists itself"


# === tool use ===


def test_tool_use(anthropic_client: anthropic.Anthropic, mock: Mock) -> None:
    message = anthropic_client.messages.create(
        model=MODEL,
        max_tokens=MAX_TOKENS,
        messages=[{"role": "user", "content": "Weather in Oslo?"}],
        tools=[WEATHER_TOOL],
        extra_headers={"x-mock-tool-call": "get_weather"},
    )

    assert message.stop_reason == "tool_use"
    (call,) = [b for b in message.content if b.type == "tool_use"]
    assert call.name == "get_weather"
    # The mock fills each schema property with a fixed value per type.
    assert call.input == {"city": "mock"}
    assert call.id
    assert mock.only("/v1/messages").body["tools"] == [WEATHER_TOOL]


def test_tool_use_stream(anthropic_client: anthropic.Anthropic) -> None:
    kwargs = dict(
        model=MODEL,
        max_tokens=MAX_TOKENS,
        messages=[{"role": "user", "content": "Weather in Oslo?"}],
        tools=[WEATHER_TOOL],
        extra_headers={"x-mock-tool-call": "get_weather"},
    )
    whole = anthropic_client.messages.create(**kwargs)
    with anthropic_client.messages.stream(**kwargs) as stream:
        final = stream.get_final_message()

    (want,) = [b for b in whole.content if b.type == "tool_use"]
    (got,) = [b for b in final.content if b.type == "tool_use"]
    assert final.stop_reason == "tool_use"
    assert (got.name, got.input) == (want.name, want.input)


# === what crosses the proxy ===


def test_app_key_replaced_and_request_id_round_trip(
    anthropic_client: anthropic.Anthropic, mock: Mock, request_id: str
) -> None:
    raw = anthropic_client.messages.with_raw_response.create(
        model=MODEL, max_tokens=MAX_TOKENS, messages=MESSAGES, extra_headers={"x-request-id": request_id}
    )

    assert raw.headers.get("x-request-id") == request_id
    assert text_of(raw.parse()) == EXPECTED
    upstream = mock.only("/v1/messages")
    assert upstream.headers_named("x-api-key") == [ANTHROPIC_UPSTREAM_KEY]
    assert upstream.header("anthropic-version")
    assert upstream.header("x-request-id") == request_id
    leaked = [(k, v) for k, v in upstream.headers if APP_PLACEHOLDER_KEY in v]
    assert leaked == [], "the application's key reached the provider"


def test_app_key_in_x_api_key_header_replaced(proxy: Proxy, mock: Mock) -> None:
    # This SDK sends its key as `Authorization: Bearer`; older SDKs and curl
    # examples send `x-api-key`. Both must be swapped for the provider key.
    with anthropic.Anthropic(
        base_url=proxy.data,
        api_key=None,
        auth_token=None,
        default_headers={"x-api-key": APP_PLACEHOLDER_KEY},
        max_retries=0,
    ) as client:
        message = client.messages.create(model=MODEL, max_tokens=MAX_TOKENS, messages=MESSAGES)

    assert text_of(message) == EXPECTED
    upstream = mock.only("/v1/messages")
    assert upstream.headers_named("x-api-key") == [ANTHROPIC_UPSTREAM_KEY]
    assert [(k, v) for k, v in upstream.headers if APP_PLACEHOLDER_KEY in v] == []


# === errors in Anthropic's shape and exception types ===


def test_unknown_model_is_not_found(anthropic_client: anthropic.Anthropic, mock: Mock) -> None:
    with pytest.raises(anthropic.NotFoundError) as err:
        anthropic_client.messages.create(model="claude-no-such-model", max_tokens=MAX_TOKENS, messages=MESSAGES)

    assert err.value.status_code == 404
    assert err.value.body["type"] == "error"
    assert err.value.body["error"]["type"] == "not_found_error"
    assert "claude-no-such-model" in err.value.body["error"]["message"]
    assert mock.requests() == [], "an unknown model must not reach any provider"


@pytest.mark.parametrize(
    ("status", "exc"),
    [
        (429, anthropic.RateLimitError),
        (500, anthropic.InternalServerError),
        (529, anthropic.OverloadedError),
    ],
)
def test_upstream_error_passed_through(anthropic_client: anthropic.Anthropic, status: int, exc: type) -> None:
    headers = {"x-mock-status": str(status), "x-mock-retry-after": "7"}
    with pytest.raises(exc) as err:
        anthropic_client.messages.create(model=MODEL, max_tokens=MAX_TOKENS, messages=MESSAGES, extra_headers=headers)

    assert err.value.status_code == status
    assert err.value.body["type"] == "error"
    assert err.value.body["error"]["type"] in {"rate_limit_error", "api_error", "overloaded_error"}
    if status == 429:
        assert err.value.response.headers.get("retry-after") == "7"


def test_upstream_error_on_stream_raises_before_iteration(anthropic_client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.OverloadedError):
        with anthropic_client.messages.stream(
            model=MODEL, max_tokens=MAX_TOKENS, messages=MESSAGES, extra_headers={"x-mock-status": "529"}
        ) as stream:
            stream.get_final_message()


def test_wrong_provider_key_is_authentication_error(misconfigured_proxy: Proxy) -> None:
    with anthropic.Anthropic(base_url=misconfigured_proxy.data, api_key=APP_PLACEHOLDER_KEY, max_retries=0) as c:
        with pytest.raises(anthropic.AuthenticationError) as err:
            c.messages.create(model=MODEL, max_tokens=MAX_TOKENS, messages=MESSAGES)

    assert err.value.status_code == 401
    assert err.value.body["error"]["type"] == "authentication_error"


def test_oversized_body_is_413(anthropic_client: anthropic.Anthropic, mock: Mock) -> None:
    huge = "word " * (300 * 1024)  # 1.5 MiB against the 1 MiB limit
    with pytest.raises(anthropic.APIStatusError) as err:
        anthropic_client.messages.create(
            model=MODEL, max_tokens=MAX_TOKENS, messages=[{"role": "user", "content": huge}]
        )

    assert err.value.status_code == 413
    assert err.value.body["type"] == "error"
    assert err.value.body["error"]["type"] == "request_too_large"
    assert mock.requests() == []


def test_malformed_json_is_400_in_anthropic_shape(proxy: Proxy, mock: Mock) -> None:
    resp = httpx.post(
        f"{proxy.data}/v1/messages",
        content=b'{"model": "claude-sonnet-4-5", "messages": [',
        headers={
            "x-api-key": APP_PLACEHOLDER_KEY,
            "anthropic-version": "2023-06-01",
            "content-type": "application/json",
        },
    )

    assert resp.status_code == 400
    body = resp.json()
    assert body["type"] == "error"
    assert body["error"]["type"] == "invalid_request_error"
    assert body["error"]["message"]
    assert mock.requests() == []


def test_stream_cut_upstream_raises(anthropic_client: anthropic.Anthropic) -> None:
    received: list[str] = []
    started = time.monotonic()
    # This SDK lets the transport's own error out of a broken stream.
    with pytest.raises((anthropic.APIError, httpx2.TransportError)) as err:
        with anthropic_client.messages.stream(
            model=MODEL,
            max_tokens=MAX_TOKENS,
            messages=MESSAGES,
            timeout=CUT_STREAM_TIMEOUT_S,
            extra_headers=CUT_STREAM_HEADERS,
        ) as stream:
            for text in stream.text_stream:
                received.append(text)
            stream.get_final_message()

    # A read timeout would also raise, but that is the hang this test rules out.
    assert not isinstance(err.value, (anthropic.APITimeoutError, httpx2.TimeoutException))
    assert time.monotonic() - started < CUT_STREAM_TIMEOUT_S
    assert len(received) <= 2
