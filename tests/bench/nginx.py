"""nginx in the benchmark: the plain reverse-proxy hop every mode has, and
the fixed-answer upstream of `--upstream nginx-fixed`.

The fixed-answer nginx serves one chat completion from its config
(`return 200 '<json>'`) with the headers OpenAI's API sends that a client
or a proxy reads, so the upstream costs almost nothing and what a hop in
front of it costs shows. Both run from a generated config on a free port,
as `nobody` when we are root.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
from pathlib import Path

from contenders import EMAIL, Contender, Popen, free_port, wait_tcp

NGINX_CONF = """\
daemon off;
master_process on;
worker_processes auto;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 8192; }}
http {{
  access_log off;
  client_body_temp_path {dir}/body;
  proxy_temp_path {dir}/proxy;
  fastcgi_temp_path {dir}/fastcgi;
  uwsgi_temp_path {dir}/uwsgi;
  scgi_temp_path {dir}/scgi;
{http}
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    keepalive_requests 1000000;
    location / {{
{location}
    }}
  }}
}}
"""

# The hop: a keep-alive pool to the upstream, nothing buffered.
NGINX_HOP_HTTP = """\
  upstream up {{ server {upstream}; keepalive 512; keepalive_requests 1000000; }}"""
NGINX_HOP_LOCATION = """\
      proxy_pass http://up;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
      proxy_request_buffering off;
      proxy_read_timeout 600s;"""

# A chat completion as OpenAI's API sends it, with `usage` (a budget
# settles on it) and a dated model name the price table knows. The reply
# holds an email and a phone number, so PII on answers has work to do.
FIXED_REPLY = (f"Fixed reply: Maria ({EMAIL}, +44 20 7946 0958) asked for a summary. Toll roads are "
               "financed by bonds backed by future tolls or by the equity and debt of a concessionaire, "
               "priced on traffic forecasts; optimistic forecasts end in renegotiation or default.")
FIXED_ANSWER = {
    "id": "chatcmpl-BenchFixedAnswer0000000000001", "object": "chat.completion", "created": 1764547200,
    "model": "gpt-4o-mini-2024-07-18",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": FIXED_REPLY, "refusal": None,
                                         "annotations": []},
                 "logprobs": None, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 98, "completion_tokens": 52, "total_tokens": 150,
              "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
              "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                            "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}},
    "service_tier": "default", "system_fingerprint": "fp_b376dfbbd5",
}
# The response headers of OpenAI's API a client or proxy reads (its CDN's
# own, cf-ray and set-cookie, left out). `content-type` comes from
# `default_type`; nginx adds `date`, `server` and `content-length`.
FIXED_HEADERS = {
    "x-request-id": "req_$request_id",  # nginx's random 32 hex digits
    "openai-organization": "tollgate-bench",
    "openai-processing-ms": "412",
    "openai-version": "2020-10-01",
    "x-ratelimit-limit-requests": "30000",
    "x-ratelimit-limit-tokens": "150000000",
    "x-ratelimit-remaining-requests": "29999",
    "x-ratelimit-remaining-tokens": "149999900",
    "x-ratelimit-reset-requests": "2ms",
    "x-ratelimit-reset-tokens": "0s",
}


def fixed_location() -> str:
    body = json.dumps(FIXED_ANSWER, separators=(",", ":"))
    # Inside nginx's single quotes `$` would start a variable and `\` an escape.
    assert not set("$'\\") & set(body), "the fixed answer must not need nginx escapes"
    lines = ["      default_type application/json;"]
    lines += [f"      add_header {k} {v} always;" for k, v in FIXED_HEADERS.items()]
    lines += [f"      return 200 '{body}';"]
    return "\n".join(lines)


def start_nginx(upstream_url: str, run_dir: Path) -> Contender:
    """The hop: nginx proxying to the upstream."""
    p, url = run_nginx("nginx", run_dir, NGINX_HOP_HTTP.format(upstream=upstream_url.split("//", 1)[1]),
                       NGINX_HOP_LOCATION)
    return Contender("nginx", "nginx reverse proxy hop", url + "/v1/chat/completions", [p.pid], [p])


def start_fixed_nginx(run_dir: Path) -> Contender:
    """The fixed-answer upstream: every request gets FIXED_ANSWER, as `direct`."""
    p, url = run_nginx("nginx-fixed", run_dir, "", fixed_location())
    size = len(json.dumps(FIXED_ANSWER, separators=(",", ":")))
    return Contender("direct", f"nginx answering a fixed {size}-byte chat completion, no hop",
                     url + "/v1/chat/completions", [p.pid], [p])


def run_nginx(name: str, run_dir: Path, http: str, location: str) -> tuple[Popen, str]:
    """Debian's nginx from a generated config on a free port; its base URL."""
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(binary).exists():
        raise RuntimeError("nginx not found (apt-get install nginx-light; run.sh does it as root)")
    sub = run_dir / name
    sub.mkdir()
    port = free_port()
    (sub / "nginx.conf").write_text(NGINX_CONF.format(dir=sub, port=port, http=http, location=location))
    user = None
    if os.geteuid() == 0:
        # Unprivileged: the whole process tree runs as nobody.
        user = pwd.getpwnam("nobody")
        os.chmod(run_dir, 0o755)
        os.chown(sub, user.pw_uid, user.pw_gid)
    p = Popen(name, [binary, "-p", str(sub), "-c", str(sub / "nginx.conf"), "-e", str(sub / "error.log")],
              sub, user=user)
    wait_tcp(port, p)
    return p, f"http://127.0.0.1:{port}"
