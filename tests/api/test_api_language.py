"""The API answers in English unless ``Accept-Language`` asks for Chinese: a problem's
``detail`` and the field messages we write follow the caller's language; ``type``,
``title`` and the field names stay as they are."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from gatekeeper.plates import PlateError, validate_plate
from server.core.bodies import NUL_CHARACTER
from server.core.plates import plate_words
from tests.factories import Api
from tests.support.api import WorldIds, assert_problem
from tests.support.pages import login

CHINESE = {"Accept-Language": "zh-CN,zh;q=0.9"}


@pytest.fixture
def bare_client(client: FlaskClient) -> FlaskClient:
    """The test client without the English ``Accept-Language`` the suite sends by default:
    a caller that names no language."""
    client.environ_base.pop("HTTP_ACCEPT_LANGUAGE", None)
    return client


def _send(api: Api, method: str, path: str, headers: dict[str, str], **kwargs: Any) -> Any:
    return api.client.open(
        "/api/v1" + path, method=method, headers={**api.headers, **headers}, **kwargs
    )


def test_a_validation_error_is_chinese_when_asked_and_english_otherwise(
    bare_client: FlaskClient, world: WorldIds
) -> None:
    api = Api(bare_client, "admin")
    path = world.fill("/communities/{a}")

    chinese = assert_problem(_send(api, "PATCH", path, CHINESE, json={}), 422)
    assert chinese["detail"] == "请求不符合格式要求；详见 `errors`。"
    assert chinese["errors"] == {"_schema": ["没有要修改的内容：请至少发送一个字段。"]}

    english = assert_problem(_send(api, "PATCH", path, {}, json={}), 422)
    assert english["detail"] == "The request does not match the schema; see `errors`."
    assert english["errors"] == {"_schema": ["Nothing to change: send at least one field."]}
    # The title stays English, the type stable.
    assert (chinese["type"], chinese["title"]) == (english["type"], english["title"])
    assert chinese["type"] == "/problems/validation-error"


def test_a_rules_lazy_field_messages_are_rendered_in_the_callers_language(
    bare_client: FlaskClient, world: WorldIds
) -> None:
    """``Invalid(_l(...), errors={field: [_l(...)]})``: every lazy text in the document
    becomes a string in the caller's language."""
    api = Api(bare_client, "admin")
    path = world.fill("/communities/{a}/buildings")
    body = {"name": "A\x00"}

    chinese = assert_problem(_send(api, "POST", path, CHINESE, json=body), 422)
    assert chinese["detail"].startswith("请求中含有无法保存的文本")
    assert chinese["errors"] == {"name": ["文本不能含有 NUL 字符。"]}

    english = assert_problem(_send(api, "POST", path, {}, json=body), 422)
    assert english["detail"].startswith("The request holds text that cannot be stored")
    assert english["errors"] == {"name": [NUL_CHARACTER]}


def test_a_plate_refusal_keeps_its_reason_code_in_both_languages(
    bare_client: FlaskClient, world: WorldIds
) -> None:
    api = Api(bare_client, "staff_a")
    path = world.fill("/communities/{a}/blocked-plates")
    body = {"plate": "浙O12345", "reason": "test"}

    chinese = assert_problem(_send(api, "POST", path, CHINESE, json=body), 422)
    assert chinese["reason"] == "forbidden_letter"
    assert chinese["detail"] == "车牌不使用字母 I 和 O"
    assert chinese["errors"] == {"plate": ["车牌不使用字母 I 和 O"]}

    english = assert_problem(_send(api, "POST", path, {}, json=body), 422)
    assert english["reason"] == "forbidden_letter"
    assert english["errors"] == {"plate": ["plates never use the letters I and O"]}


@pytest.mark.parametrize(
    "text", ["", "x" * 40, "浙A123456789", "hello", "浙O12345", "浙112345", "浙A123", "浙A12!45"]
)
def test_the_plate_words_say_in_english_what_the_engine_says(app: Flask, text: str) -> None:
    with pytest.raises(PlateError) as refused:
        validate_plate(text)
    with app.test_request_context("/api/v1/x", headers={"Accept-Language": "en"}):
        assert str(plate_words(refused.value.problem, text)) == refused.value.detail


def test_scope_refusals_name_the_record_in_the_callers_language(
    bare_client: FlaskClient, world: WorldIds
) -> None:
    api = Api(bare_client, "staff_a")
    chinese = assert_problem(_send(api, "GET", "/people/per_nobody", CHINESE), 404)
    assert chinese["detail"] == "没有 ID 为 'per_nobody' 的人员。"
    english = assert_problem(_send(api, "GET", "/people/per_nobody", {}), 404)
    assert english["detail"] == "No person with id 'per_nobody'."

    officer = Api(bare_client, "officer_a")
    people = world.fill("/communities/{a}/people")
    refused = assert_problem(_send(officer, "GET", people, CHINESE), 403)
    assert refused["detail"] == "社区民警账号无权查看人员。"
    assert (
        assert_problem(_send(officer, "GET", people, {}), 403)["detail"]
        == "An officer account cannot read people."
    )


def test_authentication_and_unknown_routes_answer_in_the_callers_language(
    bare_client: FlaskClient,
) -> None:
    no_token = assert_problem(bare_client.get("/api/v1/me", headers=CHINESE), 401)
    assert no_token["detail"].startswith("请先登录")
    assert no_token["title"] == "Authentication required"
    assert assert_problem(bare_client.get("/api/v1/me"), 401)["detail"].startswith("Sign in")

    nowhere = assert_problem(bare_client.get("/api/v1/nowhere", headers=CHINESE), 404)
    assert nowhere["detail"].startswith("服务器上找不到所请求的网址")


def test_an_error_page_escapes_a_detail_that_quotes_the_request(
    client: FlaskClient, world: WorldIds
) -> None:
    """A lazy text has ``__html__``, so Jinja would take it for markup: the page gets a
    plain string, escaped."""
    login(client, "staff_a")
    page = client.get("/people/%3Cb%3Ebold")
    assert page.status_code == 404
    assert "No person with id" in page.text
    assert "<b>bold" not in page.text and "&lt;b&gt;bold" in page.text
