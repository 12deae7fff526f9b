"""PII pseudonymization round trips through both official SDKs.

A proxy with `pii:` on replaces emails and phone numbers with placeholders
before the request leaves; the mock's reply echoes the prompt, so the model's
answer holds the placeholders, and the SDK must get the original values back:
whole answers and streams, each SDK to its own API and across translation.
Blocks must reach the SDK as the SDK's own error type, naming types only.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import anthropic
import httpx
import openai
import pytest

from conftest import (
    ANTHROPIC_UPSTREAM_KEY,
    APP_PLACEHOLDER_KEY,
    OPENAI_UPSTREAM_KEY,
    PROXY_LINE,
    TO_ANTHROPIC,
    TO_OPENAI,
    Mock,
    Process,
    Proxy,
    binary,
    proxy_config,
    wait_until,
)

PII_SECTION = """
pii:
  action: mask
  entities:
    email: {action: pseudonymize}
    phone: {action: pseudonymize}
    credit_card: {action: block}
  responses: {scan: true}
"""

EMAIL = "maria.gonzalez@example.org"
PHONE = "+44 20 7946 0958"
PROMPT = f"Write to {EMAIL} or call {PHONE} today"


@pytest.fixture(scope="module")
def pii_proxy(mock_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    workdir: Path = tmp_path_factory.mktemp("proxy-pii")
    config = workdir / "proxy.yaml"
    config.write_text(
        proxy_config(mock_server, openai_key_env="TG_OPENAI_KEY", anthropic_key_env="TG_ANTHROPIC_KEY") + PII_SECTION
    )
    env = dict(os.environ, TG_OPENAI_KEY=OPENAI_UPSTREAM_KEY, TG_ANTHROPIC_KEY=ANTHROPIC_UPSTREAM_KEY, TOLLGATE_PRINT_ADDRS="1")
    env.setdefault("RUST_LOG", "info")
    proc = Process([str(binary("tollgate-proxy")), "run", "--config", str(config)], log=workdir / "proxy.log", env=env)
    m = proc.announced(PROXY_LINE)
    p = Proxy(data=m.group(1), admin=m.group(2), process=proc)

    def ready() -> bool:
        try:
            return httpx.get(f"{p.admin}/readyz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    wait_until("the PII proxy to be ready", ready)
    try:
        yield p
    finally:
        proc.stop()
        log = (workdir / "proxy.log").read_text(errors="replace")
        assert EMAIL not in log and PHONE not in log, "a detected value reached the log"


@pytest.fixture
def oai(pii_proxy: Proxy) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{pii_proxy.data}/v1", api_key=APP_PLACEHOLDER_KEY, max_retries=0) as c:
        yield c


@pytest.fixture
def ant(pii_proxy: Proxy) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=pii_proxy.data, api_key=APP_PLACEHOLDER_KEY, max_retries=0) as c:
        yield c


def assert_upstream_saw_placeholders(mock: Mock) -> None:
    reqs = [r for r in mock.requests() if r.method == "POST"]
    assert reqs, "nothing reached the provider"
    for r in reqs:
        assert EMAIL not in r.raw_body and "7946" not in r.raw_body, r.raw_body
        assert "[EMAIL_1]" in r.raw_body and "[PHONE_1]" in r.raw_body, r.raw_body


@pytest.mark.parametrize("model", ["gpt-4o-mini", TO_ANTHROPIC])
def test_openai_sdk_whole_answer(oai: openai.OpenAI, mock: Mock, model: str) -> None:
    c = oai.chat.completions.create(model=model, messages=[{"role": "user", "content": PROMPT}])
    text = c.choices[0].message.content
    assert text is not None and text.endswith(PROMPT), text
    assert_upstream_saw_placeholders(mock)


@pytest.mark.parametrize("model", ["gpt-4o-mini", TO_ANTHROPIC])
def test_openai_sdk_stream(oai: openai.OpenAI, mock: Mock, model: str) -> None:
    stream = oai.chat.completions.create(
        model=model, messages=[{"role": "user", "content": PROMPT}], stream=True, extra_headers={"x-mock-chunks": "9"}
    )
    text = "".join(ch.choices[0].delta.content or "" for ch in stream if ch.choices)
    assert text.endswith(PROMPT), text
    assert_upstream_saw_placeholders(mock)


@pytest.mark.parametrize("model", ["claude-sonnet-4-5", TO_OPENAI])
def test_anthropic_sdk_whole_answer(ant: anthropic.Anthropic, mock: Mock, model: str) -> None:
    msg = ant.messages.create(model=model, max_tokens=64, messages=[{"role": "user", "content": PROMPT}])
    text = "".join(b.text for b in msg.content if b.type == "text")
    assert text.endswith(PROMPT), text
    assert_upstream_saw_placeholders(mock)


@pytest.mark.parametrize("model", ["claude-sonnet-4-5", TO_OPENAI])
def test_anthropic_sdk_stream(ant: anthropic.Anthropic, mock: Mock, model: str) -> None:
    with ant.messages.stream(
        model=model,
        max_tokens=64,
        messages=[{"role": "user", "content": PROMPT}],
        extra_headers={"x-mock-chunks": "9"},
    ) as s:
        text = "".join(s.text_stream)
    assert text.endswith(PROMPT), text
    assert_upstream_saw_placeholders(mock)


def test_blocks_raise_the_sdks_own_errors(oai: openai.OpenAI, ant: anthropic.Anthropic, mock: Mock) -> None:
    card = "pay with 4111 1111 1111 1111"
    with pytest.raises(openai.BadRequestError) as e:
        oai.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": card}])
    assert e.value.code == "pii_blocked"
    assert "credit_card" in e.value.message and "4111" not in e.value.message
    with pytest.raises(anthropic.BadRequestError) as e2:
        ant.messages.create(model="claude-sonnet-4-5", max_tokens=8, messages=[{"role": "user", "content": card}])
    assert "credit_card" in str(e2.value) and "4111" not in str(e2.value)
    assert not [r for r in mock.requests() if r.method == "POST"]
