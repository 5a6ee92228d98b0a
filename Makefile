# Two commands: `make run` (the product on embedded defaults with demo data) and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1:8000

.PHONY: run test venv lint requirements benchmark

$(VENV)/.installed: requirements/dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements/dev.txt
	touch $@

venv: $(VENV)/.installed

run: venv
	$(PY) manage.py migrate --noinput
	$(PY) manage.py load_demo_data
	$(PY) manage.py runserver $(HOST)

test: venv
	$(PY) -m pytest $(PYTEST_ARGS)

lint: venv
	$(VENV)/bin/ruff check .

requirements: venv
	cd requirements && ../$(VENV)/bin/pip-compile -q --strip-extras base.in -o base.txt \
		&& ../$(VENV)/bin/pip-compile -q --strip-extras dev.in -o dev.txt \
		&& ../$(VENV)/bin/pip-compile -q --strip-extras prod.in -o prod.txt

benchmark: venv
	$(PY) benchmarks/ledger_throughput.py --seconds 5
