"""PyMySQL connections to a source that share one TLS context.

With no TLS options PyMySQL tries TLS if the server offers it ("preferred"), and for that
builds a new `ssl.SSLContext` on every connection, loading the system's CA bundle each time
(about 18 ms of CPU here) for a context that verifies nothing. A start of `syncd run` opens
several connections per source, so the same context, built once, serves them all. Connections
with TLS options (`ssl_ca`) build theirs as PyMySQL always does.
"""

from __future__ import annotations

import ssl
import threading
from typing import Any

import pymysql


class SourceConnection(pymysql.connections.Connection):
    _preferred: ssl.SSLContext | None = None
    _lock = threading.Lock()

    def _create_ssl_ctx(self, sslp: Any) -> ssl.SSLContext:
        if sslp:
            return super()._create_ssl_ctx(sslp)
        with SourceConnection._lock:
            if SourceConnection._preferred is None:
                SourceConnection._preferred = super()._create_ssl_ctx(sslp)
            return SourceConnection._preferred
