# hvlm — `make demo` runs the whole job on the lab; `make test` runs every test.
# Both create .venv and install what they need (system packages too, when run as root).
VENV    ?= .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
LABDIR  ?= .lab-demo
# Debian packages: Samba AD DC (the lab's directory + KDC), Kerberos clients, gssapi's headers;
# jq for tests/gitops (it runs the GitHub example's comment step, whose filters are jq's).
APT_PACKAGES := samba samba-ad-dc samba-ad-provision winbind krb5-user ldb-tools smbclient \
                libkrb5-dev gcc iproute2 util-linux jq

.PHONY: all venv system-deps test lint demo bench clean
all: test

system-deps:
	@if ! command -v samba >/dev/null 2>&1 || ! command -v krb5-config >/dev/null 2>&1 \
	    || ! command -v jq >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	      --no-install-recommends $(APT_PACKAGES) >/dev/null; \
	  else echo "run as root, or: sudo apt-get install $(APT_PACKAGES)" >&2; exit 1; fi; \
	fi

$(STAMP): pyproject.toml | system-deps
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[lab,dev,kerberos]'
	touch $(STAMP)

venv: $(STAMP)

test: venv
	tests/isolated.sh $(PY) -m pytest -q

# Each tool exits non-zero on a finding; make stops at the first that does.
lint: venv
	$(VENV)/bin/ruff check hvlm hvlm_lab tests bench
	$(VENV)/bin/mypy --strict hvlm hvlm_lab
	$(VENV)/bin/lint-imports --no-cache

demo: venv
	tests/isolated.sh bash examples/demo.sh $(LABDIR)

bench: venv
	$(VENV)/bin/pip install -q -e '.[bench]'
	tests/isolated.sh $(PY) -m bench

clean:
	rm -rf $(VENV) $(LABDIR) .pytest_cache .mypy_cache .ruff_cache
