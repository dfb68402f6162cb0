"""The connection phase as MySQL 8.4 runs it: greeting, TLS upgrade, caching_sha2_password.

caching_sha2_password (mysql-server ``sql/auth/sha2_password.cc``; reference manual 8.4
"Caching SHA-2 Pluggable Authentication"):

* the client answers the 20-byte nonce with XOR(SHA256(pw), SHA256(SHA256(SHA256(pw)), nonce));
* *fast authentication*: when the server's cache holds SHA256(SHA256(pw)) for the account, it
  checks the scramble and sends AuthMoreData 0x03 (``fast_auth_success``), then OK;
* otherwise (not cached, or a wrong scramble) it sends 0x04 (``perform_full_authentication``)
  and the client sends the password: in clear over TLS, else XOR-ed with the nonce and
  RSA-OAEP encrypted with the server's public key, which the client may first ask for with a
  0x02 byte. A successful full authentication puts the account in the cache; a server
  restart or FLUSH PRIVILEGES empties it (``MySQLDouble.clear_auth_cache``).

Refusals, as MySQL 8.4 words them: a wrong password or an unknown account is error 1045
(28000) "Access denied for user 'u'@'host' (using password: YES)" -- an unknown account goes
through the same exchange, so a client cannot tell it apart; an account whose plugin is
``mysql_native_password``, disabled by default in 8.4 and removed in 9.0 (reference manual
8.4, "Native Pluggable Authentication"), gets 1524 (HY000) "Plugin 'mysql_native_password'
is not loaded"; an account created ``REQUIRE SSL`` that logs in over plain TCP gets 1045; and
with ``require_secure_transport=ON`` every plain connection gets 3159 (HY000).
"""

from __future__ import annotations

import functools
import hashlib
import os
import struct
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tests.mysql_double import wire

CACHING_SHA2 = "caching_sha2_password"
NATIVE = "mysql_native_password"
NONCE_LENGTH = 20
FAST_AUTH_SUCCESS = b"\x01\x03"
PERFORM_FULL_AUTHENTICATION = b"\x01\x04"
REQUEST_PUBLIC_KEY = b"\x02"


@dataclass(frozen=True)
class Account:
    """A user the double knows. ``plugin`` is the account's authentication plugin."""

    user: str
    password: str
    plugin: str = CACHING_SHA2
    require_tls: bool = False


class AuthError(Exception):
    def __init__(self, code: int, state: str, message: str) -> None:
        super().__init__(message)
        self.code, self.state, self.message = code, state, message

    def packet(self) -> bytes:
        return wire.err_packet(self.code, self.state, self.message)


@dataclass
class HandshakeResponse:
    capabilities: int
    charset: int
    user: str
    auth_response: bytes
    database: str | None
    plugin: str


@dataclass
class AuthState:
    """What the server keeps across connections: accounts, the fast-auth cache, the RSA key."""

    accounts: dict[str, Account] = field(default_factory=dict)
    cache: dict[str, bytes] = field(default_factory=dict)
    """user -> SHA256(SHA256(password)) of accounts that passed full authentication."""
    require_secure_transport: bool = False
    rsa_key: rsa.RSAPrivateKey = field(default_factory=lambda: _rsa_key())  # noqa: PLW0108 - defined below

    def public_key_pem(self) -> bytes:
        return self.rsa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


@functools.cache
def _rsa_key() -> rsa.RSAPrivateKey:
    """The RSA key pair (2048 bits, like MySQL's caching_sha2_password_*_key.pem), made once per
    test process: generating one takes a noticeable fraction of a second."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def new_nonce() -> bytes:
    """20 printable, non-NUL bytes, like MySQL's generate_user_salt."""
    return bytes(33 + b % 94 for b in os.urandom(NONCE_LENGTH))


def greeting(server_version: str, connection_id: int, nonce: bytes, status: int) -> bytes:
    """Protocol::HandshakeV10 with caching_sha2_password as the default plugin."""
    caps = wire.SERVER_CAPABILITIES
    return (b"\x0a" + server_version.encode() + b"\0" + struct.pack("<I", connection_id)
            + nonce[:8] + b"\0" + struct.pack("<HBHHB", caps & 0xFFFF, wire.UTF8MB4_0900_AI_CI,
                                               status, caps >> 16, NONCE_LENGTH + 1)
            + b"\0" * 10 + nonce[8:] + b"\0" + CACHING_SHA2.encode() + b"\0")


def is_ssl_request(payload: bytes) -> bool:
    return len(payload) == 32 and bool(struct.unpack_from("<I", payload)[0] & wire.CLIENT_SSL)


def parse_handshake_response(payload: bytes) -> HandshakeResponse:
    """Protocol::HandshakeResponse41."""
    caps, _max_packet, charset = struct.unpack_from("<IIB", payload)
    user, pos = wire.read_nul_str(payload, 32)
    if caps & wire.CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA:
        length, pos = wire.read_lenenc_int(payload, pos)
    else:
        length, pos = payload[pos], pos + 1
    auth_response, pos = payload[pos:pos + length], pos + length
    database = None
    if caps & wire.CLIENT_CONNECT_WITH_DB and pos < len(payload):
        raw, pos = wire.read_nul_str(payload, pos)
        database = raw.decode() or None
    plugin = ""
    if caps & wire.CLIENT_PLUGIN_AUTH and pos < len(payload):
        raw, pos = wire.read_nul_str(payload, pos)
        plugin = raw.decode()
    return HandshakeResponse(caps, charset, user.decode(), auth_response, database, plugin)


def sha2_scramble(password: bytes, nonce: bytes) -> bytes:
    """What a client sends for fast authentication (see the module docstring)."""
    p1 = hashlib.sha256(password).digest()
    p3 = hashlib.sha256(hashlib.sha256(p1).digest() + nonce).digest()
    return bytes(a ^ b for a, b in zip(p1, p3, strict=True))


def _fast_auth_ok(stored: bytes | None, scramble: bytes, nonce: bytes) -> bool:
    if stored is None or len(scramble) != 32:
        return False
    p3 = hashlib.sha256(stored + nonce).digest()
    p1 = bytes(a ^ b for a, b in zip(scramble, p3, strict=True))
    return hashlib.sha256(p1).digest() == stored


class Authenticator:
    """Runs one connection's authentication exchange on ``io`` after its handshake response."""

    def __init__(self, state: AuthState, io: wire.PacketIO, nonce: bytes, peer_host: str) -> None:
        self.state, self.io, self.nonce, self.peer_host = state, io, nonce, peer_host

    def denied(self, user: str, with_password: bool) -> AuthError:
        return AuthError(1045, "28000", f"Access denied for user '{user}'@'{self.peer_host}' "
                         f"(using password: {'YES' if with_password else 'NO'})")

    def run(self, response: HandshakeResponse) -> Account:
        if self.state.require_secure_transport and not self.io.secure:
            raise AuthError(3159, "HY000", "Connections using insecure transport are prohibited "
                            "while --require_secure_transport=ON.")
        account = self.state.accounts.get(response.user)
        if account is not None and account.plugin != CACHING_SHA2:
            raise AuthError(1524, "HY000", f"Plugin '{account.plugin}' is not loaded")
        scramble = self._sha2_scramble(response)
        password = self._password(response.user, scramble)
        if account is None or password is None or password != account.password.encode():
            raise self.denied(response.user, bool(scramble))
        if account.require_tls and not self.io.secure:
            raise self.denied(response.user, True)
        self.state.cache[account.user] = hashlib.sha256(
            hashlib.sha256(account.password.encode()).digest()).digest()
        return account

    def _sha2_scramble(self, response: HandshakeResponse) -> bytes:
        """The client's caching_sha2 scramble, switching it to that plugin if it used another."""
        if response.plugin in ("", CACHING_SHA2):
            return response.auth_response
        self.io.send(b"\xfe" + CACHING_SHA2.encode() + b"\0" + self.nonce + b"\0")
        return self.io.read()

    def _password(self, user: str, scramble: bytes) -> bytes | None:
        """The password the client proved (fast) or sent (full authentication); None if none."""
        account = self.state.accounts.get(user)
        if not scramble:
            return b"" if account is not None and not account.password else None
        if _fast_auth_ok(self.state.cache.get(user), scramble, self.nonce):
            self.io.send(FAST_AUTH_SUCCESS)
            return account.password.encode() if account else None
        self.io.send(PERFORM_FULL_AUTHENTICATION)
        reply = self.io.read()
        if self.io.secure:
            return reply.rstrip(b"\0")
        if reply == REQUEST_PUBLIC_KEY:
            self.io.send(b"\x01" + self.state.public_key_pem())
            reply = self.io.read()
        return self._decrypt(reply)

    def _decrypt(self, encrypted: bytes) -> bytes | None:
        try:
            plain = self.state.rsa_key.decrypt(encrypted, padding.OAEP(
                mgf=padding.MGF1(algorithm=hashes.SHA1()), algorithm=hashes.SHA1(), label=None))
        except ValueError:
            return None
        xored = bytes(b ^ self.nonce[i % NONCE_LENGTH] for i, b in enumerate(plain))
        return xored[:-1] if xored.endswith(b"\0") else None
