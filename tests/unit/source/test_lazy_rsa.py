"""PyMySQL is imported without `cryptography`, which arrives at the first RSA login step."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import sys
import syncd.source.binlog, syncd.source.connection
import pymysql._auth as auth
assert "cryptography" not in sys.modules, "imported with PyMySQL"
assert auth._have_cryptography
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                    serialization.PublicFormat.SubjectPublicKeyInfo)
salt = b"0123456789abcdefghij"
sealed = auth.sha2_rsa_encrypt(b"secret", salt, pem)
plain = key.decrypt(sealed, padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA1()),
                                         algorithm=hashes.SHA1(), label=None))
assert plain == auth._xor_password(b"secret" + b"\\0", salt), plain
print("ok")
"""


def run(script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", script], check=False, capture_output=True, text=True,
                          timeout=60)


def test_the_rsa_step_loads_cryptography_when_first_needed_and_encrypts_as_pymysql_does() -> None:
    done = run(SCRIPT)
    assert done.stdout.strip() == "ok", done.stderr


def test_without_the_package_pymysql_says_so_as_before() -> None:
    script = ("import sys; sys.modules['cryptography'] = None\n"
              "import syncd.source.connection, pymysql._auth as auth\n"
              "try:\n    auth.sha2_rsa_encrypt(b'p', b's' * 20, b'k')\n"
              "except RuntimeError as exc:\n    print(exc)\n")
    done = run(script)
    assert "'cryptography' package is required" in done.stdout, done.stderr
