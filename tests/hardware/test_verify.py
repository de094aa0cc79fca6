"""The devices' HTTP verification client, against a tiny local server on 127.0.0.1."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from hardware.memory import MemoryBroker
from hardware.simulate import Barrier, Door, VerifyClient, VerifyError
from hardware.simulate.verify import FilePart, encode_multipart
from tests.hardware.conftest import new_identity
from tests.support.net import free_port

GRANT = {
    "decision": "grant",
    "reason": "resident",
    "event_id": "evt_1",
    "subject": {"kind": "resident", "display_name": "王*明"},
    "open_ms": 5000,
}


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class FakeServer:
    url: str
    requests: list[Recorded] = field(default_factory=list)
    status: int = 200
    content_type: str = "application/json"
    reply: bytes = json.dumps(GRANT).encode()
    hang: threading.Event = field(default_factory=threading.Event)
    hanging: bool = False


@pytest.fixture
def fake_server() -> Iterator[FakeServer]:
    server_state = FakeServer(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            server_state.requests.append(
                Recorded("POST", self.path, {k.lower(): v for k, v in self.headers.items()}, body)
            )
            if server_state.hanging:
                server_state.hang.wait(10)
                return
            self.send_response(server_state.status)
            self.send_header("Content-Type", server_state.content_type)
            self.send_header("Content-Length", str(len(server_state.reply)))
            self.end_headers()
            self.wfile.write(server_state.reply)

        def log_message(self, *_args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    server_state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server_state
    server_state.hang.set()
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def images(tmp_path: Path) -> dict[str, Path]:
    files = {
        "face": tmp_path / "face.jpg",
        "depth": tmp_path / "depth.png",
        "plate": tmp_path / '车牌 "1".png',
    }
    files["face"].write_bytes(b"\xff\xd8\xff\xe0 jpeg bytes \r\n--not-a-boundary\r\n")
    files["depth"].write_bytes(b"\x89PNG\r\n\x1a\n depth")
    files["plate"].write_bytes(b"\x89PNG\r\n\x1a\n plate")
    return files


def client(server: FakeServer, **kwargs) -> VerifyClient:
    return VerifyClient(server.url, "dev_1", "the-secret", **kwargs)


def parts(recorded: Recorded) -> dict[str, Message]:
    """Parse a multipart/form-data body with the standard library's own MIME parser."""
    head = f"Content-Type: {recorded.headers['content-type']}\r\n\r\n".encode()
    message = message_from_bytes(head + recorded.body, policy=HTTP)
    assert message.is_multipart() and not message.defects
    return {
        part.get_param("name", header="content-disposition"): part for part in message.iter_parts()
    }


def test_card_is_json_with_the_device_bearer_token(fake_server: FakeServer) -> None:
    decision = client(fake_server).card("04a1b2c3d4e5f6")
    assert decision == GRANT
    [request] = fake_server.requests
    assert request.path == "/api/v1/verify/card"
    assert request.headers["authorization"] == "Bearer dev_1.the-secret"
    assert request.headers["content-type"].startswith("application/json")
    assert json.loads(request.body) == {"uid": "04a1b2c3d4e5f6"}


def test_qr_token_and_qr_image(fake_server: FakeServer, images: dict[str, Path]) -> None:
    verify = client(fake_server)
    verify.qr_token("tok.abc")
    verify.qr_image(images["face"])
    token, image = fake_server.requests
    assert (token.path, json.loads(token.body)) == ("/api/v1/verify/qr", {"token": "tok.abc"})
    assert image.path == "/api/v1/verify/qr"
    assert parts(image)["image"].get_content() == images["face"].read_bytes()


def test_face_is_multipart_with_image_depth_and_direction(
    fake_server: FakeServer, images: dict[str, Path]
) -> None:
    client(fake_server).face(images["face"], images["depth"], direction="in")
    [request] = fake_server.requests
    assert request.path == "/api/v1/verify/face"
    fields = parts(request)
    assert set(fields) == {"image", "depth", "direction"}
    assert fields["image"].get_content_type() == "image/jpeg"
    assert fields["image"].get_filename() == "face.jpg"
    assert fields["image"].get_content() == images["face"].read_bytes()
    assert fields["depth"].get_content_type() == "image/png"
    assert fields["depth"].get_content() == images["depth"].read_bytes()
    assert fields["direction"].get_payload(decode=True) == b"in"


def test_face_without_depth_or_direction(fake_server: FakeServer, images: dict[str, Path]) -> None:
    client(fake_server).face(images["face"])
    assert set(parts(fake_server.requests[0])) == {"image"}
    with pytest.raises(ValueError, match="direction"):
        client(fake_server).face(images["face"], direction="sideways")


def test_plate_json_and_multipart(fake_server: FakeServer, images: dict[str, Path]) -> None:
    verify = client(fake_server)
    verify.plate("浙B12345", 0.93, "blue", "in")
    verify.plate("浙B12345", 0.93, "blue", "out", snapshot_path=images["plate"])
    as_json, as_form = fake_server.requests
    assert as_json.path == as_form.path == "/api/v1/verify/plate"
    assert json.loads(as_json.body.decode("utf-8")) == {
        "plate": "浙B12345",
        "confidence": 0.93,
        "color": "blue",
        "direction": "in",
    }
    fields = parts(as_form)
    assert {
        name: fields[name].get_payload(decode=True).decode("utf-8")
        for name in ("plate", "confidence", "color", "direction")
    } == {
        "plate": "浙B12345",
        "confidence": "0.93",
        "color": "blue",
        "direction": "out",
    }
    assert fields["snapshot"].get_content() == images["plate"].read_bytes()


def test_multipart_escapes_quotes_in_names() -> None:
    body, content_type = encode_multipart(
        {"a": "1"}, [FilePart("f", 'x"y\r\n.png', b"data", "image/png")], boundary="B"
    )
    assert content_type == "multipart/form-data; boundary=B"
    assert b'filename="x%22y%0D%0A.png"' in body
    assert body.endswith(b"--B--\r\n")


def test_problem_document_becomes_a_clear_error(fake_server: FakeServer) -> None:
    fake_server.status = 401
    fake_server.content_type = "application/problem+json"
    fake_server.reply = json.dumps(
        {"type": "about:blank", "title": "Unauthorized", "status": 401, "detail": "bad device"}
    ).encode()
    with pytest.raises(VerifyError) as raised:
        client(fake_server).card("04A1")
    assert raised.value.status == 401
    assert raised.value.problem is not None and raised.value.problem["detail"] == "bad device"
    assert "401" in str(raised.value) and "bad device" in str(raised.value)


def test_non_json_answers_and_unreachable_servers_raise(fake_server: FakeServer) -> None:
    fake_server.content_type = "text/html"
    fake_server.reply = b"<html>proxy error</html>"
    with pytest.raises(VerifyError, match="not JSON"):
        client(fake_server).card("04A1")
    nobody = VerifyClient(f"http://127.0.0.1:{free_port()}", "dev_1", "s", timeout_s=2)
    with pytest.raises(VerifyError) as raised:
        nobody.card("04A1")
    assert raised.value.status is None


def test_timeout_is_bounded(fake_server: FakeServer) -> None:
    fake_server.hanging = True
    with pytest.raises(VerifyError, match="no answer"):
        client(fake_server, timeout_s=0.2).card("04A1")


def test_only_http_urls() -> None:
    for bad in ("ftp://host", "file:///etc/passwd", "127.0.0.1:8000"):
        with pytest.raises(ValueError):
            VerifyClient(bad, "d", "s")


def test_devices_present_credentials(fake_server: FakeServer, images: dict[str, Path]) -> None:
    broker = MemoryBroker()
    door = Door(new_identity("dev_door"), broker, api=fake_server.url)
    barrier = Barrier(new_identity("dev_gate"), broker, api=fake_server.url)
    assert door.present_card("04A1B2C3") == GRANT
    door.present_qr_token("tok")
    door.present_qr_image(images["face"])
    door.present_face(images["face"], images["depth"], "out")
    barrier.present_plate("浙B12345", 0.9, "blue", "in", images["plate"])
    assert [r.path.rsplit("/", 1)[1] for r in fake_server.requests] == [
        "card",
        "qr",
        "qr",
        "face",
        "plate",
    ]
    assert (
        fake_server.requests[0].headers["authorization"]
        == f"Bearer dev_door.{door.identity.secret}"
    )
    assert fake_server.requests[-1].headers["authorization"].startswith("Bearer dev_gate.")
