#!/usr/bin/env python3
"""A local Microsoft identity platform for the tests, in its real shapes.

Two listeners on 127.0.0.1:
- HTTPS (azure_identity refuses an authority host without TLS): the
  client-credentials grant, POST /{tenant}/oauth2/v2.0/token, and the
  workload identity's client-assertion grant on the same path;
- on the same HTTPS listener, a Service Bus namespace's send API,
  POST /{queue}/messages, that takes a message only with a bearer token
  whose audience is https://servicebus.azure.net (the SDK's bearer policy
  sends tokens over HTTPS only, so the fake must be HTTPS too); each
  accepted message is logged with its headers and body;
- HTTP: the App Service / Functions managed-identity endpoint
  (IDENTITY_ENDPOINT), GET /msi/token?resource=...&api-version=2019-08-01
  with the X-IDENTITY-HEADER the host sets.

Tokens are JWTs shaped as Entra issues them (iss https://sts.windows.net/
{tenant}/, aud the resource, nbf/exp, tid, appid): Azurite's OAuth "basic"
mode checks those claims (not the signature), and the other fakes read the
audience. Every request is appended to --log as one JSON line: the grant,
the client, the scope or resource, never the secret.

    fake_entra.py --cert C --key K --tenant T --client-id ID --secret S \
        --identity-header H --ports-file F --log L
"""
import argparse
import base64
import json
import ssl
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt(tenant: str, audience: str, appid: str, lifetime: int) -> str:
    now = int(time.time())
    header = {"typ": "JWT", "alg": "RS256", "kid": "fake"}
    claims = {
        "aud": audience,
        "iss": f"https://sts.windows.net/{tenant}/",
        "iat": now - 5,
        "nbf": now - 5,
        "exp": now + lifetime,
        "tid": tenant,
        "appid": appid,
        "oid": "00000000-0000-0000-0000-0000000000aa",
        "ver": "1.0",
    }
    parts = [b64url(json.dumps(p).encode()) for p in (header, claims)]
    return ".".join(parts + [b64url(b"not-a-real-signature")])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--tenant", required=True)
    ap.add_argument("--client-id", required=True)
    ap.add_argument("--secret", required=True)
    ap.add_argument("--identity-header", required=True)
    ap.add_argument("--ports-file", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--lifetime", type=int, default=3600)
    args = ap.parse_args()
    lock = threading.Lock()

    def record(entry: dict) -> None:
        with lock, open(args.log, "a") as f:
            f.write(json.dumps(entry) + "\n")

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *a):  # quiet
            pass

        def answer(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self):
            path = urllib.parse.urlparse(self.path).path
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length).decode()
            if path.endswith("/messages"):
                return self.service_bus(path, raw)
            form = urllib.parse.parse_qs(raw)
            field = lambda k: (form.get(k) or [""])[0]
            if path != f"/{args.tenant}/oauth2/v2.0/token":
                record({"grant": "unknown", "path": path})
                return self.answer(400, {"error": "invalid_request",
                                         "error_description": "AADSTS90002: Tenant not found.",
                                         "error_codes": [90002]})
            grant = field("grant_type")
            scope = field("scope")
            client = field("client_id")
            ok = bool(client == args.client_id and (
                (grant == "client_credentials" and field("client_secret") == args.secret
                 and not field("client_assertion"))
                or (grant == "client_credentials" and field("client_assertion_type")
                    == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
                    and field("client_assertion"))
            ))
            kind = "client_assertion" if field("client_assertion") else "client_secret"
            record({"grant": kind, "client_id": client, "scope": scope, "ok": ok})
            if not ok:
                return self.answer(401, {"error": "invalid_client",
                                         "error_description": "AADSTS7000215: Invalid client secret provided.",
                                         "error_codes": [7000215]})
            audience = scope.removesuffix("/.default")
            self.answer(200, {"token_type": "Bearer", "expires_in": args.lifetime,
                              "ext_expires_in": args.lifetime,
                              "access_token": jwt(args.tenant, audience, client, args.lifetime)})

        def service_bus(self, path: str, raw: str) -> None:
            auth = self.headers.get("authorization") or ""
            token = auth.removeprefix("Bearer ")
            try:
                part = token.split(".")[1]
                claims = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
            except Exception:
                claims = {}
            if not auth.startswith("Bearer ") or claims.get("aud") != "https://servicebus.azure.net":
                record({"grant": "service_bus_refused", "path": path})
                return self.answer(401, {"error": "unauthorized"})
            record({"grant": "service_bus", "queue": path.strip("/").split("/")[0],
                    "headers": {k.lower(): v for k, v in self.headers.items() if k.lower() != "authorization"},
                    "body": json.loads(raw)})
            self.send_response(201)
            self.send_header("content-length", "0")
            self.end_headers()

        def do_GET(self):
            url = urllib.parse.urlparse(self.path)
            query = urllib.parse.parse_qs(url.query)
            resource = (query.get("resource") or [""])[0]
            ok = url.path == "/msi/token" and self.headers.get("x-identity-header") == args.identity_header
            record({"grant": "managed_identity", "resource": resource,
                    "client_id": (query.get("client_id") or [""])[0], "ok": ok})
            if not ok:
                return self.answer(400, {"error": "invalid_request"})
            expires_on = int(time.time()) + args.lifetime
            self.answer(200, {"access_token": jwt(args.tenant, resource, "managed-identity", args.lifetime),
                              "expires_on": str(expires_on), "resource": resource,
                              "token_type": "Bearer", "client_id": "managed-identity"})

    https = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(args.cert, args.key)
    https.socket = context.wrap_socket(https.socket, server_side=True)
    http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    with open(args.ports_file + ".tmp", "w") as f:
        json.dump({"https": https.server_address[1], "http": http.server_address[1]}, f)
    import os
    os.replace(args.ports_file + ".tmp", args.ports_file)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    try:
        https.serve_forever()
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
