#!/usr/bin/env python3
"""Writes a few valid frames into fuzz/seeds/ as a starting corpus for the `decode` target."""
import os
import struct

POLY = 0x82F63B78
TABLE = []
for i in range(256):
    c = i
    for _ in range(8):
        c = (c >> 1) ^ POLY if c & 1 else c >> 1
    TABLE.append(c)


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for b in data:
        crc = TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field_varint(num: int, value: int) -> bytes:
    return varint(num << 3) + varint(value)


def field_bytes(num: int, value: bytes) -> bytes:
    return varint(num << 3 | 2) + varint(len(value)) + value


def simple(command: bytes) -> bytes:
    return struct.pack(">II", 4 + len(command), len(command)) + command


def payload_frame(command: bytes, metadata: bytes, payload: bytes, entry: bytes = None, checksum=True) -> bytes:
    body = struct.pack(">I", len(metadata)) + metadata + payload
    rest = b""
    if entry is not None:
        rest += struct.pack(">HI", 0x0E02, len(entry)) + entry
    if checksum:
        rest += struct.pack(">HI", 0x0E01, crc32c(body))
    rest += body
    return struct.pack(">II", 4 + len(command) + len(rest), len(command)) + command + rest


def base(kind: int, body: bytes) -> bytes:
    return field_varint(1, kind) + field_bytes(kind, body)


metadata = field_bytes(1, b"standalone-0-1") + field_varint(2, 7) + field_varint(3, 1700000000000) \
    + field_bytes(4, field_bytes(1, b"k") + field_bytes(2, b"v")) + field_bytes(6, b"key")
send = base(6, field_varint(1, 1) + field_varint(2, 7) + field_varint(3, 1))
message = base(9, field_varint(1, 3) + field_bytes(2, field_varint(1, 12) + field_varint(2, 34)))
entry = field_varint(1, 1700000000001) + field_varint(2, 99)
batch = b""
for i in range(3):
    smm = field_varint(3, 5) + field_varint(8, i)
    batch += struct.pack(">I", len(smm)) + smm + b"hello"

seeds = {
    "ping": simple(base(18, b"")),
    "flow": simple(base(11, field_varint(1, 3) + field_varint(2, 1000))),
    "connected": simple(base(3, field_bytes(1, b"Pulsar Server4.0.7") + field_varint(2, 21) + field_varint(3, 5242880))),
    "send": payload_frame(send, metadata, b"hello world"),
    "message_entry": payload_frame(message, metadata, b"payload", entry=entry),
    "message_no_crc": payload_frame(message, metadata, b"payload", checksum=False),
    "message_batch": payload_frame(message, metadata + field_varint(11, 3), batch),
    "stream": simple(base(18, b"")) + payload_frame(send, metadata, b"x" * 40) + simple(base(19, b"")),
}
out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "seeds")
os.makedirs(out, exist_ok=True)
for name, data in seeds.items():
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)
print(f"wrote {len(seeds)} seeds to {out}")
