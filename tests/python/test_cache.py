"""The official SDKs read answers replayed from the response cache.

A deterministic request is answered once by the provider; the same request
again — streamed or not — comes from the cache, and each SDK must build
exactly the same result from it as from the provider's own answer.
"""

from __future__ import annotations

import uuid

import anthropic
import openai

from conftest import CACHED_CLAUDE, CACHED_GPT, Mock


def _prompt() -> str:
    # Unique per test run, so entries from other tests never interfere.
    return f"Summarize toll road history ({uuid.uuid4().hex[:8]})"


def test_openai_stream_is_stored_and_replayed(openai_client: openai.OpenAI, mock: Mock) -> None:
    prompt = _prompt()

    def ask(stream: bool):
        return openai_client.chat.completions.with_raw_response.create(
            model=CACHED_GPT,
            temperature=0,
            messages=[{"role": "user", "content": prompt}],
            stream=stream,
            **({"stream_options": {"include_usage": True}} if stream else {}),
        )

    def read(raw) -> tuple[str, int | None]:
        text, usage = "", None
        for chunk in raw.parse():
            if chunk.usage is not None:
                usage = chunk.usage.completion_tokens
            for c in chunk.choices:
                text += c.delta.content or ""
        return text, usage

    first = ask(True)
    assert first.headers["x-tollgate-cache"] == "miss"
    first_text, first_usage = read(first)
    second = ask(True)
    assert second.headers["x-tollgate-cache"] == "hit"
    assert read(second) == (first_text, first_usage)
    whole = ask(False)
    assert whole.headers["x-tollgate-cache"] == "hit"
    completion = whole.parse()
    assert completion.choices[0].message.content == first_text
    assert completion.usage is not None and completion.usage.completion_tokens == first_usage
    assert len(mock.requests("/v1/chat/completions")) == 1


def test_anthropic_answer_replayed_as_a_stream(anthropic_client: anthropic.Anthropic, mock: Mock) -> None:
    prompt = _prompt()
    message = anthropic_client.messages.create(
        model=CACHED_CLAUDE, max_tokens=64, extra_body={"temperature": 0}, messages=[{"role": "user", "content": prompt}]
    )
    with anthropic_client.messages.stream(
        model=CACHED_CLAUDE, max_tokens=64, extra_body={"temperature": 0}, messages=[{"role": "user", "content": prompt}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == message.content[0].text
    assert final.stop_reason == message.stop_reason
    assert final.usage.output_tokens == message.usage.output_tokens
    assert len(mock.requests("/v1/messages")) == 1


def test_sampled_requests_are_not_cached(openai_client: openai.OpenAI, mock: Mock) -> None:
    prompt = _prompt()
    for _ in range(2):
        raw = openai_client.chat.completions.with_raw_response.create(
            model=CACHED_GPT, temperature=0.8, messages=[{"role": "user", "content": prompt}]
        )
        assert raw.headers["x-tollgate-cache"] == "bypass"
    assert len(mock.requests("/v1/chat/completions")) == 2
