"""Source connections share one TLS context in PyMySQL's default (preferred) mode (pure)."""

from __future__ import annotations

import ssl

from syncd.source.connection import SourceConnection


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
