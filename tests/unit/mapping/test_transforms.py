"""Unit tests for syncd.mapping.transforms: every documented edge case, plus properties."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from syncd.errors import TransformError
from syncd.mapping.transforms import (
    TRANSFORMS,
    TransformArgsError,
    TransformContext,
    TransformDef,
    build_transform,
    chain,
)
from syncd.model import JsonArray

SECRETS = {("env", "SYNCD_SALT"): "pepper", ("env", "OTHER_SALT"): "salt",
           ("file", "/etc/syncd/salt"): "from-a-file", ("env", "EMPTY"): ""}


def _secret(kind: str, name: str) -> str:
    return SECRETS[(kind, name)]


CTX = TransformContext(secret=_secret, source_timezone=ZoneInfo("Asia/Shanghai"))
SHANGHAI = ZoneInfo("Asia/Shanghai")


def make(name: str, args: Any = None, ctx: TransformContext = CTX) -> Any:
    return build_transform(name, {} if args is None else args, ctx)


def refuses(func: Any, value: Any, *fragments: str) -> str:
    """Assert func(value) raises TransformError whose reason holds every fragment."""
    with pytest.raises(TransformError) as caught:
        func(value)
    for fragment in fragments:
        assert fragment in caught.value.reason
    return caught.value.reason


def longest_digit_run(text: str) -> int:
    return max((len(run) for run in re.findall("[0-9]+", text)), default=0)


VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True),
    st.decimals(allow_nan=True, allow_infinity=True), st.text(max_size=20),
    st.binary(max_size=4), st.sampled_from(["1", "0", "是", "否", "４２", " 7 ", "4.0", "yes"]),
)


# --------------------------------------------------------------------------- registry


class TestRegistry:
    def test_every_transform_is_described(self) -> None:
        """Each registry entry is a TransformDef with a one-line summary and a known output."""
        kinds = {"any", "text", "int", "decimal", "bool", "date", "datetime", "bytes", "json"}
        for name, definition in TRANSFORMS.items():
            assert isinstance(definition, TransformDef)
            assert definition.name == name
            assert definition.summary and "\n" not in definition.summary
            assert definition.output in kinds
            assert set(definition.required) <= set(definition.params)

    def test_the_documented_transforms_exist(self) -> None:
        """The transforms docs/mappings.md documents are all registered, and nothing else."""
        assert set(TRANSFORMS) == {
            "strip", "lower", "upper", "null_if_empty", "parse_amount", "fen_to_yuan",
            "yuan_to_fen", "mask_phone", "mask", "hash", "to_bool", "to_int", "to_decimal",
            "timezone", "parse_date", "date_format", "coalesce", "concat", "json_get",
        }

    def test_only_coalesce_and_concat_take_several_columns(self) -> None:
        """multi_input marks exactly the combining transforms."""
        assert {n for n, d in TRANSFORMS.items() if d.multi_input} == {"coalesce", "concat"}

    def test_primary_arguments(self) -> None:
        """The first parameter is the one the `{name: scalar}` shorthand fills."""
        primary = {n: d.params[0] for n, d in TRANSFORMS.items() if d.params}
        assert primary == {
            "parse_amount": "scale", "to_decimal": "scale", "mask": "keep_first",
            "hash": "salt_env", "timezone": "from", "parse_date": "format",
            "date_format": "format", "coalesce": "skip_empty", "concat": "sep", "json_get": "path",
        }

    def test_unknown_name_suggests_the_closest(self) -> None:
        """A misspelt transform name gets a did-you-mean."""
        with pytest.raises(TransformArgsError, match="unknown transform 'pars_amount'; did you "
                           "mean 'parse_amount'"):
            make("pars_amount")

    def test_unknown_name_is_matched_loosely(self) -> None:
        """Case and dashes do not stop the suggestion; 'trim' suggests 'strip'."""
        with pytest.raises(TransformArgsError, match="did you mean 'mask_phone'"):
            make("Mask-Phone")
        with pytest.raises(TransformArgsError, match="did you mean 'strip'"):
            make("trim")

    def test_unknown_name_without_a_close_match_lists_all(self) -> None:
        """Nothing close: the message lists the known transforms."""
        with pytest.raises(TransformArgsError, match="known transforms: coalesce, concat"):
            make("zzzzzzzz")

    def test_name_that_is_not_text(self) -> None:
        """A YAML number or list as a name is an unknown transform, not a crash."""
        with pytest.raises(TransformArgsError, match="unknown transform 42"):
            make(42)  # type: ignore[arg-type]

    @given(st.sampled_from(sorted(n for n in TRANSFORMS if len(n) >= 5)), st.data())
    def test_any_one_letter_typo_gets_a_suggestion(self, name: str, data: st.DataObject) -> None:
        """Dropping any one letter of a known name still gives a did-you-mean to a known name."""
        index = data.draw(st.integers(0, len(name) - 1))
        typo = name[:index] + name[index + 1:]
        assume(typo not in TRANSFORMS)
        with pytest.raises(TransformArgsError) as caught:
            make(typo)
        suggested = re.search(r"did you mean '([a-z_]+)'", str(caught.value))
        assert suggested and suggested.group(1) in TRANSFORMS

    def test_unknown_argument_names_the_accepted_ones(self) -> None:
        """A misspelt argument says which one, suggests, and lists what is accepted."""
        with pytest.raises(TransformArgsError) as caught:
            make("mask", {"keep_frist": 1})
        message = str(caught.value)
        assert "'keep_frist'" in message and "did you mean 'keep_first'" in message
        assert "keep_first, keep_last, char" in message

    def test_arguments_to_a_transform_that_takes_none(self) -> None:
        """`{strip: 1}` (passed as {'': 1} or as a named argument) is refused."""
        with pytest.raises(TransformArgsError, match="'strip' takes no arguments"):
            make("strip", {"": 1})
        with pytest.raises(TransformArgsError, match="'lower' takes no arguments"):
            make("lower", 3)

    def test_missing_required_argument(self) -> None:
        """A required argument left out is named."""
        with pytest.raises(TransformArgsError, match="'parse_date' needs argument 'format'"):
            make("parse_date")

    def test_bad_argument_value(self) -> None:
        """An argument of the wrong type names the transform, the argument and the rule."""
        with pytest.raises(TransformArgsError, match="'scale': must be a whole number"):
            make("parse_amount", {"scale": "2"})
        with pytest.raises(TransformArgsError, match="'skip_null': must be true or false"):
            make("concat", {"skip_null": "no"})

    def test_scalar_shorthand_fills_the_primary_argument(self) -> None:
        """A non-dict args value is the primary argument, like `{json_get: $.a}`."""
        assert make("json_get", "$.a")('{"a": 1}') == 1
        assert make("json_get", {"path": "$.a"})('{"a": 1}') == 1

    def test_none_args_mean_no_arguments(self) -> None:
        """`{strip: }` (YAML null) is the same as the bare name."""
        assert make("strip", None)(" x ") == "x"

    def test_arg_errors_are_value_errors(self) -> None:
        """TransformArgsError is a ValueError (configuration mistake, not a row problem)."""
        assert issubclass(TransformArgsError, ValueError)


class TestChain:
    def test_left_to_right(self) -> None:
        """chain([f, g])(x) == g(f(x))."""
        run = chain([make("strip"), make("parse_amount")])
        assert run("  ¥12.50 ") == Decimal("12.50")

    def test_empty_chain_is_identity(self) -> None:
        """No steps: the value comes back unchanged."""
        assert chain([])("x") == "x"

    def test_errors_propagate(self) -> None:
        """The first step that fails stops the chain with its TransformError."""
        refuses(chain([make("strip"), make("to_int")]), " 4.5 ", "to_int", "'4.5'")

    def test_recommended_normalise_then_hash(self) -> None:
        """[strip, lower, hash] gives one pseudonym for differently written e-mail addresses."""
        run = chain([make("strip"), make("lower"), make("hash", {"salt_env": "SYNCD_SALT"})])
        assert run(" Li.Lei@Example.COM ") == run("li.lei@example.com")


class TestErrorReasons:
    def test_reason_names_the_transform_and_shows_the_value(self) -> None:
        """A reason reads 'transform: problem: value'."""
        assert refuses(make("to_int"), "abc") == "to_int: not a number: 'abc'"

    def test_long_values_are_truncated(self) -> None:
        """The value shown is cut to 60 characters with '...'."""
        reason = refuses(make("parse_amount"), "x" * 500)
        shown = reason.split(": ", 2)[2]
        assert len(shown) == 60 and shown.endswith("...")

    def test_transform_error_carries_no_column(self) -> None:
        """The column is added by the caller (the mapping), not by the transform."""
        with pytest.raises(TransformError) as caught:
            make("to_int")("x")
        assert caught.value.column is None


# --------------------------------------------------------------------------- text


class TestStrip:
    def test_spaces_tabs_newlines(self) -> None:
        """Ordinary whitespace goes at both ends, inner whitespace stays."""
        assert make("strip")(" \t a b \n") == "a b"

    def test_full_width_and_invisible(self) -> None:
        """Full-width space U+3000, NBSP, zero-width space and BOM are stripped too."""
        assert make("strip")("\u3000\ufeff张三\u200b\u00a0") == "张三"

    def test_blank_becomes_empty(self) -> None:
        """Whitespace only -> '' (use null_if_empty to get NULL)."""
        assert make("strip")("  ") == ""

    def test_none(self) -> None:
        """NULL stays NULL."""
        assert make("strip")(None) is None

    @pytest.mark.parametrize("value", [5, Decimal("1"), b" x ", True])
    def test_non_text_refused(self, value: Any) -> None:
        """Numbers and bytes are not text."""
        refuses(make("strip"), value, "strip: expected text")


class TestLowerUpper:
    def test_lower(self) -> None:
        """Unicode lower-casing; Chinese is unchanged."""
        assert make("lower")("AbC 张三") == "abc 张三"

    def test_upper(self) -> None:
        """Unicode upper-casing, including ß -> SS."""
        assert make("upper")("straße") == "STRASSE"

    def test_full_width_stays_full_width(self) -> None:
        """No NFKC: full-width letters change case but stay full width."""
        assert make("lower")("ＡＢ") == "ａｂ"

    def test_none(self) -> None:
        """NULL stays NULL."""
        assert make("lower")(None) is None and make("upper")(None) is None

    @pytest.mark.parametrize("name", ["lower", "upper"])
    def test_non_text_refused(self, name: str) -> None:
        """An int is not text."""
        refuses(make(name), 42, f"{name}: expected text, got int")


class TestNullIfEmpty:
    @pytest.mark.parametrize("value", ["", " ", "\t\n", "\u3000", "\u200b"])
    def test_blank_becomes_null(self, value: str) -> None:
        """Empty and whitespace-only text (incl. full-width/zero-width space) -> NULL."""
        assert make("null_if_empty")(value) is None

    def test_text_is_unchanged(self) -> None:
        """Non-blank text comes back as is, not stripped."""
        assert make("null_if_empty")(" a ") == " a "

    @pytest.mark.parametrize("value", [0, Decimal("0"), False, b"", None])
    def test_non_text_passes(self, value: Any) -> None:
        """Only text can be blank: 0, False and b'' pass through."""
        assert make("null_if_empty")(value) == value


# --------------------------------------------------------------------------- money


class TestParseAmount:
    @pytest.mark.parametrize(("text", "expected"), [
        ("100元", "100"),
        ("¥1,299.50", "1299.50"),
        ("￥1,299.50", "1299.50"),
        (" 88.8 元 ", "88.8"),
        ("１００元", "100"),
        ("１，２９９．５０元", "1299.50"),
        ("-5.5", "-5.5"),
        ("RMB 12", "12"),
        ("rmb12", "12"),
        ("CNY 3.00", "3.00"),
        ("12 RMB", "12"),
        ("5圆", "5"),
        ("-¥5", "-5"),
        ("¥-5", "-5"),
        ("+7", "7"),
        ("−3", "-3"),
        ("－3元", "-3"),
        (".5元", "0.5"),
        ("¥12元", "12"),
        ("1,234,567.891", "1234567.891"),
        ("0", "0"),
    ])
    def test_accepted_text(self, text: str, expected: str) -> None:
        """Money text in 元, with currency marks, thousands separators and full-width forms."""
        result = make("parse_amount")(text)
        assert isinstance(result, Decimal)
        assert str(result) == expected

    def test_int_and_decimal(self) -> None:
        """Numbers are taken as they are (Decimal keeps its places)."""
        assert make("parse_amount")(12) == Decimal(12)
        assert str(make("parse_amount")(Decimal("1.10"))) == "1.10"

    @pytest.mark.parametrize("text", [
        "", "   ", "abc", "1.2.3", "12万", "1,2345", "12,5", "1,23", "1e3", "NaN", "Infinity",
        "$12", "12 USD", "--5", "-¥-5", "12.", "5角", "(5)", "1 000", "¥", "元",
    ])
    def test_refused_text(self, text: str) -> None:
        """Not an amount in 元: empty, words, two dots, 万, odd separators, other currencies."""
        refuses(make("parse_amount"), text, "parse_amount")

    def test_float_refused(self) -> None:
        """A float is never exact money."""
        refuses(make("parse_amount"), 1.5, "float input is not exact")

    def test_bool_refused(self) -> None:
        """True is not 1 元."""
        refuses(make("parse_amount"), True, "boolean")

    @pytest.mark.parametrize("value", [Decimal("NaN"), Decimal("Infinity"), Decimal("sNaN")])
    def test_non_finite_decimal_refused(self, value: Decimal) -> None:
        """NaN and infinity are not amounts."""
        refuses(make("parse_amount"), value, "not a finite number")

    def test_none(self) -> None:
        """NULL stays NULL."""
        assert make("parse_amount")(None) is None

    def test_scale_rounds_half_up(self) -> None:
        """scale quantizes with ROUND_HALF_UP (2.345 -> 2.35, -2.345 -> -2.35)."""
        rounded = make("parse_amount", {"scale": 2})
        assert str(rounded("2.345元")) == "2.35"
        assert str(rounded("-2.345")) == "-2.35"
        assert str(rounded("7")) == "7.00"
        assert str(make("parse_amount", 0)("2.5")) == "3"

    def test_scale_argument_checked(self) -> None:
        """scale must be a whole number 0..30."""
        for bad in (-1, 31, 1.5, True):
            with pytest.raises(TransformArgsError, match="scale"):
                make("parse_amount", {"scale": bad})

    @given(st.text(max_size=12))
    def test_never_returns_float(self, text: str) -> None:
        """Whatever the text, the result is a Decimal or a TransformError, never a float."""
        try:
            result = make("parse_amount")(text)
        except TransformError:
            return
        assert isinstance(result, Decimal)

    @given(st.decimals(places=2, min_value=-10**12, max_value=10**12,
                       allow_nan=False, allow_infinity=False))
    def test_round_trips_yuan_text(self, amount: Decimal) -> None:
        """parse_amount(str(d) + '元') == d, keeping the written places, for <= 2 places."""
        result = make("parse_amount")(f"{amount}元")
        assert result == amount and str(result) == str(amount)

    @given(st.integers(0, 10**9), st.integers(0, 99))
    def test_full_width_equals_ascii(self, whole: int, cents: int) -> None:
        """A full-width rendering parses to the same amount as the ASCII one."""
        ascii_text = f"{whole:,}.{cents:02d}元"
        wide = ascii_text.translate({c: c + 0xFEE0 for c in range(0x21, 0x7F)})
        assert make("parse_amount")(wide) == make("parse_amount")(ascii_text)


class TestFenToYuan:
    @pytest.mark.parametrize(("fen", "yuan"), [
        (12345, "123.45"), (100, "1.00"), (0, "0.00"), (-5, "-0.05"), (1, "0.01"),
        ("12345", "123.45"), ("１００", "1.00"), (Decimal("250"), "2.50"),
        (Decimal("250.00"), "2.50"), ("7.0", "0.07"),
    ])
    def test_accepted(self, fen: Any, yuan: str) -> None:
        """Whole 分 as int, text or Decimal -> Decimal yuan with exactly 2 places."""
        result = make("fen_to_yuan")(fen)
        assert isinstance(result, Decimal) and str(result) == yuan

    @pytest.mark.parametrize(("value", "fragment"), [
        (True, "boolean"), (12.0, "float input is not exact"), ("12.5", "not a whole number"),
        (Decimal("0.5"), "not a whole number"), ("12元", "not a number"), ("", "not a number"),
        ([1], "expected text"),
    ])
    def test_refused(self, value: Any, fragment: str) -> None:
        """Booleans, floats, fractions of a 分 and unit text are refused."""
        refuses(make("fen_to_yuan"), value, "fen_to_yuan", fragment)

    def test_none(self) -> None:
        """NULL stays NULL."""
        assert make("fen_to_yuan")(None) is None

    def test_huge_values_are_exact(self) -> None:
        """No precision limit: 30-digit amounts come out exact."""
        assert str(make("fen_to_yuan")(10**30 + 1)) == "1" + "0" * 28 + ".01"

    @given(st.integers())
    def test_round_trip_through_yuan(self, fen: int) -> None:
        """yuan_to_fen(fen_to_yuan(n)) == n for every int."""
        assert make("yuan_to_fen")(make("fen_to_yuan")(fen)) == fen


class TestYuanToFen:
    @pytest.mark.parametrize(("yuan", "fen"), [
        (Decimal("123.45"), 12345), ("123.45", 12345), (5, 500), ("1,299.50元", 129950),
        ("¥0.01", 1), ("-0.05", -5), (Decimal("1.230"), 123), (Decimal("1E+2"), 10000),
        ("１２．３０元", 1230),
    ])
    def test_accepted(self, yuan: Any, fen: int) -> None:
        """Anything parse_amount reads -> int 分, exactly; trailing zero places are fine."""
        result = make("yuan_to_fen")(yuan)
        assert type(result) is int and result == fen

    @pytest.mark.parametrize("value", ["1.235", Decimal("0.001"), "12.999元"])
    def test_fraction_of_a_fen_refused(self, value: Any) -> None:
        """More than 2 non-zero decimal places is an error, never rounded."""
        refuses(make("yuan_to_fen"), value, "more than 2 decimal places")

    def test_float_refused(self) -> None:
        """Floats are refused, even 1.5."""
        refuses(make("yuan_to_fen"), 1.5, "float input is not exact")

    def test_bool_and_junk_refused(self) -> None:
        """True and words are not money."""
        refuses(make("yuan_to_fen"), True, "boolean")
        refuses(make("yuan_to_fen"), "abc", "not an amount")

    def test_none(self) -> None:
        """NULL stays NULL."""
        assert make("yuan_to_fen")(None) is None

    @given(st.decimals(places=2, allow_nan=False, allow_infinity=False))
    def test_round_trip_through_fen(self, yuan: Decimal) -> None:
        """fen_to_yuan(yuan_to_fen(d)) == d for any amount with at most 2 places."""
        assert make("fen_to_yuan")(make("yuan_to_fen")(yuan)) == yuan


# --------------------------------------------------------------------------- masking


class TestMaskPhone:
    @pytest.mark.parametrize("value", [
        "13812345678", "+86 138-1234-5678", "+8613812345678", "0086 138 1234 5678",
        "86-13812345678", " 138 1234 5678 ", 13812345678, "１３８１２３４５６７８",
        "+86\u300013812345678",
    ])
    def test_mobile(self, value: Any) -> None:
        """Mainland mobiles in any usual writing -> first 3 + **** + last 4."""
        assert make("mask_phone")(value) == "138****5678"

    @pytest.mark.parametrize(("value", "expected"), [
        ("010-88881234", "01********34"),
        ("12812345678", "12*******78"),
        ("+1 415 555 0100", "*1*4*********00"),
        ("12345", "12*45"),
        ("138123456789", "13********89"),
        ("tel:13812345678", "****13*******78"),
    ])
    def test_other_numbers(self, value: str, expected: str) -> None:
        """Not a mobile: only the first 2 and last 2 digits survive; all else is '*'."""
        assert make("mask_phone")(value) == expected

    @pytest.mark.parametrize(("value", "expected"), [
        ("1234", "****"), ("", ""), ("n/a", "***"), ("  ", "**"), ("12-34", "*****"),
    ])
    def test_fewer_than_five_digits(self, value: str, expected: str) -> None:
        """Fewer than 5 digits: every character is masked, length kept."""
        assert make("mask_phone")(value) == expected

    def test_none(self) -> None:
        """NULL stays NULL."""
        assert make("mask_phone")(None) is None

    @pytest.mark.parametrize("value", [True, 1.5, b"13812345678", Decimal("13812345678")])
    def test_non_text_refused(self, value: Any) -> None:
        """Only text and ints are phone numbers."""
        refuses(make("mask_phone"), value, "mask_phone")

    @given(st.text(alphabet=st.sampled_from("0123456789 -+()１２３"), max_size=24)
           | st.text(max_size=24) | st.integers(min_value=0).map(str))
    def test_never_leaks_a_full_number(self, value: str) -> None:
        """With >= 5 digits, the output keeps fewer digits than the input, never the whole
        digit string, and never more than 4 digits in a row."""
        digits = re.sub("[^0-9]", "", unicodedata.normalize("NFKC", value))
        assume(len(digits) >= 5)
        masked = make("mask_phone")(value)
        kept = re.sub("[^0-9]", "", masked)
        assert len(kept) < len(digits)
        assert digits not in masked and digits not in kept
        assert longest_digit_run(masked) <= 4

    @given(st.from_regex(r"(\+86|0086|86)?[ -]?1[3-9][0-9]{9}", fullmatch=True))
    def test_every_mobile_is_masked_the_same_way(self, value: str) -> None:
        """Any mobile: 3 + 4 digits shown, the middle 4 always hidden."""
        number = re.sub("[^0-9]", "", value)[-11:]
        assert make("mask_phone")(value) == number[:3] + "****" + number[-4:]


class TestMask:
    @pytest.mark.parametrize(("args", "value", "expected"), [
        ({}, "secret", "******"),
        ({"keep_first": 1}, "张三丰", "张**"),
        ({"keep_last": 4}, "6222020200112233", "************2233"),
        ({"keep_first": 3, "keep_last": 4}, "13812345678", "138****5678"),
        ({"keep_first": 1, "char": "#"}, "abc", "a##"),
        ({"keep_first": 1, "keep_last": 1}, "abc", "a*c"),
        (2, "abcdef", "ab****"),
    ])
    def test_keeps_the_ends(self, args: Any, value: str, expected: str) -> None:
        """keep_first / keep_last characters stay, the rest becomes `char`."""
        assert make("mask", args)(value) == expected

    @pytest.mark.parametrize(("args", "value"), [
        ({"keep_first": 2, "keep_last": 2}, "abc"),
        ({"keep_first": 2, "keep_last": 2}, "abcd"),
        ({"keep_first": 5}, "abc"),
        ({"keep_last": 3}, "abc"),
    ])
    def test_nothing_left_to_hide_masks_everything(self, args: Any, value: str) -> None:
        """When the kept ends would cover the whole value, all of it is masked instead."""
        assert make("mask", args)(value) == "*" * len(value)

    def test_empty_and_none(self) -> None:
        """'' stays '', NULL stays NULL."""
        assert make("mask")("") == ""
        assert make("mask")(None) is None

    def test_int_is_masked_as_text(self) -> None:
        """An int is masked as its decimal digits."""
        assert make("mask", {"keep_last": 2})(123456) == "****56"

    @pytest.mark.parametrize("value", [True, 1.5, b"abc", Decimal("1")])
    def test_other_types_refused(self, value: Any) -> None:
        """Only text and ints are masked."""
        refuses(make("mask"), value, "mask: expected text")

    @pytest.mark.parametrize("args", [{"char": ""}, {"char": "**"}, {"keep_first": -1},
                                      {"keep_last": "2"}, {"keep_first": True}])
    def test_bad_arguments(self, args: dict[str, Any]) -> None:
        """char is one character; keep_* are whole numbers >= 0."""
        with pytest.raises(TransformArgsError):
            make("mask", args)

    @given(st.text(min_size=1, max_size=30), st.integers(0, 40), st.integers(0, 40),
           st.characters(codec="utf-8"))
    def test_never_returns_an_unmasked_value(self, value: str, first: int, last: int,
                                             char: str) -> None:
        """Non-empty input: same length, at least one position replaced by `char`,
        and every other position is the original character."""
        masked = make("mask", {"keep_first": first, "keep_last": last, "char": char})(value)
        assert len(masked) == len(value)
        hidden = len(value) - first - last
        kept = (set(range(first)) | set(range(len(value) - last, len(value)))) if hidden > 0 \
            else set()
        assert len(kept) < len(value)
        for index, original in enumerate(value):
            assert masked[index] == (original if index in kept else char)


class TestHash:
    def digest(self, salt: str, text: str) -> str:
        return hashlib.sha256((salt + text).encode("utf-8")).hexdigest()

    def test_salt_from_env(self) -> None:
        """Output is sha256(salt + value) in hex, the salt read through ctx.secret('env', ...)."""
        assert make("hash", {"salt_env": "SYNCD_SALT"})("13812345678") == \
            self.digest("pepper", "13812345678")

    def test_salt_from_file(self) -> None:
        """salt_file reads through ctx.secret('file', path)."""
        hashed = make("hash", {"salt_file": "/etc/syncd/salt"})
        assert hashed("x") == self.digest("from-a-file", "x")

    def test_shorthand_is_salt_env(self) -> None:
        """`{hash: SYNCD_SALT}` names the environment variable."""
        assert make("hash", "SYNCD_SALT")("x") == self.digest("pepper", "x")

    def test_length_truncates(self) -> None:
        """length keeps the first N hex characters."""
        assert make("hash", {"salt_env": "SYNCD_SALT", "length": 16})("x") == \
            self.digest("pepper", "x")[:16]

    @pytest.mark.parametrize(("value", "text"), [
        (42, "42"), (Decimal("1.50"), "1.50"), (b"abc", "abc"), ("张三", "张三"),
    ])
    def test_value_as_text(self, value: Any, text: str) -> None:
        """ints and Decimals hash as their text, bytes as themselves (= their UTF-8 text)."""
        assert make("hash", "SYNCD_SALT")(value) == self.digest("pepper", text)

    def test_int_and_its_text_hash_alike(self) -> None:
        """A phone stored as BIGINT in one system and as text in another joins."""
        hashed = make("hash", "SYNCD_SALT")
        assert hashed(13812345678) == hashed("13812345678")

    @pytest.mark.parametrize("value", [True, 1.5, datetime(2024, 1, 1), ["a"]])
    def test_other_types_refused(self, value: Any) -> None:
        """bool, float, dates and lists are not hashed (no ambiguous text form)."""
        refuses(make("hash", "SYNCD_SALT"), value, "hash: cannot hash")

    def test_none(self) -> None:
        """NULL stays NULL (it is not hashed into a common pseudonym)."""
        assert make("hash", "SYNCD_SALT")(None) is None

    @pytest.mark.parametrize("args", [{}, {"salt_env": "SYNCD_SALT", "salt_file": "/x"},
                                      {"length": 8}])
    def test_exactly_one_salt_source(self, args: dict[str, Any]) -> None:
        """Neither or both of salt_env/salt_file is an argument error."""
        with pytest.raises(TransformArgsError, match="exactly one of salt_env"):
            make("hash", args)

    def test_missing_secret(self) -> None:
        """A salt that cannot be read is reported at build time, without any secret value."""
        with pytest.raises(TransformArgsError, match="cannot read the salt from env 'NOPE'"):
            make("hash", {"salt_env": "NOPE"})

    @pytest.mark.parametrize("error", [OSError("Permission denied"),
                                       TransformArgsError("environment variable X is not set")])
    def test_secret_reader_errors_name_the_transform(self, error: Exception) -> None:
        """Errors of the secret reader become argument errors that name 'hash' and the cause."""
        def failing(_kind: str, _name: str) -> str:
            raise error

        ctx = TransformContext(secret=failing, source_timezone=UTC)
        with pytest.raises(TransformArgsError, match=f"transform 'hash'.*{error}"):
            make("hash", {"salt_file": "/etc/syncd/salt"}, ctx)

    def test_empty_salt_refused(self) -> None:
        """An empty salt would make the pseudonyms a plain, guessable SHA-256."""
        with pytest.raises(TransformArgsError, match="is empty"):
            make("hash", {"salt_env": "EMPTY"})

    def test_salt_not_in_messages(self) -> None:
        """Neither the salt nor its value appear in a value's error reason."""
        assert "pepper" not in refuses(make("hash", "SYNCD_SALT"), 1.5)

    @pytest.mark.parametrize("length", [7, 65, "16", 0])
    def test_bad_length(self, length: Any) -> None:
        """length is a whole number from 8 to 64."""
        with pytest.raises(TransformArgsError, match="length"):
            make("hash", {"salt_env": "SYNCD_SALT", "length": length})

    @given(st.text(max_size=30))
    def test_deterministic(self, value: str) -> None:
        """Same value and salt -> same pseudonym, also from a separately built transform."""
        assert make("hash", "SYNCD_SALT")(value) == make("hash", "SYNCD_SALT")(value)

    @given(st.text(max_size=30), st.text(min_size=1, max_size=10), st.text(min_size=1, max_size=10))
    def test_salt_sensitive(self, value: str, salt_a: str, salt_b: str) -> None:
        """Different salts -> different pseudonyms for the same value."""
        assume(salt_a != salt_b)

        def built(salt: str) -> Any:
            ctx = TransformContext(secret=lambda _k, _n: salt, source_timezone=UTC)
            return make("hash", "ANY", ctx)

        assert built(salt_a)(value) != built(salt_b)(value)


# --------------------------------------------------------------------------- types


class TestToBool:
    @pytest.mark.parametrize("value", [1, "1", True, "true", "TRUE", "yes", "Y", "t", "是",
                                       " yes ", "１", Decimal("1"), Decimal("1.0"), b"\x01"])
    def test_true(self, value: Any) -> None:
        """The documented true spellings, case-insensitive, trimmed, full-width too."""
        assert make("to_bool")(value) is True

    @pytest.mark.parametrize("value", [0, "0", False, "false", "False", "no", "N", "f", "否",
                                       Decimal("0"), b"\x00"])
    def test_false(self, value: Any) -> None:
        """The documented false spellings."""
        assert make("to_bool")(value) is False

    @pytest.mark.parametrize("value", [2, -1, "2", "", "maybe", "on", "off", "真", 1.0, 0.0,
                                       Decimal("0.5"), Decimal("NaN"), Decimal("sNaN"), b"1",
                                       "yes please"])
    def test_refused(self, value: Any) -> None:
        """Anything else is an error, including floats, 2 and the empty string."""
        refuses(make("to_bool"), value, "to_bool: not a yes/no value")

    def test_none(self) -> None:
        """NULL stays NULL, it does not become false."""
        assert make("to_bool")(None) is None

    @given(VALUES)
    def test_only_bool_or_none(self, value: Any) -> None:
        """The result is a bool, None, or a TransformError; never a float or an int."""
        try:
            result = make("to_bool")(value)
        except TransformError:
            return
        assert result is None or type(result) is bool


class TestToInt:
    @pytest.mark.parametrize(("value", "expected"), [
        (42, 42), ("42", 42), (" 42 ", 42), ("４２", 42), ("-7", -7), ("+7", 7),
        (Decimal("42"), 42), (Decimal("42.00"), 42), ("4.0", 4), (Decimal("1E+3"), 1000),
        ("007", 7), (10**40, 10**40),
    ])
    def test_accepted(self, value: Any, expected: int) -> None:
        """Whole numbers as int, Decimal or text (full-width too) -> int."""
        result = make("to_int")(value)
        assert type(result) is int and result == expected

    @pytest.mark.parametrize(("value", "fragment"), [
        ("4.5", "not a whole number"), (Decimal("4.5"), "not a whole number"),
        (True, "boolean"), (4.0, "float input is not exact"), ("", "not a number"),
        ("1,000", "not a number"), ("1e3", "not a number"), ("abc", "not a number"),
        (Decimal("Infinity"), "not a finite number"), (b"4", "expected text"),
    ])
    def test_refused(self, value: Any, fragment: str) -> None:
        """Fractions, booleans, floats (even 4.0), separators and exponents are refused."""
        refuses(make("to_int"), value, "to_int", fragment)

    def test_none(self) -> None:
        """NULL stays NULL."""
        assert make("to_int")(None) is None

    @given(VALUES)
    def test_only_int_or_none(self, value: Any) -> None:
        """The result is an int (not bool), None, or a TransformError; never a float."""
        try:
            result = make("to_int")(value)
        except TransformError:
            return
        assert result is None or type(result) is int

    @given(st.integers())
    def test_text_round_trip(self, number: int) -> None:
        """to_int(str(n)) == n."""
        assert make("to_int")(str(number)) == number


class TestToDecimal:
    @pytest.mark.parametrize(("value", "expected"), [
        ("12.50", "12.50"), (" -3 ", "-3"), ("１２．５", "12.5"), (7, "7"),
        (Decimal("1.10"), "1.10"), (0.1, "0.1"), (1e20, "1E+20"), (".5", "0.5"),
    ])
    def test_accepted(self, value: Any, expected: str) -> None:
        """Text, int and Decimal are exact; a float goes through its shortest repr."""
        result = make("to_decimal")(value)
        assert isinstance(result, Decimal) and str(result) == expected

    @pytest.mark.parametrize("value", ["", "abc", "1,000", "12元", "1e3", True, float("nan"),
                                       float("inf"), Decimal("NaN"), [1]])
    def test_refused(self, value: Any) -> None:
        """No units, separators, exponents in text, booleans or non-finite numbers."""
        refuses(make("to_decimal"), value, "to_decimal")

    def test_scale(self) -> None:
        """scale quantizes ROUND_HALF_UP; also fixes the long tail of FLOAT columns."""
        assert str(make("to_decimal", {"scale": 2})("1.005")) == "1.01"
        assert str(make("to_decimal", 2)(0.10000000149011612)) == "0.10"
        assert str(make("to_decimal", 3)(5)) == "5.000"

    def test_none(self) -> None:
        """NULL stays NULL."""
        assert make("to_decimal")(None) is None

    @given(st.floats(allow_nan=False, allow_infinity=False))
    def test_floats_convert_via_repr(self, number: float) -> None:
        """A finite float becomes Decimal(repr(x)), which converts back to the same float."""
        result = make("to_decimal")(number)
        assert result == Decimal(repr(number)) and float(result) == number


# --------------------------------------------------------------------------- dates and times


class TestTimezone:
    def test_default_from_is_the_source_timezone(self) -> None:
        """With no `from`, naive values are read in ctx.source_timezone; `to` defaults to UTC."""
        result = make("timezone")(datetime(2024, 1, 1, 8, 0))
        assert result == datetime(2024, 1, 1, 0, 0, tzinfo=UTC)
        assert result.utcoffset() == timedelta(0)

    def test_offset_strings(self) -> None:
        """Fixed offsets '+08:00' and '-0530' work as `from` and `to`."""
        tz = make("timezone", {"from": "+08:00", "to": "-0530"})
        result = tz(datetime(2024, 1, 1, 8, 0))
        assert result.utcoffset() == -timedelta(hours=5, minutes=30)
        assert result == datetime(2024, 1, 1, 0, 0, tzinfo=UTC)

    def test_named_zones(self) -> None:
        """IANA names convert both ways, e.g. New York summer time to Shanghai."""
        tz = make("timezone", {"from": "America/New_York", "to": "Asia/Shanghai"})
        assert tz(datetime(2024, 7, 1, 12, 0)) == datetime(2024, 7, 2, 0, 0, tzinfo=SHANGHAI)

    def test_shorthand_is_from(self) -> None:
        """`{timezone: '+09:00'}` sets `from`."""
        assert make("timezone", "+09:00")(datetime(2024, 1, 1, 9)) == \
            datetime(2024, 1, 1, tzinfo=UTC)

    def test_aware_input_is_converted(self) -> None:
        """An aware value keeps its instant; `from` is not used."""
        aware = datetime(2024, 1, 1, 12, tzinfo=timezone(timedelta(hours=2)))
        assert make("timezone", {"from": "+08:00", "to": "UTC"})(aware) == \
            datetime(2024, 1, 1, 10, tzinfo=UTC)

    def test_skipped_wall_time_refused(self) -> None:
        """A naive time inside a spring-forward gap never happened: error, not a guess."""
        tz = make("timezone", {"from": "America/New_York"})
        refuses(tz, datetime(2024, 3, 10, 2, 30), "does not exist")

    def test_repeated_wall_time_takes_the_first(self) -> None:
        """A naive time in a fall-back hour is read as its first occurrence (summer time)."""
        tz = make("timezone", {"from": "America/New_York"})
        assert tz(datetime(2024, 11, 3, 1, 30)) == datetime(2024, 11, 3, 5, 30, tzinfo=UTC)

    @pytest.mark.parametrize("value", ["2024-01-01 00:00:00", date(2024, 1, 1), 0])
    def test_non_datetime_refused(self, value: Any) -> None:
        """Text and plain dates are refused (use parse_date first)."""
        refuses(make("timezone"), value, "timezone: expected a date-time")

    def test_out_of_range(self) -> None:
        """A value that would leave the datetime range is an error."""
        refuses(make("timezone", {"from": "+08:00"}), datetime.min, "range")

    def test_none(self) -> None:
        """NULL stays NULL."""
        assert make("timezone")(None) is None

    @pytest.mark.parametrize(("zone", "fragment"), [
        ("Asia/Shanghia", "did you mean 'Asia/Shanghai'"), ("+25:00", "out of range"),
        (480, "in quotes"), ("", "time zone name"), ("../etc", "unknown time zone"),
    ])
    def test_bad_zone(self, zone: Any, fragment: str) -> None:
        """Unknown names get a suggestion; an unquoted YAML offset (a number) is explained."""
        with pytest.raises(TransformArgsError, match=re.escape(fragment)):
            make("timezone", {"from": zone})

    @given(st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2100, 1, 1)))
    def test_fixed_offset_round_trip(self, naive: datetime) -> None:
        """Shanghai -> UTC -> Shanghai gives back the same wall time."""
        there = make("timezone", {"from": "Asia/Shanghai", "to": "UTC"})(naive)
        back = make("timezone", {"to": "Asia/Shanghai"})(there)
        assert back.replace(tzinfo=None) == naive


class TestParseDate:
    def test_date(self) -> None:
        """kind defaults to date."""
        assert make("parse_date", "%Y-%m-%d")("2024-01-02") == date(2024, 1, 2)

    def test_chinese_format_and_full_width_digits(self) -> None:
        """Value text is NFKC-normalised: full-width digits match %Y/%m/%d."""
        assert make("parse_date", "%Y年%m月%d日")("２０２４年１月２日") == date(2024, 1, 2)

    def test_datetime(self) -> None:
        """kind: datetime returns a naive datetime."""
        parse = make("parse_date", {"format": "%Y/%m/%d %H:%M", "kind": "datetime"})
        assert parse(" 2024/01/02 03:04 ") == datetime(2024, 1, 2, 3, 4)

    def test_offset_in_text_gives_aware(self) -> None:
        """With %z the result is aware."""
        parse = make("parse_date", {"format": "%Y-%m-%dT%H:%M:%S%z", "kind": "datetime"})
        assert parse("2024-01-02T08:00:00+08:00") == datetime(2024, 1, 2, tzinfo=UTC)

    def test_date_drops_the_time(self) -> None:
        """kind: date keeps only the date of a text that also has a time."""
        assert make("parse_date", "%Y-%m-%d %H:%M")("2024-01-02 23:59") == date(2024, 1, 2)

    @pytest.mark.parametrize("value", ["2024-13-01", "2024-02-30", "", "02/01/2024", "2024-01-02x"])
    def test_mismatch_refused(self, value: str) -> None:
        """Impossible dates, empty text and other layouts are refused."""
        refuses(make("parse_date", "%Y-%m-%d"), value, "does not match format '%Y-%m-%d'")

    @pytest.mark.parametrize("value", [date(2024, 1, 1), 20240101, b"2024-01-01"])
    def test_non_text_refused(self, value: Any) -> None:
        """Only text is parsed."""
        refuses(make("parse_date", "%Y-%m-%d"), value, "parse_date: expected text")

    def test_none(self) -> None:
        """NULL stays NULL."""
        assert make("parse_date", "%Y")(None) is None

    @pytest.mark.parametrize(("args", "fragment"), [
        ({"format": "%Q"}, "bad directive"), ({"format": "Y-m-d"}, "must be a format"),
        ({"format": "%Y", "kind": "time"}, "must be one of date, datetime"),
    ])
    def test_bad_arguments(self, args: dict[str, Any], fragment: str) -> None:
        """Formats are checked at build time; kind is date or datetime."""
        with pytest.raises(TransformArgsError, match=fragment):
            make("parse_date", args)

    @given(st.dates())
    def test_round_trip_with_date_format(self, day: date) -> None:
        """date_format then parse_date with the same ISO format gives the date back."""
        text = make("date_format", "%Y-%m-%d")(day)
        assume(len(text.split("-")[0]) == 4)
        assert make("parse_date", "%Y-%m-%d")(text) == day


class TestDateFormat:
    def test_date_and_datetime(self) -> None:
        """Dates and datetimes render with strftime."""
        assert make("date_format", "%Y%m%d")(date(2024, 1, 2)) == "20240102"
        assert make("date_format", "%Y-%m-%d %H:%M")(datetime(2024, 1, 2, 3, 4)) == \
            "2024-01-02 03:04"

    def test_chinese_format(self) -> None:
        """Non-ASCII literals in the format are kept."""
        assert make("date_format", "%Y年%m月%d日")(date(2024, 1, 2)) == "2024年01月02日"

    @pytest.mark.parametrize("value", ["2024-01-02", 20240102])
    def test_non_date_refused(self, value: Any) -> None:
        """Text and numbers are refused."""
        refuses(make("date_format", "%Y"), value, "date_format: expected a date")

    def test_none(self) -> None:
        """NULL stays NULL."""
        assert make("date_format", "%Y")(None) is None

    def test_format_required(self) -> None:
        """format is required and must hold a % directive."""
        with pytest.raises(TransformArgsError, match="needs argument 'format'"):
            make("date_format")
        with pytest.raises(TransformArgsError, match="must be a format"):
            make("date_format", "YYYY")


# --------------------------------------------------------------------------- several columns


class TestCoalesce:
    def test_first_not_null(self) -> None:
        """The first value that is not NULL wins."""
        assert make("coalesce")((None, "b", "c")) == "b"

    def test_empty_text_counts_as_a_value(self) -> None:
        """By default '' is a value (not NULL) and wins."""
        assert make("coalesce")((None, "", "c")) == ""

    def test_skip_empty(self) -> None:
        """skip_empty: true also skips '' and whitespace-only text."""
        assert make("coalesce", {"skip_empty": True})((None, " ", "c")) == "c"
        assert make("coalesce", True)(("", None)) is None

    def test_zero_and_false_are_values(self) -> None:
        """0 and False are not NULL."""
        assert make("coalesce")((None, 0, 5)) == 0
        assert make("coalesce")((False, 1)) is False

    def test_all_null(self) -> None:
        """All NULL -> NULL."""
        assert make("coalesce")((None, None)) is None

    def test_single_value_refused(self) -> None:
        """A lone value (not from several columns) is an error."""
        refuses(make("coalesce"), "a", "needs several source columns")

    @given(st.lists(st.one_of(st.none(), st.integers(), st.text(max_size=3)), max_size=5))
    def test_is_first_non_null(self, values: list[Any]) -> None:
        """Matches the definition: next(v for v in values if v is not None)."""
        expected = next((v for v in values if v is not None), None)
        assert make("coalesce")(tuple(values)) == expected


class TestConcat:
    def test_separator_and_nulls_skipped(self) -> None:
        """Default skip_null: NULLs are left out, no doubled separator."""
        assert make("concat", {"sep": " "})(("张", None, "三")) == "张 三"

    def test_default_separator_is_empty(self) -> None:
        """sep defaults to ''."""
        assert make("concat")(("a", "b")) == "ab"

    def test_keep_nulls_as_empty(self) -> None:
        """skip_null: false keeps positions: NULL becomes ''."""
        assert make("concat", {"sep": ",", "skip_null": False})(("a", None, "c")) == "a,,c"

    def test_empty_text_kept_unless_skip_empty(self) -> None:
        """'' is joined like any text unless skip_empty: true."""
        assert make("concat", " ")(("张", "", "三")) == "张  三"
        assert make("concat", {"sep": " ", "skip_empty": True})(("张", " ", "三")) == "张 三"

    def test_all_null(self) -> None:
        """All NULL -> NULL, whatever skip_null says."""
        assert make("concat", " ")((None, None)) is None
        assert make("concat", {"skip_null": False})((None, None)) is None

    def test_everything_skipped(self) -> None:
        """All values skipped as empty -> NULL."""
        assert make("concat", {"skip_empty": True})(("", " ")) is None

    def test_values_as_text(self) -> None:
        """Numbers, Decimals, dates use str(); bytes are decoded as UTF-8."""
        values = (1, Decimal("2.50"), date(2024, 1, 2), b"\xe5\xbc\xa0", True)
        assert make("concat", "|")(values) == "1|2.50|2024-01-02|张|True"

    def test_bad_bytes_refused(self) -> None:
        """Bytes that are not UTF-8 are an error."""
        refuses(make("concat"), (b"\xff", "a"), "not UTF-8")

    def test_single_value_refused(self) -> None:
        """A lone value is an error."""
        refuses(make("concat"), "abc", "needs several source columns")

    def test_sep_must_be_text(self) -> None:
        """sep: 1 (a YAML number) is an argument error."""
        with pytest.raises(TransformArgsError, match="'sep': must be text"):
            make("concat", {"sep": 1})

    @given(st.lists(st.one_of(st.none(), st.text(max_size=4)), min_size=1, max_size=5))
    def test_matches_join(self, values: list[Any]) -> None:
        """With defaults: ''.join of the non-NULL values; NULL when all are NULL."""
        kept = [v for v in values if v is not None]
        assert make("concat", "-")(tuple(values)) == ("-".join(kept) if kept else None)


# --------------------------------------------------------------------------- JSON


DOC = '{"a": {"b": [{"c": 1.50}, {"c": "x"}]}, "odd.key": true, "n": null, "s": "张"}'


class TestJsonGet:
    @pytest.mark.parametrize(("path", "expected"), [
        ("$.a.b[0].c", Decimal("1.50")), ("a.b.0.c", Decimal("1.50")), ("$.a.b[1].c", "x"),
        ("$['odd.key']", True), ('$["odd.key"]', True), ("s", "张"), ("$.a.b.1.c", "x"),
    ])
    def test_paths(self, path: str, expected: Any) -> None:
        """`$.a.b[0].c`, `a.b.0.c` and bracketed keys reach the same values."""
        assert make("json_get", path)(DOC) == expected

    def test_numbers_are_exact(self) -> None:
        """JSON decimals become Decimal, never float."""
        result = make("json_get", "$.a.b[0].c")(DOC)
        assert type(result) is Decimal and str(result) == "1.50"

    def test_whole_document_and_subtrees(self) -> None:
        """`$` is the whole document; objects come back as dicts, arrays as `JsonArray`s (lists
        the sink writes as JSON, not as PostgreSQL arrays)."""
        assert make("json_get", "$.a.b[1]")(DOC) == {"c": "x"}
        found = make("json_get", "$")('[1, [2], {"c": [3]}]')
        assert found == [1, [2], {"c": [3]}] and type(found) is JsonArray
        assert type(found[1]) is JsonArray and type(found[2]["c"]) is JsonArray

    @pytest.mark.parametrize("path", ["$.nope", "$.a.b[5]", "$.a.b[0].c.d", "$.s.x", "$.a[0]",
                                      "$.n"])
    def test_missing_is_null(self, path: str) -> None:
        """A missing key, an index past the end or a step into a scalar -> NULL (as is null)."""
        assert make("json_get", path)(DOC) is None

    def test_bytes_and_parsed_input(self) -> None:
        """JSON as bytes, or an already parsed dict/list, works too."""
        assert make("json_get", "a")(b'{"a": 2}') == 2
        assert make("json_get", "$.a[1]")({"a": [0, "y"]}) == "y"

    def test_binlog_style_document(self) -> None:
        """A document decoded from the binlog (bytes keys and strings, floats) is normalised."""
        doc = {b"user": {b"name": b"\xe5\xbc\xa0", b"score": 1.5, b"tags": [b"a"]}}
        assert make("json_get", "$.user.name")(doc) == "张"
        assert make("json_get", "$.user.score")(doc) == Decimal("1.5")
        assert make("json_get", "$.user")(doc) == {"name": "张", "score": Decimal("1.5"),
                                                   "tags": ["a"]}

    @pytest.mark.parametrize("value", ["{", "", "NaN", '{"a": Infinity}', b"\xff", "[" * 100000])
    def test_invalid_json_refused(self, value: Any) -> None:
        """Broken JSON, empty text, NaN/Infinity and absurd nesting are errors."""
        refuses(make("json_get", "$.a"), value, "json_get: invalid JSON")

    @pytest.mark.parametrize("value", [5, Decimal("1"), True])
    def test_other_types_refused(self, value: Any) -> None:
        """A number is not a JSON document."""
        refuses(make("json_get", "$.a"), value, "json_get: expected JSON text")

    def test_none(self) -> None:
        """NULL stays NULL."""
        assert make("json_get", "$.a")(None) is None

    @pytest.mark.parametrize("path", ["", "$..a", "$.a[", "$[-1]", "a..b", "$.a[x]", 5])
    def test_bad_paths(self, path: Any) -> None:
        """Paths are checked at build time."""
        with pytest.raises(TransformArgsError, match="'path'"):
            make("json_get", path)

    def test_path_required(self) -> None:
        """path is required."""
        with pytest.raises(TransformArgsError, match="needs argument 'path'"):
            make("json_get")
