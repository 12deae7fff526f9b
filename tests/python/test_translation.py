"""Each SDK through a route whose target speaks the other API.

The app talks OpenAI (or Anthropic) to Tollgate; Tollgate translates the
request, sends it to a provider of the other API, and translates the answer
back — whole responses, streams (text and tool calls), usage and errors. The
assertions check both what the SDK hands back and what reached the provider.
"""

from __future__ import annotations

import json

import anthropic
import openai
import pytest

import mockreply
from conftest import TO_ANTHROPIC, TO_OPENAI, Mock

PROMPT = "Explain how toll roads are financed"
WEATHER_OPENAI = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
WEATHER_ANTHROPIC = {
    "name": "get_weather",
    "description": "Current weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


# === OpenAI SDK → Anthropic provider ===


def test_openai_chat_answered_by_anthropic(openai_client: openai.OpenAI, mock: Mock) -> None:
    completion = openai_client.chat.completions.create(
        model=TO_ANTHROPIC,
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": PROMPT}],
        max_tokens=200,
    )
    assert completion.object == "chat.completion"
    assert completion.choices[0].message.content == mockreply.reply("claude-sonnet-4-5", PROMPT)
    assert completion.choices[0].finish_reason == "stop"
    sent = mock.only("/v1/messages").body
    assert sent["model"] == "claude-sonnet-4-5"
    assert sent["system"] == "Be brief."
    assert sent["max_tokens"] == 200
    assert [m["role"] for m in sent["messages"]] == ["user"]
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == mockreply.words("Be brief.") + mockreply.words(PROMPT)
    assert completion.usage.completion_tokens == mockreply.words(completion.choices[0].message.content or "")


def test_openai_stream_answered_by_anthropic(openai_client: openai.OpenAI, mock: Mock) -> None:
    stream = openai_client.chat.completions.create(
        model=TO_ANTHROPIC,
        messages=[{"role": "user", "content": PROMPT}],
        stream=True,
        stream_options={"include_usage": True},
    )
    text = ""
    usage = None
    finish = None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            text += choice.delta.content or ""
            finish = choice.finish_reason or finish
    assert text == mockreply.reply("claude-sonnet-4-5", PROMPT)
    assert finish == "stop"
    assert usage is not None and usage.completion_tokens == mockreply.words(text)
    assert mock.only("/v1/messages").body["stream"] is True


def test_openai_tool_call_stream_answered_by_anthropic(openai_client: openai.OpenAI, mock: Mock) -> None:
    with openai_client.chat.completions.stream(
        model=TO_ANTHROPIC,
        messages=[{"role": "user", "content": "Weather in Oslo?"}],
        tools=[WEATHER_OPENAI],
        extra_headers={"x-mock-tool-call": "get_weather"},
    ) as stream:
        final = stream.get_final_completion()
    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls or []
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "mock"}
    sent = mock.only("/v1/messages").body
    assert sent["tools"][0]["name"] == "get_weather"
    assert sent["tools"][0]["input_schema"] == WEATHER_OPENAI["function"]["parameters"]


def test_openai_sdk_gets_anthropic_errors_in_its_own_shape(openai_client: openai.OpenAI) -> None:
    with pytest.raises(openai.RateLimitError) as err:
        openai_client.chat.completions.create(
            model=TO_ANTHROPIC,
            messages=[{"role": "user", "content": PROMPT}],
            extra_headers={"x-mock-status": "429", "x-mock-retry-after": "3"},
        )
    assert isinstance(err.value.body, dict) and "message" in err.value.body
    assert err.value.response.headers["retry-after"] == "3"


# === Anthropic SDK → OpenAI provider ===


def test_anthropic_messages_answered_by_openai(anthropic_client: anthropic.Anthropic, mock: Mock) -> None:
    message = anthropic_client.messages.create(
        model=TO_OPENAI,
        max_tokens=100,
        system="Be brief.",
        messages=[{"role": "user", "content": PROMPT}],
    )
    assert message.type == "message"
    assert message.content[0].type == "text"
    assert message.content[0].text == mockreply.reply("gpt-4o-mini", PROMPT)
    assert message.stop_reason == "end_turn"
    sent = mock.only("/v1/chat/completions").body
    assert sent["model"] == "gpt-4o-mini"
    assert sent["messages"][0] == {"role": "system", "content": "Be brief."}
    assert message.usage.output_tokens == mockreply.words(message.content[0].text)


def test_anthropic_stream_answered_by_openai(anthropic_client: anthropic.Anthropic, mock: Mock) -> None:
    with anthropic_client.messages.stream(
        model=TO_OPENAI, max_tokens=100, messages=[{"role": "user", "content": PROMPT}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == mockreply.reply("gpt-4o-mini", PROMPT)
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == mockreply.words(text)
    sent = mock.only("/v1/chat/completions").body
    assert sent["stream"] is True
    assert sent["stream_options"] == {"include_usage": True}


def test_anthropic_tool_use_stream_answered_by_openai(anthropic_client: anthropic.Anthropic) -> None:
    with anthropic_client.messages.stream(
        model=TO_OPENAI,
        max_tokens=100,
        tools=[WEATHER_ANTHROPIC],
        messages=[{"role": "user", "content": "Weather in Oslo?"}],
        extra_headers={"x-mock-tool-call": "get_weather"},
    ) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    (block,) = [b for b in final.content if b.type == "tool_use"]
    assert block.name == "get_weather"
    assert block.input == {"city": "mock"}


def test_anthropic_sdk_gets_openai_errors_in_its_own_shape(anthropic_client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.InternalServerError) as err:
        anthropic_client.messages.create(
            model=TO_OPENAI,
            max_tokens=50,
            messages=[{"role": "user", "content": PROMPT}],
            extra_headers={"x-mock-status": "500"},
        )
    body = err.value.body
    assert isinstance(body, dict) and body.get("type") == "error"


def test_openai_request_anthropic_cannot_serve_is_refused_naming_the_field(
    openai_client: openai.OpenAI, mock: Mock
) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        openai_client.chat.completions.create(
            model=TO_ANTHROPIC, messages=[{"role": "user", "content": PROMPT}], n=2
        )
    assert "n:" in str(err.value)
    assert mock.requests("/v1/messages") == []


def test_tool_result_round_trip_keeps_call_ids(anthropic_client: anthropic.Anthropic, mock: Mock) -> None:
    anthropic_client.messages.create(
        model=TO_OPENAI,
        max_tokens=50,
        tools=[WEATHER_ANTHROPIC],
        messages=[
            {"role": "user", "content": "Weather in Oslo?"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_abc", "name": "get_weather", "input": {"city": "Oslo"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_abc", "content": "3C"}]},
        ],
    )
    sent = mock.only("/v1/chat/completions").body["messages"]
    assert sent[1]["tool_calls"][0]["id"] == "toolu_abc"
    assert json.loads(sent[1]["tool_calls"][0]["function"]["arguments"]) == {"city": "Oslo"}
    assert sent[2] == {"role": "tool", "tool_call_id": "toolu_abc", "content": "3C"}
