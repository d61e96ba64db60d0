"""A model file's stored options are applied by vw itself (issue 8, SECURITY.md).

VW keeps the options of a model in its header (protected only by a non-cryptographic checksum
that anyone can recompute) and applies them when it loads the file with `-i`. A model file that
stores `--readable_model FILE` or `--invert_hash FILE` makes vw write FILE; one that stores
`--daemon --port N` makes it listen on every interface. vwfcgi forbids those options in
`<name>.json`; the same list must apply to the options stored in the `.vw` file.

`craft_model` rewrites a real model's stored options and its checksum, as an attacker with write
access to the model directory could.
"""

from __future__ import annotations

import struct
import time
from pathlib import Path

import pytest
import vowpalwabbit

from conftest import Stack


def murmur3_32(data: bytes, seed: int) -> int:
    """VW's uniform_hash (MurmurHash3 x86 32)."""
    c1, c2, mask = 0xCC9E2D51, 0x1B873593, 0xFFFFFFFF
    h = seed & mask
    blocks = len(data) // 4
    for i in range(blocks):
        k = struct.unpack_from("<I", data, 4 * i)[0]
        k = (k * c1) & mask
        k = ((k << 15) | (k >> 17)) & mask
        k = (k * c2) & mask
        h ^= k
        h = ((h << 13) | (h >> 19)) & mask
        h = (h * 5 + 0xE6546B64) & mask
    tail, k = data[4 * blocks:], 0
    if len(tail) >= 3:
        k ^= tail[2] << 16
    if len(tail) >= 2:
        k ^= tail[1] << 8
    if tail:
        k ^= tail[0]
        k = (k * c1) & mask
        k = ((k << 15) | (k >> 17)) & mask
        k = (k * c2) & mask
        h ^= k
    h ^= len(data)
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & mask
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & mask
    return h ^ (h >> 16)


def craft_model(source: Path, extra_options: str, target: Path) -> None:
    """Copies a VW 9 model, appending `extra_options` to its stored options, with a valid header checksum."""
    data = source.read_bytes()
    pos = 0
    chunks: list[bytes] = []  # what VW hashes: every header read after the version string

    def take(n: int, hashed: bool = True) -> bytes:
        nonlocal pos
        piece = data[pos:pos + n]
        pos += n
        if hashed:
            chunks.append(piece)
        return piece

    (version_len,) = struct.unpack("<I", take(4, hashed=False))
    take(version_len, hashed=False)
    (id_len,) = struct.unpack("<I", take(4))
    take(id_len)
    assert take(1) == b"m"
    take(4)  # min label (each read is hashed on its own)
    take(4)  # max label
    take(4)  # bits
    take(4)  # lda
    (ngrams,) = struct.unpack("<I", take(4))
    assert ngrams == 0
    (skips,) = struct.unpack("<I", take(4))
    assert skips == 0
    options_at = pos
    (options_len,) = struct.unpack("<I", data[pos:pos + 4])
    options = data[pos + 4:pos + 4 + options_len]
    assert options.endswith(b"\0") and struct.unpack("<I", data[pos + 4 + options_len:pos + 8 + options_len]) == (4,)
    after_checksum = pos + 4 + options_len + 8

    new_options = options[:-1] + b" " + extra_options.encode() + b"\0"
    head = data[:options_at] + struct.pack("<I", len(new_options)) + new_options
    h = 0
    for piece in chunks + [struct.pack("<I", len(new_options)), new_options]:
        h = murmur3_32(piece, h)
    # The original checksum must come out of the same computation, or the layout is not understood.
    h0 = 0
    for piece in chunks + [struct.pack("<I", options_len), options]:
        h0 = murmur3_32(piece, h0)
    assert struct.pack("<I", h0) == data[after_checksum - 4:after_checksum], "checksum layout not understood"
    target.write_bytes(head + struct.pack("<II", 4, h) + data[after_checksum:])


@pytest.fixture(scope="module")
def crafted_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("crafted-models")
    source = path / "source.vw.orig"
    ws = vowpalwabbit.Workspace(f"--oaa 3 --quiet -f {source}")
    ws.learn("1 |a x")
    ws.finish()
    drops = path / "dropped"
    drops.mkdir()
    craft_model(source, f"--readable_model {drops / 'readable.txt'}", path / "readable.vw")
    craft_model(source, f"--invert_hash {drops / 'inverted.txt'}", path / "inverted.vw")
    craft_model(source, "--quiet", path / "harmless.vw")  # the crafting itself yields loadable models
    return path


def test_crafted_header_loads_in_vw(crafted_dir):
    """The crafted files are valid VW models whose stored options vw applies (the threat is real)."""
    ws = vowpalwabbit.Workspace(f"-i {crafted_dir / 'harmless.vw'} -t --quiet")
    assert ws.predict(" |a x") in (1, 2, 3)
    ws.finish()


def test_model_with_stored_file_writing_options_is_refused(crafted_dir):
    stack = Stack(crafted_dir).start(ready=False)
    try:
        deadline = time.monotonic() + 30
        statuses = {}
        while time.monotonic() < deadline:
            statuses = {m["name"]: m for m in stack.get("/v1/models").json()["models"]}
            if statuses.get("harmless", {}).get("ready") and all(
                    statuses.get(n, {}).get("last_error") or statuses.get(n, {}).get("ready")
                    for n in ("readable", "inverted")):
                break
            time.sleep(0.2)
        written = sorted(p.name for p in (crafted_dir / "dropped").iterdir())
        assert statuses["harmless"]["ready"]
        for name in ("readable", "inverted"):
            assert not statuses[name]["ready"], f"{name}.vw was loaded: {statuses[name]}"
            assert "not allowed" in str(statuses[name]["last_error"]), statuses[name]
        assert written == [], f"vw wrote {written} because a model file asked it to"
    finally:
        stack.stop(check=False)
