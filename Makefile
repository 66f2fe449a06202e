# The two commands a fresh machine needs: `make studio` runs it, `make test` tests it.
.PHONY: studio test venv lock lint

venv:
	@scripts/bootstrap.sh

studio: venv
	.venv/bin/python manage.py studio

# Tests run against Postgres and Redis on 127.0.0.1 (tests/settings.py); PYTEST_ARGS narrows a run.
test: venv
	scripts/test.sh $(PYTEST_ARGS)

# What CI checks before the tests (.ci/run); `ruff format .` and `ruff check --fix .` mend most findings.
lint: venv
	.venv/bin/ruff format --check .
	.venv/bin/ruff check .

# requirements.lock: every package requirements.txt needs, pinned with its hashes, by pip-tools in a venv of its
# own (.lock-tools). torch is resolved, at the release requirements.txt names and through pip's configuration
# (which finds the CPU wheel), but left out of the file: bootstrap and the Dockerfile install it first, so that a
# GPU host can take a CUDA build. LOCK_ARGS passes more to pip-compile, e.g. LOCK_ARGS="--upgrade-package peft".
PIP_TOOLS_VERSION = 7.7.0
LOCK_TOOLS = .lock-tools/pip-tools-$(PIP_TOOLS_VERSION)

$(LOCK_TOOLS):
	rm -rf .lock-tools && python3 -m venv .lock-tools
	.lock-tools/bin/pip install --quiet --disable-pip-version-check pip-tools==$(PIP_TOOLS_VERSION)
	touch $@

lock: $(LOCK_TOOLS)
	CUSTOM_COMPILE_COMMAND="make lock" .lock-tools/bin/pip-compile --quiet --generate-hashes --strip-extras \
	  --no-emit-index-url --no-emit-find-links --no-emit-trusted-host --unsafe-package torch $(LOCK_ARGS) \
	  -o requirements.lock requirements.txt
	@if grep -qE '^(nvidia-|triton==)' requirements.lock; then \
	  echo "torch resolved to a CUDA build; let pip find the CPU wheel, e.g." \
	    'LOCK_ARGS="--extra-index-url https://download.pytorch.org/whl/cpu"' >&2; exit 1; fi
	echo "# torch: installed before this file by scripts/bootstrap.sh and the Dockerfile (requirements.txt says why)" \
	  >> requirements.lock
	echo "# made from requirements.txt sha256 $$(sha256sum requirements.txt | cut -d' ' -f1)" >> requirements.lock
