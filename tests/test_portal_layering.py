"""Guard: the portal reaches the ledger only through selectors (and the wallet), never its internals, and
does not price consumption lines itself. Reads the source (AST); no database."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PORTAL = ROOT / "portal"
FORBIDDEN = {"ledger.services", "ledger.models", "ledger.money"}


def _portal_modules() -> list[tuple[str, str]]:
    return [
        (str(path.relative_to(ROOT)), path.read_text(encoding="utf-8"))
        for path in sorted(PORTAL.rglob("*.py"))
        if "migrations" not in path.parts
    ]


def _forbidden_imports(rel: str, text: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(text, filename=rel)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from ledger import services` names the module too.
            names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        else:
            continue
        for name in names:
            if any(name == bad or name.startswith(bad + ".") for bad in FORBIDDEN):
                found.append(f"{rel}:{node.lineno}: imports {name}")
    return found


def test_portal_imports_no_ledger_internals():
    modules = _portal_modules()
    assert any(rel.endswith("forms.py") for rel, _text in modules), "the walk found no portal modules"
    problems = [problem for rel, text in modules for problem in _forbidden_imports(rel, text)]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    "source",
    [
        "from ledger.services import CNY",
        "from ledger import services as ledger",
        "import ledger.models",
        "from ledger.models import Account",
        "from ledger.money import parse_fen",
    ],
)
def test_the_guard_catches_each_form_of_import(source):
    assert _forbidden_imports("portal/probe.py", source)


def test_the_guard_allows_selectors():
    assert _forbidden_imports("portal/probe.py", "from ledger import selectors as ledger_selectors") == []


def test_the_consumption_form_does_not_price_lines():
    """The price rule lives in the wallet (wallet.services.price_line, used by funded_item): the form
    calls neither the unit price nor multiplies by the quantity to fund a line."""
    tree = ast.parse((PORTAL / "forms.py").read_text(encoding="utf-8"))
    form = next(n for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and n.name == "ConsumptionForm")
    item = next(n for n in form.body if isinstance(n, ast.FunctionDef) and n.name == "item")
    called = {n.func.attr for n in ast.walk(item) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)}
    assert "funded_item" in called
    assert not [n for n in ast.walk(item) if isinstance(n, ast.BinOp | ast.AugAssign)], "the form computes amounts"
