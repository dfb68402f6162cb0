"""Source connections: one shared TLS context in PyMySQL's default (preferred) mode, and each
`ssl_mode` reaching PyMySQL as it should (pure: no server)."""

from __future__ import annotations

import ssl

from syncd.source.connection import SourceConnection
from syncd.tls import SourceTls


def test_preferred_mode_builds_one_context_for_every_connection() -> None:
    first, second = SourceConnection.__new__(SourceConnection), SourceConnection.__new__(SourceConnection)
    shared = first._create_ssl_ctx({})
    assert second._create_ssl_ctx({}) is shared
    assert shared.verify_mode == ssl.CERT_NONE and not shared.check_hostname  # as PyMySQL's own


def test_tls_options_build_their_own_context() -> None:
    connection = SourceConnection.__new__(SourceConnection)
    own = connection._create_ssl_ctx({"verify_mode": "required"})
    assert own is not connection._create_ssl_ctx({})
    assert own.verify_mode == ssl.CERT_REQUIRED


def test_each_mode_reaches_pymysql() -> None:
    """disable: no TLS even if offered; prefer: PyMySQL's default with the shared context;
    require and above: a context of the source's own, TLS demanded."""
    def made(mode: str) -> SourceConnection:
        return SourceConnection(host="127.0.0.1", tls=SourceTls(mode), defer_connect=True)

    assert not made("disable").ssl
    preferred = made("prefer")
    assert preferred.ssl and preferred.ctx is SourceConnection._preferred
    required = made("require")
    assert required.ssl and required.ctx is not SourceConnection._preferred
    assert required.ctx.verify_mode == ssl.CERT_NONE
