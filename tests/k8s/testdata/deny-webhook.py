"""A validating admission webhook for smoke.sh, on loopback TLS.

Denies objects labelled tollgate.dev/deny=true. Usage: deny-webhook.py CERT KEY
PORT_FILE; binds 127.0.0.1 on a free port and writes the port to PORT_FILE.
"""
import http.server
import json
import os
import ssl
import sys


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        review = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        request = review["request"]
        labels = ((request.get("object") or {}).get("metadata") or {}).get("labels") or {}
        response = {"uid": request["uid"], "allowed": labels.get("tollgate.dev/deny") != "true"}
        if not response["allowed"]:
            response["status"] = {"code": 403, "message": "denied by the smoke webhook"}
        body = json.dumps(
            {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response}
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def main():
    cert, key, port_file = sys.argv[1:4]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    # Written atomically, after the bind: its presence means the port is live.
    with open(port_file + ".tmp", "w") as f:
        f.write(str(server.server_address[1]))
    os.rename(port_file + ".tmp", port_file)
    server.serve_forever()


if __name__ == "__main__":
    main()
