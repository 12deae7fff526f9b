"""Retries: what the official SDKs do, at their default `max_retries` (2),
with the errors Tollgate answers.

An error that retrying cannot fix (a budget exhausted until its window
ends, a PII block, a model the policy does not serve) carries
`x-should-retry: false`, so each SDK sends it once. An upstream failure
that Tollgate already retried carries it too: the SDK would otherwise run
every one of Tollgate's attempts again, up to (1 + max_retries) times. With
one attempt configured, the SDK's own retries stay in charge. Counted on
both sides: requests Tollgate received (its own metrics) and requests the
provider received (the mock's record).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import anthropic
import httpx
import openai
import pytest

from conftest import (
    ANTHROPIC_UPSTREAM_KEY,
    APP_PLACEHOLDER_KEY,
    CLIENT_TIMEOUT_S,
    OPENAI_UPSTREAM_KEY,
    Mock,
    Proxy,
    start_proxy,
    stopped_after,
)

# Exhausted at once (any request's worst case costs more), until the month
# ends; a credit card number is refused before anything leaves.
POLICY = """
budgets:
  limits:
    - {name: monthly, scope: policy, window: month, usd: 0.000001}
pii:
  action: mask
  entities:
    credit_card: {action: block}
"""
CARD = "4111 1111 1111 1111"
# What the official SDKs do by default.
SDK_RETRIES = 2


def two_attempts(workdir: Path, mock_url: str, extra: str = "") -> Proxy:
    """Two attempts per target, as the proxy's default retry policy has."""
    return start_proxy(
        workdir,
        mock_url,
        openai_key=OPENAI_UPSTREAM_KEY,
        anthropic_key=ANTHROPIC_UPSTREAM_KEY,
        extra=extra,
        max_attempts=2,
    )


@pytest.fixture(scope="module")
def refusing(mock_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    with stopped_after(two_attempts(tmp_path_factory.mktemp("proxy-refusing"), mock_server, POLICY)) as p:
        yield p


@pytest.fixture(scope="module")
def retrying(mock_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    with stopped_after(two_attempts(tmp_path_factory.mktemp("proxy-retrying"), mock_server)) as p:
        yield p


def requests_received(proxy: Proxy) -> float:
    """Requests Tollgate has answered, from its own metrics."""
    text = httpx.get(f"{proxy.admin}/metrics", timeout=5).text
    return sum(float(m.group(1)) for m in re.finditer(r"^tollgate_requests_total\{[^}]*\} (\S+)$", text, re.M))


def oai(proxy: Proxy) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{proxy.data}/v1", api_key=APP_PLACEHOLDER_KEY, timeout=CLIENT_TIMEOUT_S)


def ant(proxy: Proxy) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=proxy.data, api_key=APP_PLACEHOLDER_KEY, timeout=CLIENT_TIMEOUT_S)


def test_sdks_default_to_two_retries(proxy: Proxy) -> None:
    with oai(proxy) as o, ant(proxy) as a:
        assert o.max_retries == SDK_RETRIES and a.max_retries == SDK_RETRIES


def test_an_exhausted_budget_is_asked_once(refusing: Proxy, mock: Mock) -> None:
    before = requests_received(refusing)
    with ant(refusing) as a, pytest.raises(anthropic.RateLimitError) as e:
        a.messages.create(model="claude-sonnet-4-5", max_tokens=64, messages=[{"role": "user", "content": "hi"}])
    h = e.value.response.headers
    if int(h["retry-after"]) <= 60:
        pytest.skip("the month ends within a minute: a retry may then succeed, and is allowed")
    assert h["x-should-retry"] == "false"
    assert h["x-tollgate-error"] == "budget_exceeded"
    assert int(h["retry-after-ms"]) > 60_000
    with oai(refusing) as o, pytest.raises(openai.RateLimitError):
        o.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert requests_received(refusing) - before == 2, "each SDK asked once"
    assert mock.requests() == [], "nothing reached the provider"


def test_a_pii_block_and_a_model_not_served_are_asked_once(refusing: Proxy, mock: Mock) -> None:
    before = requests_received(refusing)
    with oai(refusing) as o:
        with pytest.raises(openai.BadRequestError) as e:
            o.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": f"card {CARD}"}])
        assert e.value.response.headers["x-should-retry"] == "false"
        with pytest.raises(openai.NotFoundError) as e:
            o.chat.completions.create(model="gpt-9-unknown", messages=[{"role": "user", "content": "hi"}])
        assert e.value.response.headers["x-should-retry"] == "false"
    assert requests_received(refusing) - before == 2
    assert mock.requests() == []


@pytest.mark.parametrize("sdk", ["openai", "anthropic"])
def test_an_upstream_failure_tollgate_retried_is_not_retried_again(retrying: Proxy, mock: Mock, sdk: str) -> None:
    before = requests_received(retrying)
    failing = {"x-mock-status": "503"}
    if sdk == "openai":
        with oai(retrying) as o, pytest.raises(openai.InternalServerError) as e:
            o.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], extra_headers=failing
            )
    else:
        with ant(retrying) as a, pytest.raises(anthropic.InternalServerError) as e:
            a.messages.create(
                model="claude-sonnet-4-5",
                max_tokens=64,
                messages=[{"role": "user", "content": "hi"}],
                extra_headers=failing,
            )
    assert e.value.response.status_code == 503
    assert e.value.response.headers["x-should-retry"] == "false"
    assert requests_received(retrying) - before == 1, "the SDK did not retry"
    assert len([r for r in mock.requests() if r.method == "POST"]) == 2, "Tollgate's two attempts"


def test_with_one_attempt_the_sdk_retries_as_usual(proxy: Proxy, mock: Mock) -> None:
    """The conftest proxy makes one attempt per request: an upstream 503
    reaches the SDK as the provider sent it, and the SDK retries it."""
    before = requests_received(proxy)
    with oai(proxy) as o, pytest.raises(openai.InternalServerError) as e:
        o.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], extra_headers={"x-mock-status": "503"}
        )
    assert "x-should-retry" not in e.value.response.headers
    assert requests_received(proxy) - before == 1 + SDK_RETRIES
    assert len([r for r in mock.requests() if r.method == "POST"]) == 1 + SDK_RETRIES
