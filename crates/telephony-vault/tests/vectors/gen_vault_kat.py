#!/usr/bin/env python3
"""Produces vault_kat.txt with an implementation independent of ring (pyca/cryptography's AESGCM).

Run: python3 gen_vault_kat.py > vault_kat.txt
The format is documented in crates/telephony-vault/src/envelope.rs; this script re-implements it
from that description so that a drift between the two shows up as a failing test.
"""
import base64
import struct

from cryptography.hazmat.primitives.ciphers.aead import AESGCM


def aad(version, org, conn, field):
    out = b"telephony-vault/v1" + struct.pack(">I", version)
    for f in (org, conn, field):
        b = f.encode()
        out += struct.pack(">Q", len(b)) + b
    return out


VECTORS = [
    # (comment, key_version, key bytes, nonce bytes, org, connection, field, plaintext)
    ("all-zero key and nonce, a Twilio auth token", 1, bytes(32), bytes(12),
     "org_1", "conn_1", "auth_token", "0123456789abcdef0123456789abcdef"),
    ("counting key, version 7, a Telnyx API v2 key", 7, bytes(range(32)), bytes(range(100, 112)),
     "7f9c2ba4-e88f-4d0e-a0a3-2c1c0b6f9e11", "c0nn-2", "api_key",
     "KEY0123456789ABCDEF_abcdefghijklmnopqrstuv"),
    ("empty secret still authenticates its owner", 2, bytes([0xA5] * 32), bytes([0xFF] * 12),
     "org", "conn", "api_key_secret", ""),
    ("non-ASCII owner and secret", 3, bytes(range(32, 64)), bytes(range(12)),
     "organización", "conexión", "auth_token", "pässwörd ☃"),
]

print("# Known-answer vectors for the vault's AES-256-GCM envelope, produced by gen_vault_kat.py")
print("# (pyca/cryptography AESGCM, independent of ring). Blocks are separated by one blank line.")
print("# ciphertext = v1:<key_version>:base64url_nopad(nonce || ciphertext || tag)")
for comment, version, key, nonce, org, conn, field, plaintext in VECTORS:
    ct = AESGCM(key).encrypt(nonce, plaintext.encode(), aad(version, org, conn, field))
    text = "v1:%d:%s" % (version, base64.urlsafe_b64encode(nonce + ct).decode().rstrip("="))
    print()
    print("# " + comment)
    print("key_version = %d" % version)
    print("key = " + base64.b64encode(key).decode())
    print("nonce = " + nonce.hex())
    print("org = " + org)
    print("connection = " + conn)
    print("field = " + field)
    print("plaintext = " + plaintext)
    print("ciphertext = " + text)
