"""The device side of docs/protocol.md section 3: HTTP verification requests, standard library only.

Every request carries ``Authorization: Bearer <device_id>.<secret>``; images go up as
``multipart/form-data`` built by hand, JSON bodies as UTF-8. A decision (grant or
deny) comes back as a dict; anything else raises ``VerifyError`` with the status and
the RFC 9457 problem document when the server sent one.
"""

from __future__ import annotations

import json
import logging
import mimetypes
import secrets
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

_LOGGER = logging.getLogger(__name__)

VERIFY_PATH = "/api/v1/verify"
MAX_RESPONSE_BYTES = 1024 * 1024
DIRECTIONS = ("in", "out")


class VerifyError(Exception):
    """A verification request that got no decision: ``status`` is None when nothing answered."""

    def __init__(self, message: str, *, status: int | None = None, problem: dict | None = None):
        super().__init__(message)
        self.status = status
        self.problem = problem


@dataclass(frozen=True)
class FilePart:
    """One file field of a multipart body."""

    name: str
    filename: str
    content: bytes
    content_type: str

    @classmethod
    def from_path(cls, name: str, path: str | Path) -> FilePart:
        """Read a file; its content type is guessed from the extension."""
        path = Path(path)
        content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return cls(name, path.name, path.read_bytes(), content_type)


def _quote_disposition(value: str) -> str:
    # The HTML form encoding: escape what would end the quoted string or the header line.
    return value.replace("\\", "\\\\").replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")


def encode_multipart(
    fields: Mapping[str, str], files: Sequence[FilePart], *, boundary: str | None = None
) -> tuple[bytes, str]:
    """A ``multipart/form-data`` body and its Content-Type header (text fields in UTF-8)."""
    boundary = boundary or f"gk-{secrets.token_hex(16)}"
    chunks: list[bytes] = []
    for name, value in fields.items():
        chunks.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{_quote_disposition(name)}"'
            "\r\n\r\n".encode()
        )
        chunks.append(value.encode("utf-8") + b"\r\n")
    for part in files:
        chunks.append(
            (
                f"--{boundary}\r\nContent-Disposition: form-data; "
                f'name="{_quote_disposition(part.name)}"; '
                f'filename="{_quote_disposition(part.filename)}"\r\n'
                f"Content-Type: {part.content_type}\r\n\r\n"
            ).encode()
        )
        chunks.append(part.content + b"\r\n")
    chunks.append(f"--{boundary}--\r\n".encode())
    return b"".join(chunks), f"multipart/form-data; boundary={boundary}"


def _direction(value: str | None) -> str | None:
    if value is not None and value not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, not {value!r}")
    return value


class VerifyClient:
    """Calls ``/api/v1/verify/*`` for one device; every call has a bounded timeout."""

    def __init__(self, base_url: str, device_id: str, secret: str, *, timeout_s: float = 10.0):
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an HTTP URL: {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.device_id = device_id
        self._token = f"{device_id}.{secret}"
        self.timeout_s = timeout_s

    @property
    def authorization(self) -> str:
        """The ``Authorization`` header of this device's requests (docs/protocol.md section 2)."""
        return f"Bearer {self._token}"

    def card(self, uid: str) -> dict[str, Any]:
        """POST /verify/card with an IC card UID (hex)."""
        return self.post_json("card", {"uid": uid})

    def pin(self, digits: str) -> dict[str, Any]:
        """POST /verify/pin with the six digits typed on the keypad."""
        return self.post_json("pin", {"pin": digits})

    def qr_token(self, token: str) -> dict[str, Any]:
        """POST /verify/qr with a token the terminal decoded itself."""
        return self.post_json("qr", {"token": token})

    def qr_image(self, image_path: str | Path) -> dict[str, Any]:
        """POST /verify/qr with a camera frame containing the code."""
        return self.post_multipart("qr", {}, [FilePart.from_path("image", image_path)])

    def face(
        self,
        image_path: str | Path,
        depth_path: str | Path | None = None,
        direction: str | None = None,
    ) -> dict[str, Any]:
        """POST /verify/face with a colour image and, optionally, a 16-bit depth PNG."""
        fields = {"direction": d} if (d := _direction(direction)) else {}
        files = [FilePart.from_path("image", image_path)]
        if depth_path is not None:
            files.append(FilePart.from_path("depth", depth_path))
        return self.post_multipart("face", fields, files)

    def plate(
        self,
        plate: str,
        confidence: float,
        color: str,
        direction: str,
        snapshot_path: str | Path | None = None,
    ) -> dict[str, Any]:
        """POST /verify/plate: JSON, or multipart with the same fields when there is a snapshot."""
        body = {
            "plate": plate,
            "confidence": confidence,
            "color": color,
            "direction": _direction(direction),
        }
        if snapshot_path is None:
            return self.post_json("plate", body)
        fields = {name: str(value) for name, value in body.items()}
        return self.post_multipart("plate", fields, [FilePart.from_path("snapshot", snapshot_path)])

    # transport ------------------------------------------------------------------------------

    def post_json(self, endpoint: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """POST a JSON body to ``/api/v1/verify/<endpoint>``; the decision."""
        data = json.dumps(dict(body), ensure_ascii=False).encode("utf-8")
        return self._post(endpoint, data, "application/json; charset=utf-8")

    def post_multipart(
        self, endpoint: str, fields: Mapping[str, str], files: Sequence[FilePart]
    ) -> dict[str, Any]:
        """POST a multipart body to ``/api/v1/verify/<endpoint>``; the decision."""
        data, content_type = encode_multipart(fields, files)
        return self._post(endpoint, data, content_type)

    def _post(self, endpoint: str, data: bytes, content_type: str) -> dict[str, Any]:
        url = f"{self.base_url}{VERIFY_PATH}/{endpoint}"
        request = urllib.request.Request(  # noqa: S310 (the scheme is checked in __init__)
            url,
            data=data,
            method="POST",
            headers={
                "Authorization": f"Bearer {self._token}",
                "Content-Type": content_type,
                "Accept": "application/json, application/problem+json",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:  # noqa: S310
                status, raw = response.status, response.read(MAX_RESPONSE_BYTES + 1)
        except urllib.error.HTTPError as error:
            raw = error.read(MAX_RESPONSE_BYTES + 1)
            raise self._http_error(url, error.code, raw) from None
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise VerifyError(f"POST {url}: no answer ({reason})") from None
        if len(raw) > MAX_RESPONSE_BYTES:
            raise VerifyError(f"POST {url}: answer too large", status=status)
        try:
            decision = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise VerifyError(f"POST {url}: answer is not JSON", status=status) from None
        if not isinstance(decision, dict):
            raise VerifyError(f"POST {url}: answer is not a JSON object", status=status)
        _LOGGER.info(
            "%s verify/%s: %s (%s)",
            self.device_id,
            endpoint,
            decision.get("decision"),
            decision.get("reason"),
        )
        return decision

    @staticmethod
    def _http_error(url: str, status: int, raw: bytes) -> VerifyError:
        problem = None
        try:
            parsed = json.loads(raw[:MAX_RESPONSE_BYTES].decode("utf-8"))
            problem = parsed if isinstance(parsed, dict) else None
        except (UnicodeDecodeError, ValueError):
            pass
        summary = ""
        if problem is not None:
            title, detail = problem.get("title"), problem.get("detail")
            summary = ": " + " - ".join(str(part) for part in (title, detail) if part)
        return VerifyError(f"POST {url} -> {status}{summary}", status=status, problem=problem)
