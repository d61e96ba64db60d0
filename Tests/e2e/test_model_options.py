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

import json
import socket
import struct
import time
from pathlib import Path

import pytest
import vowpalwabbit

from conftest import Stack, free_port, wait_until


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


def craft_model(source: Path, extra_options: str, target: Path, *, separator: str = " ", replace: bool = False,
                model_id: bytes | None = None) -> None:
    """Copies a VW 9 model, appending `extra_options` to its stored options (after `separator`), or
    replacing them with `extra_options` as written, and optionally its model id, with a valid
    header checksum."""
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
    id_at = pos
    (id_len,) = struct.unpack("<I", take(4))
    take(id_len)
    after_id = pos
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

    if replace:
        new_options = extra_options.encode() + b"\0"
    else:
        new_options = options[:-1] + separator.encode() + extra_options.encode() + b"\0"
    head = data[:options_at] + struct.pack("<I", len(new_options)) + new_options
    new_chunks = chunks
    if model_id is not None:
        head = data[:id_at] + struct.pack("<I", len(model_id)) + model_id + head[after_id:]
        new_chunks = [struct.pack("<I", len(model_id)), model_id] + chunks[2:]
    h = 0
    for piece in new_chunks + [struct.pack("<I", len(new_options)), new_options]:
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


# ------------------------------------------------------------------ issue 11: allowlisted options
# Every option vw reads, from the model header or from `vw_args`, passes one allowlist
# (`VWOptions` in VWCore); the header is split on any whitespace, as vw splits it.

HIDDEN = {
    # name: (options, craft_model keywords, expected last_error part)
    "hidden_tab": ("--readable_model {drops}/tab.txt", {"separator": "\t"},
                   "stores vw option --readable_model, which is not allowed (writes a file)"),
    "hidden_newline": ("--invert_hash {drops}/newline.txt", {"separator": "\n"},
                       "stores vw option --invert_hash, which is not allowed (writes a file)"),
    "hidden_cr": ("--readable_model\r{drops}/cr.txt", {"separator": "\r"},
                  "stores vw option --readable_model, which is not allowed (writes a file)"),
    "hidden_no_space": ("--oaa 3\t--readable_model\t{drops}/nolead.txt", {"replace": True},
                        "stores vw option --readable_model, which is not allowed (writes a file)"),
    "hidden_far": (" " * 70000 + "--readable_model {drops}/far.txt", {},
                   "the options stored in the model file are too long"),
    "hidden_in_id": ("--quiet", {"model_id": "x --readable_model {drops}/id.txt\0"},
                     "stores vw option --id, which is not allowed (a model id is not used for serving)"),
    "dump_json": ("--dump_json_weights_experimental {drops}/weights.json", {},
                  "stores vw option --dump_json_weights_experimental, which is not allowed (writes a file)"),
    "daemon": ("--daemon\t--port\t{port}", {"separator": "\t"},
               "stores vw option --daemon, which is not allowed (opens a network port)"),
}

VW_ARGS = {
    "args_span_server": (["--span_server", "127.0.0.1"], "option --span_server is not allowed (connects to a server)"),
    "args_regularizer": (["--input_feature_regularizer", "/etc/hostname"],
                         "option --input_feature_regularizer is not allowed (reads a file)"),
    "args_decay_audit": (["--epsilon_decay_audit", "{drops}/audit.txt"],
                         "option --epsilon_decay_audit is not allowed (writes a file)"),
    "args_examples": (["--examples", "3"], "option --examples is not allowed (stops vw before it serves)"),
    "args_strict_parse": (["--strict_parse"], "option --strict_parse is not allowed (stops vw on a malformed example)"),
    "args_version": (["--version"], "option --version is not allowed (stops vw before it serves)"),
    "args_help": (["--help"], "option --help is not allowed (stops vw before it serves)"),
    "args_short_help": (["-h"], "option --help is not allowed (stops vw before it serves)"),
    "args_unknown": (["--foo"], "unknown vw option --foo"),
}

REDUCTIONS = {
    # name: (training options, training examples, expected last_error part)
    "search": ("--search 3 --search_task sequence", [["1 |w a", "2 |w b"]],
               "stores vw option --search, which is not allowed (structured prediction output is not supported)"),
    "top": ("--top 2", ["1 |a x"], "stores vw option --top, which is not allowed (top-k output is not supported)"),
    "active": ("--active --simulation --mellowness 0.1", ["1 |a x"],
               "stores vw option --active, which is not allowed (active learning opens a port)"),
}


def crafting(kw: dict, drops: Path) -> dict:
    """craft_model's keywords, with the model id (text with `{drops}`) as bytes."""
    if "model_id" not in kw:
        return kw
    return dict(kw, model_id=kw["model_id"].format(drops=drops).encode())


@pytest.fixture(scope="module")
def allowlist_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("allowlist-models")
    source = path / "source.vw.orig"
    ws = vowpalwabbit.Workspace(f"--oaa 3 --quiet -f {source}")
    ws.learn("1 |a x")
    ws.finish()
    drops = path / "dropped"
    drops.mkdir()
    port = free_port()
    for name, (options, kw, _) in HIDDEN.items():
        craft_model(source, options.format(drops=drops, port=port), path / f"{name}.vw", **crafting(kw, drops))
    for name, (args, _) in VW_ARGS.items():
        (path / f"{name}.vw").write_bytes(source.read_bytes())
        (path / f"{name}.json").write_text(json.dumps({"vw_args": [a.format(drops=drops) for a in args]}))
    for name, (options, examples, _) in REDUCTIONS.items():
        ws = vowpalwabbit.Workspace(f"{options} --quiet -f {path / (name + '.vw')}")
        for example in examples:
            ws.learn(example)
        ws.finish()
    craft_model(source, "--quiet", path / "harmless.vw")
    return path, drops, port


def test_crafted_whitespace_headers_make_vw_write_files(allowlist_dir, tmp_path):
    """The threat is real: vw splits stored options on any whitespace and needs no leading space."""
    path, _, _ = allowlist_dir
    for name in ("hidden_tab", "hidden_newline", "hidden_no_space", "hidden_far", "hidden_in_id", "dump_json"):
        options, kw, _ = HIDDEN[name]
        target = tmp_path / f"{name}.vw"
        craft_model(path / "source.vw.orig", options.format(drops=tmp_path, port=0), target, **crafting(kw, tmp_path))
        ws = vowpalwabbit.Workspace(f"-i {target} -t --quiet")
        ws.predict(" |a x")
        ws.finish()
    written = sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".vw"))
    assert written == ["far.txt", "id.txt", "newline.txt", "nolead.txt", "tab.txt", "weights.json"], written


def test_options_outside_the_allowlist_are_refused(allowlist_dir):
    path, drops, port = allowlist_dir
    expected = {name: want for name, (_, _, want) in HIDDEN.items()}
    expected.update({name: "invalid config: vw_args: " + want for name, (_, want) in VW_ARGS.items()})
    expected.update({name: want for name, (_, _, want) in REDUCTIONS.items()})
    stack = Stack(path).start(ready=False)
    try:
        started = time.monotonic()

        def settled():
            statuses = {m["name"]: m for m in stack.get("/v1/models").json()["models"]}
            done = statuses.get("harmless", {}).get("ready") and all(
                statuses.get(n, {}).get("last_error") or statuses.get(n, {}).get("ready") for n in expected)
            return statuses if done else None

        statuses = wait_until(settled, 40, step=0.2)
        assert statuses, "models did not settle: " + stack.logs()
        # Refused at load, not after the 60 s load timeout (`--active`, `--top` and `--search` would hang the probe).
        assert time.monotonic() - started < 30
        for name, want in expected.items():
            status = statuses[name]
            assert not status["ready"], f"{name} was loaded: {status}"
            assert want in str(status["last_error"]), f"{name}: {status['last_error']}"
        # The harm is absent: no file written, nothing listening, the other models still answer.
        assert sorted(p.name for p in drops.iterdir()) == []
        with socket.socket() as s:
            s.settimeout(1)
            assert s.connect_ex(("127.0.0.1", port)) != 0, f"something listens on {port}"
        r = stack.predict("harmless", [" |a x"])
        assert r.status_code == 200, r.text
        ws = vowpalwabbit.Workspace(f"-i {path / 'source.vw.orig'} -t --quiet")
        want = ws.predict(" |a x")
        ws.finish()
        assert r.json()["predictions"] == [want], (r.text, want)  # VW's own answer, not just "a class"
    finally:
        problems = stack.stop()
    assert problems == []
