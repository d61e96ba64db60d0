"""Exit 0 when every requirement of a requirements file is installed at an allowed version.

    .venv/bin/python bench/check_requirements.py bench/requirements.txt

Lets `make bench` ask PyPI only when something is missing.
"""

import sys
from importlib import metadata

from packaging.requirements import Requirement


def main(path: str) -> int:
    missing = []
    with open(path) as f:
        for raw in f:
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            req = Requirement(line)
            try:
                version = metadata.version(req.name)
            except metadata.PackageNotFoundError:
                missing.append(f"{req} (not installed)")
                continue
            if req.specifier and not req.specifier.contains(version, prereleases=True):
                missing.append(f"{req} (have {version})")
    for item in missing:
        print(f"bench: missing {item}", file=sys.stderr)
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "bench/requirements.txt"))
