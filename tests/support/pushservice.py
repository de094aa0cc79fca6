"""A push service on loopback that speaks RFC 8030 as far as the server uses it.

It plays both ends a real one joins: the browser (each ``subscribe`` makes a P-256 key pair
and an auth secret, as ``PushManager.subscribe`` does, and gives the subscription's JSON) and
the service (``POST /push/<id>``). A push must carry ``TTL``, ``Content-Encoding:
aes128gcm`` and ``Authorization: vapid t=<JWT>, k=<key>`` (RFC 8292) whose ES256 signature
verifies with ``k``, whose ``aud`` is this service's origin and whose ``exp`` is ahead; the
body is decrypted with the subscription's private key (RFC 8291, ``http_ece``) and kept, so
tests assert the plaintext a phone would show. It answers 201, or what the test set for a
subscription (410: gone). A push it refuses is answered 400 and kept with its reason.
"""

from __future__ import annotations

import base64
import json
import os
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import http_ece
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Push:
    """One push as the service took it (``plaintext``) or refused it (``refused``)."""

    subscription: str
    headers: dict[str, str]
    claims: dict[str, Any] | None = None
    vapid_key: str | None = None
    plaintext: bytes | None = None
    refused: str | None = None

    def json(self) -> Any:
        assert self.plaintext is not None, self.refused
        return json.loads(self.plaintext)


@dataclass
class _Subscriber:
    key: ec.EllipticCurvePrivateKey
    auth: bytes
    status: int = 201


@dataclass
class PushService:
    """Start with ``start()``; ``subscribe()`` for a browser's subscription JSON."""

    pushes: list[Push] = field(default_factory=list)
    _subscribers: dict[str, _Subscriber] = field(default_factory=dict)

    def __post_init__(self) -> None:
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                status = service._take(self.path, dict(self.headers.items()), body)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                if status == 201:
                    self.send_header("Location", f"{self.path}/messages/{len(service.pushes)}")
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> PushService:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)

    def subscribe(self) -> dict[str, Any]:
        """A new subscription, as ``PushSubscription.toJSON()`` gives it."""
        name = b64url(os.urandom(9))
        key = ec.generate_private_key(ec.SECP256R1())
        self._subscribers[name] = _Subscriber(key, os.urandom(16))
        point = key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return {
            "endpoint": f"{self.origin}/push/{name}",
            "expirationTime": None,
            "keys": {"p256dh": b64url(point), "auth": b64url(self._subscribers[name].auth)},
        }

    def answer(self, endpoint: str, status: int) -> None:
        """Answer pushes to this subscription with ``status`` from now on (410: gone)."""
        self._subscribers[endpoint.rsplit("/", 1)[1]].status = status

    def _take(self, path: str, headers: dict[str, str], body: bytes) -> int:
        name = path.removeprefix("/push/")
        push = Push(name, {key.lower(): value for key, value in headers.items()})
        self.pushes.append(push)
        subscriber = self._subscribers.get(name)
        if subscriber is None:
            push.refused = "no such subscription"
            return 404
        try:
            push.claims, push.vapid_key = self._check_headers(headers)
            push.plaintext = http_ece.decrypt(
                body, private_key=subscriber.key, auth_secret=subscriber.auth, version="aes128gcm"
            )
        except (ValueError, KeyError, InvalidSignature, http_ece.ECEException) as error:
            push.refused = f"{type(error).__name__}: {error}"
            return 400
        return subscriber.status

    def _check_headers(self, headers: dict[str, str]) -> tuple[dict[str, Any], str]:
        lower = {name.lower(): value for name, value in headers.items()}
        if not lower.get("ttl", "").isdigit():
            raise ValueError("no TTL")
        if lower.get("content-encoding") != "aes128gcm":
            raise ValueError(f"content-encoding {lower.get('content-encoding')}")
        scheme, _, rest = lower.get("authorization", "").partition(" ")
        if scheme.lower() != "vapid":
            raise ValueError("no vapid authorization")
        parts = dict(item.strip().split("=", 1) for item in rest.split(","))
        token, key = parts["t"], parts["k"]
        head, payload, signature = token.split(".")
        if json.loads(unb64url(head)).get("alg") != "ES256":
            raise ValueError("not ES256")
        raw = unb64url(signature)
        if len(raw) != 64:
            raise ValueError("signature length")
        public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64url(key))
        public.verify(
            encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")),
            f"{head}.{payload}".encode("ascii"),
            ec.ECDSA(hashes.SHA256()),
        )
        claims = json.loads(unb64url(payload))
        if claims.get("aud") != self.origin:
            raise ValueError(f"aud {claims.get('aud')}")
        if not claims.get("exp") or claims["exp"] < time.time():
            raise ValueError("expired")
        return claims, key
