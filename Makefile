# Two commands: `make run` (the product on embedded defaults with demo data) and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1:8000

.PHONY: run test venv lint requirements benchmark messages catalog

$(VENV)/.installed: requirements/dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements/dev.txt
	touch $@

venv: $(VENV)/.installed

# The Chinese catalog (locale/zh_Hans/LC_MESSAGES/django.po) is committed; its .mo is built here, in Python.
catalog: venv
	$(PY) manage.py compile_catalog

# After adding or changing user-facing strings: extract them (needs GNU gettext), translate the new
# entries in the .po, run again. tests/test_i18n.py fails while any is missing or untranslated.
messages: venv
	$(PY) manage.py update_catalog

run: catalog
	$(PY) manage.py migrate --noinput
	$(PY) manage.py load_demo_data
	$(PY) manage.py runserver $(HOST)

# One worker per core (pytest-xdist), each test file on one worker: module-scoped fixtures (the demo data of
# tests/test_i18n.py) are built once. PYTEST_ARGS="-n 0" runs in one process.
test: catalog
	$(PY) -m pytest -n auto --dist loadfile $(PYTEST_ARGS)

lint: venv
	$(VENV)/bin/ruff check .

requirements: venv
	cd requirements && ../$(VENV)/bin/pip-compile -q --strip-extras base.in -o base.txt \
		&& ../$(VENV)/bin/pip-compile -q --strip-extras dev.in -o dev.txt \
		&& ../$(VENV)/bin/pip-compile -q --strip-extras prod.in -o prod.txt

benchmark: venv
	$(PY) benchmarks/ledger_throughput.py --seconds 5
