"""What `tollgate-mock` answers, restated so tests can predict it.

Mirrors the rules documented in `tests/src/mock/mod.rs`: the reply is
`"Mock reply from <model>: <first 12 words of the last user text>"` and one
token is one whitespace-separated word.
"""

from __future__ import annotations

REPLY_WORDS = 12


def words(text: str) -> int:
    return len(text.split())


def reply(model: str, last_user_text: str) -> str:
    return f"Mock reply from {model}: " + " ".join(last_user_text.split()[:REPLY_WORDS])
