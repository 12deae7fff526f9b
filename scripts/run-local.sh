#!/usr/bin/env bash
# Runs Tollgate locally: the bundled mock provider on 127.0.0.1:8090 and the
# proxy on 127.0.0.1:8080 (admin on :9901) with examples/local.yaml.
# No API keys, no network, no cluster. Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."

CONFIG="${TOLLGATE_CONFIG:-examples/local.yaml}"
echo "building tollgate-proxy and the mock provider (release; a first build takes several minutes, later ones seconds)..." >&2
# Cargo's own progress (crates compiled, a bar on a terminal), not silence.
cargo build --release -p tollgate-proxy -p tollgate-tests --bin tollgate-proxy --bin tollgate-mock

# Keys for the mock; a real key already in the environment is kept (and only
# ever sent to the loopback mock unless you edit the config).
export OPENAI_API_KEY="${OPENAI_API_KEY:-sk-local-mock}"
export ANTHROPIC_API_KEY="${ANTHROPIC_API_KEY:-sk-ant-local-mock}"

target/release/tollgate-mock --listen 127.0.0.1:8090 > /dev/null &
MOCK_PID=$!
trap 'kill $MOCK_PID 2>/dev/null || true' EXIT

cat >&2 <<'MSG'

Tollgate is starting on http://127.0.0.1:8080 (admin: http://127.0.0.1:9901/metrics)
Try it:

  curl -s http://127.0.0.1:8080/v1/chat/completions -H 'content-type: application/json' \
    -d '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hello Tollgate"}]}'

  curl -sN http://127.0.0.1:8080/v1/messages -H 'content-type: application/json' \
    -d '{"model":"claude-sonnet-4-5","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"Hi"}]}'

  OPENAI_BASE_URL=http://127.0.0.1:8080/v1 OPENAI_API_KEY=placeholder python3 -c \
    'import openai; print(openai.OpenAI().chat.completions.create(model="gpt-4o-mini", messages=[{"role":"user","content":"Hi"}]).choices[0].message.content)'

MSG
target/release/tollgate-proxy run --config "$CONFIG"
