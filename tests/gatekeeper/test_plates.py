"""Plate normalisation."""

import pytest

from gatekeeper.plates import normalise_plate


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
