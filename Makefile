# Wharf — make install | demo | test | bench | lint
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
APT_PACKAGES := busybox-static runc crun iproute2 nftables git skopeo umoci docker-registry \
	libseccomp2 tmux debootstrap apache2-utils python3-venv curl procps util-linux tini \
	buildah docker-compose openssl
STAMP := $(VENV)/.installed

.PHONY: install demo test bench lint clean

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	@# peers used by tests (runc, skopeo, buildah, docker CLI, docker-compose...) come from Debian;
	@# policy-rc.d keeps their packages from starting services (dockerd) on this machine
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	command -v docker >/dev/null || missing="$$missing docker.io"; \
	if [ -n "$$missing" ]; then \
		echo "apt: installing$$missing"; \
		made=""; [ -e /usr/sbin/policy-rc.d ] || { printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; \
			chmod +x /usr/sbin/policy-rc.d; made=1; }; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; rc=$$?; \
		[ -z "$$made" ] || rm -f /usr/sbin/policy-rc.d; [ $$rc -eq 0 ] || exit $$rc; \
	fi
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	@# compat: a plain path in a .pth; the default editable finder imports pathlib, re... in every `wharf` (~15 ms)
	$(PY) -m pip install -q -e '.[test]' --config-settings editable_mode=compat
	touch $(STAMP)

demo: install
	$(VENV)/bin/python examples/demo.py

test: install
	$(VENV)/bin/pytest -q -n 2 --dist loadgroup tests

bench: install
	@for b in bench/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

lint: install
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) build *.egg-info
