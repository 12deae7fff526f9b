"""The official `openai` SDK, pointed at Tollgate, behaves as against OpenAI.

Each test drives the SDK the way an application would and checks two sides:
what the SDK hands back, and (through the `mock` fixture) what reached the
provider.
"""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import openai
import pytest

import mockreply
from conftest import APP_PLACEHOLDER_KEY, OPENAI_MODELS, OPENAI_UPSTREAM_KEY, Mock, Proxy

CHAT_MODEL = "gpt-4o-mini"
INSTRUCT_MODEL = "gpt-3.5-turbo-instruct"
EMBED_MODEL = "text-embedding-3-small"

PROMPT = "Tell me three things about toll bridges"
MESSAGES = [{"role": "user", "content": PROMPT}]
EXPECTED = mockreply.reply(CHAT_MODEL, PROMPT)

# The provider resets the connection two events into a six-delta stream. The
# interval lets those first events leave the mock before the reset; without it
# they are still buffered when the connection drops.
CUT_STREAM_HEADERS = {"x-mock-chunks": "6", "x-mock-chunk-interval-ms": "20", "x-mock-reset-after-chunks": "2"}
# Long enough for a debug build to notice the reset; a hang hits it instead.
CUT_STREAM_TIMEOUT_S = 10.0

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


# === chat completions ===


def test_chat_completion(openai_client: openai.OpenAI, mock: Mock) -> None:
    completion = openai_client.chat.completions.create(model=CHAT_MODEL, messages=MESSAGES)

    assert completion.choices[0].message.content == EXPECTED
    assert completion.choices[0].finish_reason == "stop"
    assert completion.model.startswith(CHAT_MODEL)
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == mockreply.words(PROMPT)
    assert completion.usage.completion_tokens == mockreply.words(EXPECTED)
    upstream = mock.only("/v1/chat/completions")
    assert upstream.body["model"] == CHAT_MODEL
    assert upstream.body["messages"] == MESSAGES


def test_chat_stream_matches_non_stream(openai_client: openai.OpenAI) -> None:
    whole = openai_client.chat.completions.create(model=CHAT_MODEL, messages=MESSAGES)
    stream = openai_client.chat.completions.create(
        model=CHAT_MODEL, messages=MESSAGES, stream=True, extra_headers={"x-mock-chunks": "4"}
    )
    chunks = list(stream)

    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    # Forwarded event by event: the mock's four content deltas arrive as four chunks.
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) == 4
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert all(c.usage is None for c in chunks), "usage chunk sent although include_usage was not asked for"


def test_chat_stream_include_usage(openai_client: openai.OpenAI) -> None:
    stream = openai_client.chat.completions.create(
        model=CHAT_MODEL, messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)

    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None
    assert last.usage.prompt_tokens == mockreply.words(PROMPT)
    assert last.usage.completion_tokens == mockreply.words(EXPECTED)
    assert all(c.usage is None for c in chunks[:-1])


def test_chat_stream_helper(openai_client: openai.OpenAI) -> None:
    deltas: list[str] = []
    with openai_client.chat.completions.stream(model=CHAT_MODEL, messages=MESSAGES) as stream:
        for event in stream:
            if event.type == "content.delta":
                deltas.append(event.delta)
        final = stream.get_final_completion()

    assert "".join(deltas) == EXPECTED
    assert final.choices[0].message.content == EXPECTED
    assert final.choices[0].finish_reason == "stop"


def test_max_tokens_truncates(openai_client: openai.OpenAI) -> None:
    completion = openai_client.chat.completions.create(model=CHAT_MODEL, messages=MESSAGES, max_tokens=3)

    assert completion.choices[0].message.content == " ".join(EXPECTED.split()[:3])
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage is not None and completion.usage.completion_tokens == 3


def test_async_client(async_openai_client: openai.AsyncOpenAI) -> None:
    async def run() -> tuple[str | None, str]:
        async with async_openai_client as client:
            whole, stream = await asyncio.gather(
                client.chat.completions.create(model=CHAT_MODEL, messages=MESSAGES),
                client.chat.completions.create(model=CHAT_MODEL, messages=MESSAGES, stream=True),
            )
            text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
            return whole.choices[0].message.content, text

    whole_text, streamed_text = asyncio.run(run())
    assert whole_text == EXPECTED
    assert streamed_text == EXPECTED


def test_async_stream_helper(async_openai_client: openai.AsyncOpenAI) -> None:
    async def run() -> str | None:
        async with async_openai_client as client:
            async with client.chat.completions.stream(model=CHAT_MODEL, messages=MESSAGES) as stream:
                final = await stream.get_final_completion()
                return final.choices[0].message.content

    assert asyncio.run(run()) == EXPECTED


# === tool calls ===


def test_tool_call(openai_client: openai.OpenAI, mock: Mock) -> None:
    completion = openai_client.chat.completions.create(
        model=CHAT_MODEL,
        messages=[{"role": "user", "content": "Weather in Oslo?"}],
        tools=[WEATHER_TOOL],
        extra_headers={"x-mock-tool-call": "get_weather"},
    )

    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls or []
    assert call.type == "function"
    assert call.function.name == "get_weather"
    # The mock fills each schema property with a fixed value per type.
    assert json.loads(call.function.arguments) == {"city": "mock"}
    assert mock.only("/v1/chat/completions").body["tools"] == [WEATHER_TOOL]


def test_tool_call_stream(openai_client: openai.OpenAI) -> None:
    messages = [{"role": "user", "content": "Weather in Oslo?"}]
    whole = openai_client.chat.completions.create(
        model=CHAT_MODEL, messages=messages, tools=[WEATHER_TOOL], extra_headers={"x-mock-tool-call": "get_weather"}
    )
    with openai_client.chat.completions.stream(
        model=CHAT_MODEL, messages=messages, tools=[WEATHER_TOOL], extra_headers={"x-mock-tool-call": "get_weather"}
    ) as stream:
        final = stream.get_final_completion()

    (want,) = whole.choices[0].message.tool_calls or []
    (got,) = final.choices[0].message.tool_calls or []
    assert final.choices[0].finish_reason == "tool_calls"
    assert got.function.name == want.function.name
    assert json.loads(got.function.arguments) == json.loads(want.function.arguments)


# === legacy completions, embeddings, models ===


def test_legacy_completion(openai_client: openai.OpenAI, mock: Mock) -> None:
    prompt = "Once upon a time at the toll gate"
    whole = openai_client.completions.create(model=INSTRUCT_MODEL, prompt=prompt)
    streamed = "".join(
        c.choices[0].text
        for c in openai_client.completions.create(model=INSTRUCT_MODEL, prompt=prompt, stream=True)
        if c.choices
    )

    assert whole.choices[0].text == mockreply.reply(INSTRUCT_MODEL, prompt)
    assert streamed == whole.choices[0].text
    assert whole.usage is not None and whole.usage.prompt_tokens == mockreply.words(prompt)
    assert [r.body["prompt"] for r in mock.requests("/v1/completions")] == [prompt, prompt]


def test_embeddings_float_and_base64(openai_client: openai.OpenAI, mock: Mock) -> None:
    inputs = ["the quick brown fox", "jumps over the lazy dog"]
    as_float = openai_client.embeddings.create(model=EMBED_MODEL, input=inputs, encoding_format="float")
    # No encoding_format: the SDK asks for base64 and decodes it itself.
    decoded = openai_client.embeddings.create(model=EMBED_MODEL, input=inputs)

    assert [d.index for d in as_float.data] == [0, 1]
    assert len(as_float.data[0].embedding) > 0
    assert all(isinstance(x, float) for x in as_float.data[0].embedding)
    assert as_float.data[0].embedding != as_float.data[1].embedding
    for f, b in zip(as_float.data, decoded.data, strict=True):
        assert b.embedding == pytest.approx(f.embedding, rel=1e-6, abs=1e-7)
    assert as_float.usage.prompt_tokens == sum(mockreply.words(t) for t in inputs)
    formats = [r.body.get("encoding_format") for r in mock.requests("/v1/embeddings")]
    assert formats == ["float", "base64"]


def test_models_list_and_retrieve(openai_client: openai.OpenAI, mock: Mock) -> None:
    ids = [m.id for m in openai_client.models.list()]
    model = openai_client.models.retrieve(CHAT_MODEL)

    # The OpenAI-shaped list holds the OpenAI-API models; Anthropic SDKs get theirs.
    assert sorted(ids) == sorted(OPENAI_MODELS)
    assert (model.id, model.object) == (CHAT_MODEL, "model")
    with pytest.raises(openai.NotFoundError):
        openai_client.models.retrieve("no-such-model")
    assert mock.requests() == [], "the proxy answers model lists itself"


# === what crosses the proxy ===


def test_app_key_replaced_and_request_id_round_trip(openai_client: openai.OpenAI, mock: Mock, request_id: str) -> None:
    raw = openai_client.chat.completions.with_raw_response.create(
        model=CHAT_MODEL, messages=MESSAGES, extra_headers={"x-request-id": request_id}
    )

    assert raw.headers.get("x-request-id") == request_id
    assert raw.parse().choices[0].message.content == EXPECTED
    upstream = mock.only("/v1/chat/completions")
    assert upstream.headers_named("authorization") == [f"Bearer {OPENAI_UPSTREAM_KEY}"]
    assert upstream.header("x-request-id") == request_id
    leaked = [(k, v) for k, v in upstream.headers if APP_PLACEHOLDER_KEY in v]
    assert leaked == [], "the application's key reached the provider"


def test_request_id_generated_when_absent(openai_client: openai.OpenAI, mock: Mock) -> None:
    raw = openai_client.chat.completions.with_raw_response.create(model=CHAT_MODEL, messages=MESSAGES)

    generated = raw.headers.get("x-request-id")
    assert generated
    assert mock.only("/v1/chat/completions").header("x-request-id") == generated


# === errors in OpenAI's shape and exception types ===


def test_unknown_model_is_not_found(openai_client: openai.OpenAI, mock: Mock) -> None:
    with pytest.raises(openai.NotFoundError) as err:
        openai_client.chat.completions.create(model="no-such-model", messages=MESSAGES)

    assert err.value.status_code == 404
    assert err.value.code == "model_not_found"
    assert isinstance(err.value.body, dict) and "no-such-model" in err.value.body["message"]
    assert mock.requests() == [], "an unknown model must not reach any provider"


@pytest.mark.parametrize(
    ("status", "exc"),
    [(429, openai.RateLimitError), (500, openai.InternalServerError), (503, openai.InternalServerError)],
)
def test_upstream_error_passed_through(openai_client: openai.OpenAI, status: int, exc: type) -> None:
    headers = {"x-mock-status": str(status), "x-mock-retry-after": "7"}
    with pytest.raises(exc) as err:
        openai_client.chat.completions.create(model=CHAT_MODEL, messages=MESSAGES, extra_headers=headers)

    assert err.value.status_code == status
    assert isinstance(err.value.body, dict) and err.value.body.get("message")
    if status == 429:
        assert err.value.response.headers.get("retry-after") == "7"


def test_upstream_error_on_stream_raises_before_iteration(openai_client: openai.OpenAI) -> None:
    with pytest.raises(openai.RateLimitError):
        openai_client.chat.completions.create(
            model=CHAT_MODEL, messages=MESSAGES, stream=True, extra_headers={"x-mock-status": "429"}
        )


def test_context_length_error(openai_client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        openai_client.chat.completions.create(
            model=CHAT_MODEL, messages=MESSAGES, extra_headers={"x-mock-error": "context_length"}
        )

    assert err.value.code == "context_length_exceeded"


def test_wrong_provider_key_is_authentication_error(misconfigured_proxy: Proxy) -> None:
    with openai.OpenAI(base_url=f"{misconfigured_proxy.data}/v1", api_key=APP_PLACEHOLDER_KEY, max_retries=0) as c:
        with pytest.raises(openai.AuthenticationError) as err:
            c.chat.completions.create(model=CHAT_MODEL, messages=MESSAGES)

    assert err.value.status_code == 401
    assert err.value.code == "invalid_api_key"


def test_oversized_body_is_413(openai_client: openai.OpenAI, mock: Mock) -> None:
    huge = "word " * (300 * 1024)  # 1.5 MiB against the 1 MiB limit
    with pytest.raises(openai.APIStatusError) as err:
        openai_client.chat.completions.create(model=CHAT_MODEL, messages=[{"role": "user", "content": huge}])

    assert err.value.status_code == 413
    assert isinstance(err.value.body, dict) and err.value.body.get("message")
    assert mock.requests() == []


def test_malformed_json_is_400_in_openai_shape(proxy: Proxy, mock: Mock) -> None:
    resp = httpx.post(
        f"{proxy.data}/v1/chat/completions",
        content=b'{"model": "gpt-4o-mini", "messages": [',
        headers={"authorization": f"Bearer {APP_PLACEHOLDER_KEY}", "content-type": "application/json"},
    )

    assert resp.status_code == 400
    error = resp.json()["error"]
    assert set(error) >= {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"
    assert mock.requests() == []


def test_stream_cut_upstream_raises(openai_client: openai.OpenAI) -> None:
    stream = openai_client.chat.completions.create(
        model=CHAT_MODEL,
        messages=MESSAGES,
        stream=True,
        timeout=CUT_STREAM_TIMEOUT_S,
        extra_headers=CUT_STREAM_HEADERS,
    )
    received: list[str] = []
    started = time.monotonic()
    with pytest.raises(openai.APIError) as err:
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                received.append(chunk.choices[0].delta.content)

    # A read timeout would also raise, but that is the hang this test rules out.
    assert not isinstance(err.value, openai.APITimeoutError)
    assert time.monotonic() - started < CUT_STREAM_TIMEOUT_S
    assert len(received) <= 2
