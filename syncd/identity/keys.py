"""Match keys as stored: deterministic hashes, never the plain value; and the JSON of contributions.

A key value is first written as text (`key_text`): text as is, integers and integral decimals as
their digits (so an INT user id and the same id held as VARCHAR match), other decimals in their
plain form. NULL, and text that is empty or only spaces, is no key at all.

The hash is HMAC-SHA256 keyed with the identity's salt when one is configured, else plain
SHA-256, over `space \\x1f kind \\x1f text`, in hex. Equal keys of one space and kind always give
the same hash; the same phone number in two spaces does not.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from syncd.errors import TransformError
from syncd.model import IdentitySpace

KNOWN: dict[str, IdentitySpace] = {}
"""Every space compiled in this process, by name (the latest compile wins, e.g. after a reload).
The sink needs a space's unified table when a source TRUNCATE removes contributions without any
operation of the batch naming the space."""

RECORD_SEP = "\x1f"
"""Between a record's mapping and its target key in the pure model's record names."""


def record_name(mapping: str, record: str) -> str:
    """A record in the pure model: its mapping and its target key."""
    return f"{mapping}{RECORD_SEP}{record}"


def key_text(value: Any) -> str | None:
    """The text a key value is matched by; None for NULL and blank text."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal | bytes | bytearray | datetime
                                                  | date | time):
        raise TransformError(f"a match key cannot be a {type(value).__name__}: {value!r}")
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise TransformError(f"a match key cannot be {value!r}")
        text = str(int(value)) if value == value.to_integral_value() else format(value.normalize(), "f")
    elif isinstance(value, bytes | bytearray):
        try:
            text = bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            text = bytes(value).hex()
    elif isinstance(value, datetime | date | time):
        text = value.isoformat()
    else:
        text = str(value)
    return text if text.strip() else None


@dataclass(frozen=True)
class KeyHasher:
    """Hashes the match keys of one identity space."""

    space: str
    salt: bytes | None = None

    def __call__(self, kind: str, value: Any) -> str | None:
        text = key_text(value)
        if text is None:
            return None
        message = f"{self.space}\x1f{kind}\x1f{text}".encode()
        if self.salt:
            return hmac.new(self.salt, message, hashlib.sha256).hexdigest()
        return hashlib.sha256(message).hexdigest()


def record_id(key: tuple[str, ...], values: tuple[Any, ...]) -> str:
    """A source record of a mapping, named by its target key: canonical JSON text."""
    return json.dumps(dict(zip(key, values, strict=True)), ensure_ascii=False, separators=(",", ":"),
                      default=_key_default)


def _key_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, bytes | bytearray):
        return "\\x" + bytes(value).hex()
    return str(value)


# ----------------------------------------------------------------- contribution values as JSON

def encode_values(values: dict[str, Any]) -> str:
    """Contribution values as JSON text that decodes back to the same Python types."""
    return json.dumps({k: encode_value(v) for k, v in values.items()}, ensure_ascii=False)


def encode_value(value: Any) -> Any:
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, str):
        return value.replace("\x00", "\\u0000")  # jsonb refuses NUL, like PostgreSQL text
    if isinstance(value, float) and math.isfinite(value):
        return value
    for kind, tag, encode in _ENCODERS:
        if isinstance(value, kind):
            return {tag: encode(value)}
    return {"$json": json.loads(json.dumps(value, default=str))}


def _micros(value: timedelta) -> int:
    return (value.days * 86400 + value.seconds) * 1_000_000 + value.microseconds


_ENCODERS: tuple[tuple[type | tuple[type, ...], str, Any], ...] = (
    (Decimal, "$decimal", str),
    (datetime, "$datetime", datetime.isoformat),
    (date, "$date", date.isoformat),
    (time, "$time", time.isoformat),
    (timedelta, "$microseconds", _micros),
    ((bytes, bytearray), "$bytes", lambda v: bytes(v).hex()),
    (float, "$float", str),  # inf, -inf, nan: JSON has no such numbers
)
_DECODERS: dict[str, Any] = {
    "$decimal": Decimal,
    "$datetime": datetime.fromisoformat,
    "$date": date.fromisoformat,
    "$time": time.fromisoformat,
    "$microseconds": lambda v: timedelta(microseconds=v),
    "$bytes": bytes.fromhex,
    "$float": float,
    "$json": lambda v: v,
}


def decode_values(data: dict[str, Any]) -> dict[str, Any]:
    return {k: decode_value(v) for k, v in data.items()}


def decode_value(value: Any) -> Any:
    if not isinstance(value, dict) or len(value) != 1:
        return value
    tag, inner = next(iter(value.items()))
    decode = _DECODERS.get(tag)
    return value if decode is None else decode(inner)
