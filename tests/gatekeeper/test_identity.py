"""Identity documents: format checks, normalisation, masking; and the tests' number maker."""

from __future__ import annotations

from datetime import date

import pytest

from gatekeeper.identity import (
    PROVINCE_CODES,
    DocumentError,
    DocumentProblem,
    DocumentType,
    birth_date_from_resident_id,
    check_character,
    mask_document,
    mask_name,
    validate_document,
)
from tests.support.identity import make_resident_id

TODAY = date(2026, 11, 21)

RID = DocumentType.RESIDENT_ID
PASSPORT = DocumentType.PASSPORT
HK_MACAU = DocumentType.HK_MACAU_PERMIT
TAIWAN = DocumentType.TAIWAN_PERMIT
PERMANENT = DocumentType.FOREIGNER_PERMANENT_RESIDENCE

# The worked example of GB 11643-1999 itself (Beijing Chaoyang, born 1949-12-31).
STANDARD_EXAMPLE = "11010519491231002X"


def with_check(body: str) -> str:
    """17 digits and their correct check character: numbers that fail on something else."""
    return body + check_character(body)


def wrong_check(number: str) -> str:
    """The same number with a check character that cannot be right."""
    right = number[-1]
    return number[:-1] + ("0" if right != "0" else "1")


def full_width(text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


VALID = [
    # resident IDs
    pytest.param(RID, make_resident_id(), "33010619900101123X", id="rid-generated-x"),
    pytest.param(RID, STANDARD_EXAMPLE, STANDARD_EXAMPLE, id="rid-gb11643-example"),
    pytest.param(RID, "11010519491231002x", STANDARD_EXAMPLE, id="rid-lowercase-x"),
    pytest.param(RID, " 110105 19491231 002X\n", STANDARD_EXAMPLE, id="rid-spaces"),
    pytest.param(RID, full_width("11010519491231002x"), STANDARD_EXAMPLE, id="rid-full-width"),
    pytest.param(RID, "330106199009011234", "330106199009011234", id="rid-ends-1234"),
    pytest.param(
        RID,
        make_resident_id("820000", date(2001, 6, 15), 42),
        make_resident_id("820000", date(2001, 6, 15), 42),
        id="rid-macau-82",
    ),
    pytest.param(
        RID,
        make_resident_id("650102", date(2000, 2, 29), 7),
        make_resident_id("650102", date(2000, 2, 29), 7),
        id="rid-leap-day",
    ),
    pytest.param(
        RID, make_resident_id(birth=TODAY), make_resident_id(birth=TODAY), id="rid-born-today"
    ),
    pytest.param(
        RID,
        make_resident_id(birth=date(1900, 1, 1)),
        make_resident_id(birth=date(1900, 1, 1)),
        id="rid-born-1900",
    ),
    # passports
    pytest.param(PASSPORT, "E12345678", "E12345678", id="passport-cn-e8"),
    pytest.param(PASSPORT, "ea1234567", "EA1234567", id="passport-cn-e-letter-7"),
    pytest.param(PASSPORT, "C01X00T47", "C01X00T47", id="passport-foreign-9"),
    pytest.param(PASSPORT, "A1234", "A1234", id="passport-5-chars"),
    pytest.param(PASSPORT, "A" * 10 + "1" * 10, "A" * 10 + "1" * 10, id="passport-20-chars"),
    # Hong Kong / Macau permits
    pytest.param(HK_MACAU, "H12345678", "H12345678", id="hk-new"),
    pytest.param(HK_MACAU, "m1234567890", "M1234567890", id="macau-old-lowercase"),
    # Taiwan permits
    pytest.param(TAIWAN, "12345678", "12345678", id="taiwan-new"),
    pytest.param(TAIWAN, "1234567890", "1234567890", id="taiwan-old"),
    # foreigners' permanent residence cards
    pytest.param(
        PERMANENT, with_check("93384019900101123"), with_check("93384019900101123"), id="fpr-new"
    ),
    pytest.param(PERMANENT, "usa123456789012", "USA123456789012", id="fpr-old"),
]

INVALID = [
    # resident IDs
    pytest.param(RID, wrong_check(STANDARD_EXAMPLE), DocumentProblem.BAD_CHECK_DIGIT, id="rid-chk"),
    pytest.param(
        RID, "11010519491231012X", DocumentProblem.BAD_CHECK_DIGIT, id="rid-typo-in-sequence"
    ),
    pytest.param(
        RID, with_check("33010619900230123"), DocumentProblem.BAD_BIRTH_DATE, id="rid-feb-30"
    ),
    pytest.param(
        RID, with_check("33010619901301123"), DocumentProblem.BAD_BIRTH_DATE, id="rid-month-13"
    ),
    pytest.param(
        RID, with_check("33010619910229123"), DocumentProblem.BAD_BIRTH_DATE, id="rid-not-leap"
    ),
    pytest.param(
        RID, with_check("33010620261122123"), DocumentProblem.BAD_BIRTH_DATE, id="rid-tomorrow"
    ),
    pytest.param(
        RID, with_check("33010618991231123"), DocumentProblem.BAD_BIRTH_DATE, id="rid-1899"
    ),
    # GB 11643's second example has a correct check digit and a birth in 1880.
    pytest.param(RID, "440524188001010014", DocumentProblem.BAD_BIRTH_DATE, id="rid-1880"),
    pytest.param(RID, with_check("10010619900101123"), DocumentProblem.BAD_REGION, id="rid-10"),
    pytest.param(RID, with_check("00010619900101123"), DocumentProblem.BAD_REGION, id="rid-00"),
    pytest.param(RID, with_check("72010619900101123"), DocumentProblem.BAD_REGION, id="rid-72"),
    pytest.param(RID, with_check("83010619900101123"), DocumentProblem.BAD_REGION, id="rid-83"),
    pytest.param(RID, STANDARD_EXAMPLE[:-1], DocumentProblem.BAD_LENGTH, id="rid-17"),
    pytest.param(RID, STANDARD_EXAMPLE + "1", DocumentProblem.BAD_LENGTH, id="rid-19"),
    pytest.param(RID, "110105491231002", DocumentProblem.BAD_LENGTH, id="rid-15-first-gen"),
    pytest.param(RID, "1101051949123A002X", DocumentProblem.BAD_CHARACTERS, id="rid-letter"),
    pytest.param(RID, "X10105194912310021", DocumentProblem.BAD_CHARACTERS, id="rid-x-first"),
    pytest.param(RID, "11010519491231002Y", DocumentProblem.BAD_CHARACTERS, id="rid-y-last"),
    pytest.param(RID, "1101051949-1231002", DocumentProblem.BAD_CHARACTERS, id="rid-hyphen"),
    pytest.param(
        RID, "一一〇一〇五一九四九一二三一〇〇二X", DocumentProblem.BAD_CHARACTERS, id="rid-han"
    ),
    pytest.param(RID, "", DocumentProblem.EMPTY, id="rid-empty"),
    pytest.param(RID, "   ", DocumentProblem.EMPTY, id="rid-blank"),
    # passports
    pytest.param(PASSPORT, "E123", DocumentProblem.BAD_FORMAT, id="passport-4"),
    pytest.param(PASSPORT, "A" * 21, DocumentProblem.BAD_FORMAT, id="passport-21"),
    pytest.param(PASSPORT, "E1234-5678", DocumentProblem.BAD_FORMAT, id="passport-hyphen"),
    pytest.param(PASSPORT, "护照12345", DocumentProblem.BAD_CHARACTERS, id="passport-han"),
    # Hong Kong / Macau permits
    pytest.param(HK_MACAU, "H1234567", DocumentProblem.BAD_FORMAT, id="hk-7-digits"),
    pytest.param(HK_MACAU, "H123456789", DocumentProblem.BAD_FORMAT, id="hk-9-digits"),
    pytest.param(HK_MACAU, "C12345678", DocumentProblem.BAD_FORMAT, id="hk-c-prefix"),
    pytest.param(HK_MACAU, "12345678", DocumentProblem.BAD_FORMAT, id="hk-no-letter"),
    # Taiwan permits
    pytest.param(TAIWAN, "123456789", DocumentProblem.BAD_FORMAT, id="taiwan-9"),
    pytest.param(TAIWAN, "T1234567", DocumentProblem.BAD_FORMAT, id="taiwan-letter"),
    # foreigners' permanent residence cards
    pytest.param(
        PERMANENT,
        wrong_check(with_check("93384019900101123")),
        DocumentProblem.BAD_CHECK_DIGIT,
        id="fpr-new-check",
    ),
    pytest.param(
        PERMANENT, with_check("83384019900101123"), DocumentProblem.BAD_FORMAT, id="fpr-not-9"
    ),
    pytest.param(PERMANENT, "US1234567890123", DocumentProblem.BAD_FORMAT, id="fpr-old-2-letters"),
    pytest.param(PERMANENT, "USA12345678901", DocumentProblem.BAD_FORMAT, id="fpr-old-11-digits"),
    # unknown type
    pytest.param("driving_licence", "12345678", DocumentProblem.UNKNOWN_TYPE, id="unknown-type"),
]


@pytest.mark.parametrize(("doc_type", "number", "normalised"), VALID)
def test_valid_numbers_come_back_normalised(
    doc_type: DocumentType, number: str, normalised: str
) -> None:
    assert validate_document(doc_type, number, today=TODAY) == normalised


@pytest.mark.parametrize(("doc_type", "number", "problem"), INVALID)
def test_invalid_numbers_raise_with_a_reason(
    doc_type: DocumentType | str, number: str, problem: DocumentProblem
) -> None:
    with pytest.raises(DocumentError) as caught:
        validate_document(doc_type, number, today=TODAY)
    assert caught.value.reason is problem
    assert str(caught.value) == caught.value.message
    assert len(caught.value.message) > 10


@pytest.mark.parametrize(("doc_type", "number", "problem"), INVALID)
def test_messages_never_repeat_the_number(
    doc_type: DocumentType | str, number: str, problem: DocumentProblem
) -> None:
    with pytest.raises(DocumentError) as caught:
        validate_document(doc_type, number, today=TODAY)
    if len(number.strip()) >= 8:
        assert number.strip() not in str(caught.value)
        assert number.strip()[2:-2] not in str(caught.value)


def test_the_table_is_big_enough() -> None:
    assert len(VALID) + len(INVALID) >= 25
    assert {param.values[0] for param in VALID} == set(DocumentType)


def test_document_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="check digit"):
        validate_document("resident_id", wrong_check(STANDARD_EXAMPLE))


def test_the_future_is_judged_against_today() -> None:
    tomorrow = make_resident_id(birth=date(2026, 11, 22))
    with pytest.raises(DocumentError):
        validate_document(RID, tomorrow, today=TODAY)
    assert validate_document(RID, tomorrow, today=date(2026, 11, 22)) == tomorrow
    # Without ``today`` the real clock decides: a 1990 birth is in the past.
    assert validate_document(RID, make_resident_id()) == make_resident_id()


def test_every_province_code_is_accepted() -> None:
    assert len(PROVINCE_CODES) == 34
    for code in PROVINCE_CODES:
        number = make_resident_id(f"{code}0101", date(1985, 5, 5), 1)
        assert validate_document(RID, number, today=TODAY) == number


def test_check_character_matches_the_standard() -> None:
    assert check_character("11010519491231002") == "X"
    assert check_character("44052418800101001") == "4"
    with pytest.raises(ValueError, match="17 digits"):
        check_character("1101051949123100")


def test_birth_date_from_resident_id() -> None:
    assert birth_date_from_resident_id(STANDARD_EXAMPLE) == date(1949, 12, 31)
    assert birth_date_from_resident_id(make_resident_id(birth=date(2000, 2, 29))) == date(
        2000, 2, 29
    )
    assert birth_date_from_resident_id("11010519491231002x") == date(1949, 12, 31)
    with pytest.raises(DocumentError) as caught:
        birth_date_from_resident_id(wrong_check(STANDARD_EXAMPLE))
    assert caught.value.reason is DocumentProblem.BAD_CHECK_DIGIT


def test_make_resident_id() -> None:
    number = make_resident_id("110105", date(1949, 12, 31), 2)
    assert number == STANDARD_EXAMPLE
    assert make_resident_id(sequence=7)[14:17] == "007"
    with pytest.raises(ValueError, match="6 digits"):
        make_resident_id("1101")
    with pytest.raises(ValueError, match="0-999"):
        make_resident_id(sequence=1000)
    # Region and date are not judged, so a test can build a number that fails only on them.
    with pytest.raises(DocumentError) as caught:
        validate_document(RID, make_resident_id("990000"), today=TODAY)
    assert caught.value.reason is DocumentProblem.BAD_REGION


@pytest.mark.parametrize(
    ("doc_type", "number", "masked"),
    [
        pytest.param(RID, "330106199009011234", "3301**********1234", id="rid-issue-example"),
        pytest.param(RID, STANDARD_EXAMPLE, "1101**********002X", id="rid-x"),
        pytest.param(RID, "11010519491231002x", "1101**********002X", id="rid-lowercase"),
        pytest.param(PASSPORT, "E12345678", "E1*****78", id="passport"),
        pytest.param(PASSPORT, "A1234", "A***4", id="passport-short"),
        pytest.param(PASSPORT, "C01X00T47", "C0*****47", id="passport-foreign"),
        pytest.param(HK_MACAU, "H12345678", "H1*****78", id="hk"),
        pytest.param(HK_MACAU, "M1234567890", "M1*******90", id="macau-old"),
        pytest.param(TAIWAN, "12345678", "12****78", id="taiwan"),
        pytest.param(PERMANENT, "USA123456789012", "US***********12", id="fpr-old"),
        pytest.param(PERMANENT, "933840199001011235", "93**************35", id="fpr-new"),
        pytest.param(PASSPORT, "ab1", "***", id="too-short-to-show"),
    ],
)
def test_mask_document(doc_type: DocumentType, number: str, masked: str) -> None:
    assert mask_document(doc_type, number) == masked


@pytest.mark.parametrize(("doc_type", "number", "normalised"), VALID)
def test_masks_keep_the_length_and_hide_at_least_half(
    doc_type: DocumentType, number: str, normalised: str
) -> None:
    masked = mask_document(doc_type, normalised)
    assert len(masked) == len(normalised)
    assert masked.count("*") * 2 >= len(normalised)
    assert normalised[4:-4] not in masked or len(normalised) < 10


def test_mask_refuses_an_unknown_type() -> None:
    with pytest.raises(DocumentError) as caught:
        mask_document("library_card", "12345678")
    assert caught.value.reason is DocumentProblem.UNKNOWN_TYPE


def test_types_are_accepted_as_strings() -> None:
    assert validate_document("passport", "e12345678") == "E12345678"
    assert mask_document("resident_id", STANDARD_EXAMPLE) == "1101**********002X"


@pytest.mark.parametrize(
    ("name", "masked"),
    [
        ("王小明", "王*明"),
        ("李华", "李*"),
        ("欧阳娜娜", "欧**娜"),
        ("  张三  ", "张*"),
        ("赵", "*"),
        ("", "*"),
        ("Alice Wong", "A********g"),
    ],
)
def test_mask_name_keeps_the_ends_of_a_name(name: str, masked: str) -> None:
    assert mask_name(name) == masked
