"""PyMySQL without `cryptography` in memory until a login needs RSA.

PyMySQL imports `cryptography` when it is imported itself, for one rare step: a
caching_sha2_password or sha256_password login over plain TCP whose password the server does
not have cached, which PyMySQL encrypts with the server's RSA key (syncd/source/connection.py).
That import holds about 10 MB in every process that talks to a source (the daemon and each
decoder process), for a step most daemons never take (TLS logins, cached logins and MariaDB's
plugins do not need it).

`defer()`, run by syncd/source/__init__.py before any source module imports PyMySQL, imports
PyMySQL with `cryptography` hidden and wraps the one function that uses it, so the package is
imported at that function's first call. PyMySQL's own check (`_have_cryptography`) still says
whether the package is installed, and its error when it is not is unchanged.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any

_USED = {"default_backend": "cryptography.hazmat.backends",
         "hashes": "cryptography.hazmat.primitives.hashes",
         "serialization": "cryptography.hazmat.primitives.serialization",
         "padding": "cryptography.hazmat.primitives.asymmetric.padding"}
"""The names PyMySQL's `_auth` module takes from `cryptography`, and where each comes from."""


def defer() -> None:
    """Imports PyMySQL with `cryptography` left out, unless either is imported already."""
    if "pymysql" in sys.modules or "cryptography" in sys.modules:
        return
    sys.modules["cryptography"] = None  # type: ignore[assignment]  # makes PyMySQL's import fail
    try:
        auth = importlib.import_module("pymysql._auth")
    finally:
        del sys.modules["cryptography"]
    auth._have_cryptography = importlib.util.find_spec("cryptography") is not None
    auth.sha2_rsa_encrypt = _loading(auth, auth.sha2_rsa_encrypt)


def _loading(auth: ModuleType, encrypt: Callable[..., bytes]) -> Callable[..., bytes]:
    """`encrypt`, first giving PyMySQL's module the `cryptography` names it uses."""

    def sha2_rsa_encrypt(*args: Any) -> bytes:
        if auth._have_cryptography and not hasattr(auth, "serialization"):
            _load(auth)
        return encrypt(*args)

    return sha2_rsa_encrypt


def _load(auth: ModuleType) -> None:
    backends = importlib.import_module(_USED["default_backend"])
    auth.default_backend = backends.default_backend
    for name in ("hashes", "serialization", "padding"):
        setattr(auth, name, importlib.import_module(_USED[name]))
