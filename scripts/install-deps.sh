#!/usr/bin/env bash
# Installs what vwfcgi needs, only what is missing (safe to run again and again).
#
#   scripts/install-deps.sh            everything to build and test: apt nginx libfcgi-dev
#                                      pkg-config wrk curl; .venv with vowpalwabbit, pytest, requests,
#                                      prometheus_client, kserve (the stock KServe SDK the Open
#                                      Inference Protocol tests drive; pinned)
#   scripts/install-deps.sh --runtime  only what the running service needs: apt nginx libfcgi0ldbl
#                                      curl python3 python3-venv; .venv with vowpalwabbit (used by
#                                      the Dockerfile, on debian:bookworm-slim which has no python3)
#
# Environment: VENV (default: <repo>/.venv), PYTHON (interpreter that creates the venv, default python3).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
mode=build
for arg in "$@"; do
    case "$arg" in
        --runtime) mode=runtime ;;
        --build|--all) mode=build ;;
        -h|--help) sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "install-deps: unknown argument '$arg' (use --runtime, or nothing)" >&2; exit 2 ;;
    esac
done

venv=${VENV:-$root/.venv}
python=${PYTHON:-python3}

say() { echo "install-deps: $*" >&2; }
die() { echo "install-deps: ERROR: $*" >&2; exit 1; }

if [ "$mode" = runtime ]; then
    apt_packages=(nginx libfcgi0ldbl curl python3 python3-venv)
    pip_packages=("vowpalwabbit>=9,<10")
else
    apt_packages=(nginx libfcgi-dev pkg-config wrk curl)
    # kserve: the stock SDK the Open Inference Protocol tests use (Tests/e2e/test_open_inference.py).
    # openapi-spec-validator: docs/openapi.yaml is checked as OpenAPI 3.1 (Tests/deploy/test_openapi.py).
    # numpy: the independent IPS/SNIPS computation of the offline evaluation tests (Tests/e2e/test_evaluate.py).
    # azure-*-personalizer: the two stock Personalizer SDKs the SPEC §9 tests drive unmodified (Tests/e2e/test_personalizer.py).
    pip_packages=("vowpalwabbit>=9,<10" pytest requests prometheus_client "kserve==0.21.0" "openapi-spec-validator==0.9.0"
                  "numpy==2.4.6" "azure-cognitiveservices-personalizer==0.1.1" "azure-ai-personalizer==1.0.0b1")
fi

# --- Debian packages -------------------------------------------------------
missing=()
for pkg in "${apt_packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$pkg")
    fi
done
if [ ${#missing[@]} -gt 0 ]; then
    command -v apt-get >/dev/null || die "missing Debian packages (${missing[*]}) and no apt-get here; install them by hand"
    sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null || die "missing Debian packages (${missing[*]}); run as root or install sudo"
        sudo=(sudo)
    fi
    say "apt-get install ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    "${sudo[@]}" apt-get update -qq || die "apt-get update failed (no network to the Debian mirror?)"
    # Debian's nginx package starts a system nginx on port 80 where an init system runs;
    # vwfcgi never uses it (it runs its own nginx with its own prefix and config).
    "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
        || die "apt-get install ${missing[*]} failed"
else
    say "Debian packages present: ${apt_packages[*]}"
fi

# --- Python venv with the VW engine ---------------------------------------
if [ ! -x "$venv/bin/python" ]; then
    command -v "$python" >/dev/null || die "no $python to create $venv (install python3, or set PYTHON)"
    say "creating $venv"
    if ! "$python" -m venv "$venv" 2>/dev/null; then
        rm -rf "$venv"
        # Debian's own python3 keeps venv/ensurepip in a separate package.
        if command -v apt-get >/dev/null && [ "$(id -u)" -eq 0 ]; then
            say "python3 -m venv failed; installing python3-venv"
            DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
                DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null \
                || die "apt-get install python3-venv failed"
        fi
        "$python" -m venv "$venv" || die "$python -m venv $venv failed"
    fi
fi

# Only ask PyPI when something is missing: pip's resolver checks the specifiers locally.
need=()
for spec in "${pip_packages[@]}"; do
    if ! "$venv/bin/python" - "$spec" <<'PY' 2>/dev/null
import sys
from importlib import metadata
spec = sys.argv[1]
name, _, pinned = spec.partition("==")
if pinned:
    sys.exit(0 if metadata.version(name) == pinned else 1)  # raises when missing
name, _, rest = spec.partition(">=")
version = metadata.version(name)  # raises when missing
if rest:
    low, _, high = rest.partition(",<")
    major = int(version.split(".")[0])
    if major < int(low.split(".")[0]) or (high and major >= int(high.split(".")[0])):
        sys.exit(1)
PY
    then
        need+=("$spec")
    fi
done
if [ ${#need[@]} -gt 0 ]; then
    say "pip install ${need[*]} into $venv"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check "${need[@]}" \
        || die "pip install ${need[*]} failed (no network to PyPI?)"
else
    say "Python packages present in $venv: ${pip_packages[*]}"
fi

# The engine must really load: a broken wheel would only show up when vwfcgi starts vw.
"$venv/bin/python" -c 'import vowpalwabbit, pylibvw' \
    || die "vowpalwabbit is installed in $venv but does not import"
say "ok ($mode)"
