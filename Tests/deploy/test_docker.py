"""docker/: hadolint is clean, and the Dockerfile is what the issue asks for (no Docker
engine here: checked statically; the runtime stage's scripts run in test_pod_simulation)."""

import fnmatch
import re
import shutil

import pytest

from conftest import ROOT, run, tool

DOCKERFILE = ROOT / "docker/Dockerfile"


def instructions():
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_hadolint_clean():
    result = run([tool("hadolint"), "--failure-threshold", "style", DOCKERFILE])
    assert result.returncode == 0, result.stdout + result.stderr


def test_stages_and_runtime_settings():
    ins = instructions()
    args = {a.split("=")[0]: a.split("=", 1)[1] for w, a in ins if w == "ARG" and "=" in a}
    froms = [a for w, a in ins if w == "FROM"]
    assert len(froms) == 2
    # Fully qualified: podman refuses short names that its registries.conf has no alias for.
    assert re.fullmatch(r"docker\.io/library/swift:6\.\d+-bookworm", args["SWIFT_IMAGE"])
    assert args["RUNTIME_IMAGE"] == "docker.io/library/debian:bookworm-slim"
    # The builder's Swift must be at least the manifest's tools version.
    tools = re.search(r"swift-tools-version:\s*(\d+)\.(\d+)", (ROOT / "Package.swift").read_text())
    image = re.search(r"swift:(\d+)\.(\d+)", args["SWIFT_IMAGE"])
    assert tuple(map(int, image.groups())) >= tuple(map(int, tools.groups()))
    runs = " ".join(a for w, a in ins if w == "RUN")
    assert "--static-swift-stdlib" in runs
    assert "scripts/install-deps.sh --runtime" in runs
    assert " tini" in runs
    user = [a for w, a in ins if w == "USER"]
    assert user and not user[-1].startswith(("0", "root"))
    assert ("EXPOSE", "8080") in ins
    assert any(w == "VOLUME" and "/models" in a for w, a in ins)
    assert any(w == "HEALTHCHECK" and "/healthz" in a for w, a in ins)
    entrypoint = [a for w, a in ins if w == "ENTRYPOINT"][-1]
    assert entrypoint.startswith('["/usr/bin/tini", "--"') and "docker/entrypoint.sh" in entrypoint


def ignored(path: str, patterns) -> bool:
    """.dockerignore semantics, enough for our file: last matching pattern wins."""
    result = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        if fnmatch.fnmatch(path, pattern) or path.startswith(pattern + "/") \
                or fnmatch.fnmatch(path, pattern.replace("**/", "")):
            result = not negate
    return result


def test_copied_files_exist_and_are_in_the_context():
    patterns = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    for word, arguments in instructions():
        if word != "COPY" or "--from" in arguments:
            continue
        sources = arguments.split()[:-1]
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: no such file"
            files = [source] if (ROOT / source).is_file() else \
                [str(p.relative_to(ROOT)) for p in (ROOT / source).rglob("*") if p.is_file()
                 and "__pycache__" not in p.parts]
            for f in files:
                assert not ignored(f, patterns), f"{f} is COPYed but excluded by .dockerignore"


@pytest.mark.parametrize("script", ["docker/entrypoint.sh", "scripts/model-sync.sh", "kubernetes/generate.sh"])
def test_shellcheck(script):
    if not shutil.which("shellcheck"):
        pytest.skip("shellcheck is not installed (apt-get install shellcheck)")
    result = run(["shellcheck", ROOT / script])
    assert result.returncode == 0, result.stdout


def test_package_resolved_is_committed_and_current(tmp_path):
    """Every build resolves the same versions: Package.resolved is in git, the image copies it
    and resolves with --force-resolved-versions, and it is not stale against Package.swift."""
    tracked = run(["git", "-C", ROOT, "ls-files", "--error-unmatch", "Package.resolved"])
    assert tracked.returncode == 0, "Package.resolved is not committed"
    ins = instructions()
    assert ("COPY", "Package.swift Package.resolved ./") in ins
    assert ("RUN", "swift package resolve --force-resolved-versions") in ins
    swift = shutil.which("swift")
    if not swift:
        pytest.skip("no Swift toolchain on PATH")
    result = run([swift, "package", "--package-path", ROOT, "--scratch-path", tmp_path / "scratch",
                  "resolve", "--force-resolved-versions"], timeout=300)
    assert result.returncode == 0, \
        "Package.resolved is out of date (run `swift package resolve` and commit it):\n" + result.stderr


def test_runtime_install_has_python_for_bookworm_slim():
    """debian:bookworm-slim has no python3: `install-deps.sh --runtime` must install it (and venv)."""
    text = (ROOT / "scripts/install-deps.sh").read_text()
    runtime = re.search(r'mode" = runtime \]; then\s+apt_packages=\(([^)]*)\)', text)
    assert runtime, "no runtime apt_packages list in scripts/install-deps.sh"
    packages = runtime.group(1).split()
    for package in ("nginx", "libfcgi0ldbl", "curl", "python3", "python3-venv"):
        assert package in packages, f"scripts/install-deps.sh --runtime does not install {package}"
