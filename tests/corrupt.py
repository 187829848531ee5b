"""Seven ways a capture gets damaged, each a pure function of the capture's bytes and a random generator.

Used by the fuzz test and by benchmarks/fuzz.py. Each returns (damaged bytes, the byte offset of the first damage,
or None where the damage is not at one place)."""
import struct

import numpy as np


def bit_flips(data: bytes, rng: np.random.Generator):
    out = bytearray(data)
    for pos in rng.integers(24, len(out), size=max(1, len(out) // 2000)):
        out[pos] ^= 1 << int(rng.integers(8))
    return bytes(out), None


def truncated(data: bytes, rng: np.random.Generator):
    cut = int(rng.integers(24, len(data)))
    return data[:cut], cut


def damaged_header(data: bytes, rng: np.random.Generator):
    out = bytearray(data)
    out[int(rng.integers(4, 24))] ^= 0xFF  # version, time zone, snaplen or link type: the magic stays
    return bytes(out), 0


def zero_run(data: bytes, rng: np.random.Generator):
    start = int(rng.integers(24, len(data)))
    length = int(rng.integers(1, 4096))
    out = bytearray(data)
    out[start:start + length] = bytes(min(length, len(data) - start))
    return bytes(out), start


def junk_appended(data: bytes, rng: np.random.Generator):
    return data + rng.bytes(int(rng.integers(1, 2048))), len(data)


def record_offsets(data: bytes) -> list[int]:
    """Where each record of a pcap starts (byte order from its magic)."""
    order = "<" if data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    offsets, pos = [], 24
    while pos + 16 <= len(data):
        offsets.append(pos)
        pos += 16 + struct.unpack_from(order + "I", data, pos + 8)[0]
    return offsets


def damaged_length(data: bytes, rng: np.random.Generator):
    offsets = record_offsets(data)
    at = offsets[int(rng.integers(len(offsets)))]
    out = bytearray(data)
    out[at + 8:at + 12] = rng.bytes(4)  # the record's captured length
    return bytes(out), at


def pcapng_magic(data: bytes, rng: np.random.Generator):
    return b"\x0a\x0d\x0d\x0a" + data[4:], 0


CORRUPTIONS = {f.__name__.replace("_", " "): f for f in (bit_flips, truncated, damaged_header, zero_run, junk_appended,
                                                         damaged_length, pcapng_magic)}
