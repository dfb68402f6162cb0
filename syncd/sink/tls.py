"""What a failed connection to the target means when TLS is the reason.

Every target connection is made by `syncd.sink.postgres.connect` from `target.dsn`, so libpq's
`sslmode`, `sslrootcert`, `sslcert` and `sslkey` there hold for all of them. libpq reports TLS
failures as text only; the ones below do not pass by waiting (a CA that did not sign the
server's certificate, a host name the certificate does not carry, a server without TLS where
the DSN requires it), so they become a TargetTlsError naming the parameter to fix. A handshake
cut short ("SSL SYSCALL error", "unexpected eof") is a lost connection like any other and stays
retriable; so is "no pg_hba.conf entry ..., no encryption", which does not tell whether a
`hostssl` line would have let syncd in.
"""

from __future__ import annotations

import re

import psycopg

from syncd.config import TargetConfig
from syncd.errors import TargetTlsError
from syncd.tls import dsn_parameters

_CAUSES = [
    ("verify", re.compile(r"certificate verify failed")),
    ("name", re.compile(r"server certificate for .* does not match host name"
                        r"|could not get server's host name from server certificate")),
    ("no_tls", re.compile(r"server does not support SSL, but SSL was required")),
    ("files", re.compile(r"root certificate file .* does not exist|could not read root certificate file"
                         r"|could not open certificate file|could not read certificate file"
                         r"|certificate present, but not private key file|could not load private key file"
                         r"|private key file .* (has group or world access|is not a regular file)")),
    ("client", re.compile(r"connection requires a valid client certificate|certificate authentication "
                          r"failed|alert certificate required|alert unknown ca|alert bad certificate")),
    ("handshake", re.compile(r"unsupported protocol|wrong version number|alert protocol version"
                             r"|alert handshake failure|no protocols available")),
]


def tls_error(target: TargetConfig, exc: psycopg.OperationalError) -> TargetTlsError | None:
    """The TLS failure behind `exc`, if TLS is why the connection failed."""
    for line in str(exc).splitlines():
        for kind, pattern in _CAUSES:
            if pattern.search(line):
                return TargetTlsError(f"TLS to the target failed ({_reason(line)}): {_fix(target, kind)}")
    return None


def _reason(line: str) -> str:
    return line.strip().removeprefix("connection failed: ")


def _fix(target: TargetConfig, kind: str) -> str:
    try:
        settings = dsn_parameters(target.dsn)
    except ValueError:
        settings = {}
    mode, root = settings.get("sslmode", "prefer"), settings.get("sslrootcert")
    fixes = {
        "verify": f"sslrootcert={root} in target.dsn is not the CA that signed the server's certificate "
                  "(ssl_cert_file in postgresql.conf), or that certificate is not valid today",
        "name": f"the server's certificate is not made out to {settings.get('host')!r} (host= in "
                "target.dsn); connect by a name the certificate carries (hostaddr= may give the address "
                "to dial)",
        "no_tls": f"target.dsn says sslmode={mode}, so syncd will not talk to it in plain text; turn "
                  "ssl on in postgresql.conf (ssl = on, ssl_cert_file, ssl_key_file) or lower sslmode",
        "files": "sslrootcert, sslcert and sslkey in target.dsn must name files syncd's user can read "
                 "(a key: mode 0600)",
        "client": "the server wants a client certificate it trusts: sslcert and sslkey in target.dsn",
    }
    return fixes.get(kind, "the TLS versions the server allows (ssl_min_protocol_version) and "
                     "libpq's must meet")
