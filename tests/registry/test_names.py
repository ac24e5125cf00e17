from __future__ import annotations

import pytest

from registry.errors import InvalidName, InvalidReference
from registry.names import ModelRef, check_alias, check_model_name, parse_ref


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("credit-risk", ModelRef("credit-risk")),
        ("credit-risk:3", ModelRef("credit-risk", version=3)),
        ("credit-risk@production", ModelRef("credit-risk", alias="production")),
        ("credit-risk@latest", ModelRef("credit-risk", alias="latest")),
        ("m.v2_x", ModelRef("m.v2_x")),
    ],
)
def test_references_parse(text: str, expected: ModelRef) -> None:
    assert parse_ref(text) == expected
    assert str(parse_ref(text)) == text


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("../x", "not allowed"),
        ("", "empty"),
        ("x" * 65, "65 characters"),
        ("a..b", "not allowed"),
        ("Upper", "not allowed"),
        ("-lead", "not allowed"),
        ("trail.", "not allowed"),
        ("with space", "not allowed"),
        ("a/b", "not allowed"),
    ],
)
def test_bad_model_names_are_refused_with_the_rule(name: str, fragment: str) -> None:
    with pytest.raises(InvalidName, match=fragment) as caught:
        check_model_name(name)
    assert "lowercase letters" in str(caught.value)
    assert caught.value.status_code == 400


@pytest.mark.parametrize(
    ("alias", "fragment"),
    [
        ("latest", "reserved"),
        ("v3", "reads like a version"),
        ("", "empty"),
        ("Prod", "not allowed"),
        ("prod/x", "not allowed"),
        ("a" * 65, "65 characters"),
        ("3rd", "not allowed"),
    ],
)
def test_bad_aliases_are_refused(alias: str, fragment: str) -> None:
    with pytest.raises(InvalidName, match=fragment):
        check_alias(alias)


def test_good_aliases_pass() -> None:
    for alias in ("production", "staging", "champion-2", "shadow_a"):
        assert check_alias(alias) == alias


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("m:0", "not a positive integer"),
        ("m:x", "not a positive integer"),
        ("m:", "not a positive integer"),
        ("m:1@prod", "both a version and an alias"),
        ("  ", "empty"),
        ("m@v2", "reads like a version"),
    ],
)
def test_bad_references(text: str, fragment: str) -> None:
    with pytest.raises((InvalidReference, InvalidName), match=fragment):
        parse_ref(text)
