"""Plates: normalisation, GA 36-2018 formats (a table of valid and invalid strings), fuzzy."""

from __future__ import annotations

import pytest

from gatekeeper.plates import (
    MatchKind,
    PlateError,
    PlateIndex,
    PlateKind,
    PlateProblem,
    normalise_plate,
    skeleton,
    validate_plate,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("浙A12345", "浙A12345"),
        ("浙a12345", "浙A12345"),
        ("浙Ａ·１２３４５", "浙A12345"),
        (" 浙A 123-45 ", "浙A12345"),
        ("粤B.D12345", "粤BD12345"),
        ("京N·F1234学", "京NF1234学"),
    ],
)
def test_normalise(raw: str, expected: str) -> None:
    assert normalise_plate(raw) == expected


VALID = [
    # ordinary blue and yellow plates, every province
    *[
        (f"{p}A12345", PlateKind.ORDINARY)
        for p in "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼"
    ],
    ("浙B8Z345", PlateKind.ORDINARY),
    ("苏EAB123", PlateKind.ORDINARY),
    ("川A·7K9X2", PlateKind.ORDINARY),
    ("浙ｂ１２３４５", PlateKind.ORDINARY),
    # new energy, small cars: electric D A B C E, hybrid F G H J K
    *[(f"粤B{e}12345", PlateKind.NEW_ENERGY_SMALL) for e in "DABCEFGHJK"],
    ("京ADA1234", PlateKind.NEW_ENERGY_SMALL),
    ("沪AF-Z1234", PlateKind.NEW_ENERGY_SMALL),
    # new energy, large vehicles: five digits then the letter
    ("粤B12345D", PlateKind.NEW_ENERGY_LARGE),
    ("京A00001F", PlateKind.NEW_ENERGY_LARGE),
    # special plates
    ("京A1234警", PlateKind.POLICE),
    ("浙A0A12警", PlateKind.POLICE),
    ("京N1234学", PlateKind.DRIVING_SCHOOL),
    ("苏E1234挂", PlateKind.TRAILER),
    ("沪A1234领", PlateKind.CONSULATE),
    ("粤Z1234港", PlateKind.HONG_KONG),
    ("粤Z1A23澳", PlateKind.MACAU),
    ("使014578", PlateKind.EMBASSY),
    ("粤B1234应急", PlateKind.EMERGENCY),
]

INVALID = [
    ("", PlateProblem.EMPTY),
    ("   ", PlateProblem.EMPTY),
    ("·-", PlateProblem.EMPTY),
    ("浙" * 1000, PlateProblem.TOO_LONG),
    ("浙A123456789", PlateProblem.TOO_LONG),
    ("X A12345", PlateProblem.UNKNOWN_PROVINCE),
    ("港A12345", PlateProblem.UNKNOWN_PROVINCE),
    ("A12345B", PlateProblem.UNKNOWN_PROVINCE),
    ("12345678", PlateProblem.UNKNOWN_PROVINCE),
    ("hello world", PlateProblem.TOO_LONG),
    ("hello", PlateProblem.UNKNOWN_PROVINCE),
    ("浙I12345", PlateProblem.FORBIDDEN_LETTER),
    ("浙O12345", PlateProblem.FORBIDDEN_LETTER),
    ("浙B1O345", PlateProblem.FORBIDDEN_LETTER),
    ("浙B12I45", PlateProblem.FORBIDDEN_LETTER),
    ("粤BD1O234", PlateProblem.FORBIDDEN_LETTER),
    ("浙112345", PlateProblem.BAD_AUTHORITY_LETTER),
    ("浙浙12345", PlateProblem.BAD_AUTHORITY_LETTER),
    ("浙", PlateProblem.BAD_AUTHORITY_LETTER),
    ("浙A1234", PlateProblem.BAD_LENGTH),
    ("浙A", PlateProblem.BAD_LENGTH),
    ("浙A123*5", PlateProblem.BAD_FORMAT),
    ("粤BM12345", PlateProblem.BAD_FORMAT),  # M is no energy letter
    ("粤BD123456", PlateProblem.TOO_LONG),
    ("粤B1234D5", PlateProblem.BAD_FORMAT),
    ("粤B12345M", PlateProblem.BAD_FORMAT),
    ("京A1234使", PlateProblem.BAD_FORMAT),
    ("浙A1234港", PlateProblem.BAD_FORMAT),  # cross-border plates are 粤Z only
    ("粤B1234澳", PlateProblem.BAD_FORMAT),
    ("使01457", PlateProblem.UNKNOWN_PROVINCE),
    ("京A123警4", PlateProblem.BAD_FORMAT),
    ("浙A12345应急", PlateProblem.TOO_LONG),
]


def test_the_table_is_large_enough() -> None:
    assert len(VALID) + len(INVALID) >= 60


@pytest.mark.parametrize(("raw", "kind"), VALID)
def test_valid_plates(raw: str, kind: PlateKind) -> None:
    plate = validate_plate(raw)
    assert plate.kind is kind and plate.text == normalise_plate(raw)


@pytest.mark.parametrize(("raw", "problem"), INVALID, ids=[p[0][:12] for p in INVALID])
def test_invalid_plates_say_why(raw: str, problem: PlateProblem) -> None:
    with pytest.raises(PlateError) as caught:
        validate_plate(raw)
    assert caught.value.problem is problem
    assert caught.value.detail


REGISTERED = ["浙B82345", "浙A12345", "粤BD12345", "苏E6G789"]


@pytest.mark.parametrize(
    ("read", "kind", "plate"),
    [
        ("浙B82345", MatchKind.EXACT, "浙B82345"),
        ("浙B8Z345", MatchKind.NEAR, "浙B82345"),  # 2 read as Z
        ("浙BBZ345", MatchKind.NEAR, "浙B82345"),  # 8 as B and 2 as Z: two confusions
        ("渐B82345", MatchKind.NEAR, "浙B82345"),  # the province misread
        ("浙A1Z34S", MatchKind.NEAR, "浙A12345"),
        ("粤B012345", MatchKind.NEAR, "粤BD12345"),  # D read as 0
        ("苏E6G7B9", MatchKind.NEAR, "苏E6G789"),
        ("浙BBZ34S", MatchKind.NONE, None),  # three confusions is too many
        ("浙B82346", MatchKind.NONE, None),  # 5 and 6 are not confused
        ("浙B8234", MatchKind.NONE, None),
    ],
)
def test_fuzzy_matches(read: str, kind: MatchKind, plate: str | None) -> None:
    match = PlateIndex(REGISTERED).match(read)
    assert (match.kind, match.plate) == (kind, plate)


def test_two_plates_one_confusion_apart_are_ambiguous() -> None:
    index = PlateIndex(["浙B82345", "浙B8Z345"])
    match = index.match("浙B8Z34S")
    assert match.kind is MatchKind.AMBIGUOUS and match.plate is None
    assert set(match.candidates) == {"浙B82345", "浙B8Z345"}
    assert index.match("浙B8Z345").kind is MatchKind.EXACT  # an exact read is never ambiguous
    index.discard("浙B8Z345")
    assert index.match("浙B8Z34S").plate == "浙B82345" and len(index) == 1


def test_skeleton() -> None:
    assert skeleton("浙B8Z345") == skeleton("湘882345") == "*882345"
