"""The door intercom from the door's side (docs/protocol.md, "The door intercom").

``IntercomClient`` places a visitor's call for a unit (``POST /api/v1/intercom/calls``,
with a JPEG snapshot in base64) and reads what became of it (``GET .../{id}``), standard
library only, every request with a bounded timeout. ``wait_for_outcome`` polls until the
call has ended: ``answered`` (an ``open`` command comes over MQTT too), ``refused`` or
``timed_out``.
"""

from __future__ import annotations

import base64
import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from hardware.simulate.verify import MAX_RESPONSE_BYTES, VerifyClient, VerifyError

CALLS_PATH = "/api/v1/intercom/calls"
ENDED = frozenset({"answered", "refused", "timed_out"})
POLL_S = 0.5


class IntercomClient:
    """The intercom endpoints for one door (its ``VerifyClient``'s address and credential)."""

    def __init__(self, api: VerifyClient):
        self.api = api

    def call(
        self, unit: str, building: str | None = None, snapshot_path: str | Path | None = None
    ) -> dict[str, Any]:
        """A visitor keyed ``unit`` (and ``building`` at a gate): the call, ringing."""
        body: dict[str, Any] = {"unit": unit}
        if building:
            body["building"] = building
        if snapshot_path is not None:
            body["snapshot"] = base64.b64encode(Path(snapshot_path).read_bytes()).decode("ascii")
        data = json.dumps(body, ensure_ascii=False).encode("utf-8")
        return self._exchange("POST", CALLS_PATH, data)

    def status(self, call_id: str) -> dict[str, Any]:
        """What became of the call so far."""
        return self._exchange("GET", f"{CALLS_PATH}/{call_id}", None)

    def wait_for_outcome(self, call_id: str, timeout: float) -> dict[str, Any]:
        """Poll the call until it ended or ``timeout`` seconds passed; its last state."""
        deadline = time.monotonic() + timeout
        while True:
            state = self.status(call_id)
            if state.get("status") in ENDED or time.monotonic() >= deadline:
                return state
            time.sleep(min(POLL_S, max(0.0, deadline - time.monotonic())))

    def _exchange(self, method: str, path: str, data: bytes | None) -> dict[str, Any]:
        url = f"{self.api.base_url}{path}"
        headers = {
            "Authorization": f"Bearer {self.api._token}",
            "Accept": "application/json, application/problem+json",
        }
        if data is not None:
            headers["Content-Type"] = "application/json; charset=utf-8"
        request = urllib.request.Request(url, data=data, method=method, headers=headers)  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=self.api.timeout_s) as response:  # noqa: S310
                raw = response.read(MAX_RESPONSE_BYTES + 1)
                status = response.status
        except urllib.error.HTTPError as error:
            raise VerifyClient._http_error(
                url, error.code, error.read(MAX_RESPONSE_BYTES + 1)
            ) from None
        except (urllib.error.URLError, OSError) as error:
            raise VerifyError(
                f"{method} {url}: no answer ({getattr(error, 'reason', error)})"
            ) from None
        try:
            answer = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise VerifyError(f"{method} {url}: answer is not JSON", status=status) from None
        if not isinstance(answer, dict):
            raise VerifyError(f"{method} {url}: answer is not a JSON object", status=status)
        return answer
