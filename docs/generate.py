#!/usr/bin/env python3
"""Generates docs/openapi.json (served by nginx as GET /openapi.json) from docs/openapi.yaml.

    .venv/bin/python docs/generate.py           write it (make deploy-generate)
    .venv/bin/python docs/generate.py --check   exit 1, with a diff, when the committed copy is stale
"""

import difflib
import json
import sys
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "openapi.yaml"
TARGET = HERE / "openapi.json"


def render() -> str:
    document = yaml.safe_load(SOURCE.read_text())
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    if argv not in ([], ["--check"]):
        print("docs/generate.py: use --check or nothing", file=sys.stderr)
        return 2
    fresh = render()
    current = TARGET.read_text() if TARGET.exists() else ""
    if argv == ["--check"]:
        if current != fresh:
            sys.stderr.writelines(difflib.unified_diff(current.splitlines(True), fresh.splitlines(True),
                                                       "docs/openapi.json", "fresh rendering", n=1))
            print("docs/openapi.json is stale: run docs/generate.py (make deploy-generate)", file=sys.stderr)
            return 1
        return 0
    if current != fresh:
        TARGET.write_text(fresh)
        print("docs/generate.py: wrote docs/openapi.json", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
