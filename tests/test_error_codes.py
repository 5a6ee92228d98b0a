"""Guard: every refusal of the domain (core, members, ledger, wallet) is a coded DomainError with a stable,
documented code and a translatable message, so the next English f-string or catch-all "invalid" code
fails here rather than at the API. Reads the source (AST); no database."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("core", "members", "ledger", "wallet", "flows")
DOCS = ROOT / "docs" / "errors.md"
ERRORS_MODULE = "core/errors.py"
CODE = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")
# Forms of the admin build Django's own ValidationErrors (their messages and codes are Django's).
PLAIN_VALIDATION_ERROR_ALLOWED = {"admin.py", "forms.py"}  # form fields speak Django's form protocol


def _sources() -> list[tuple[str, str]]:
    """(path relative to the project, text) of every module of the domain packages but migrations."""
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" not in path.parts:
                found.append((str(path.relative_to(ROOT)), path.read_text(encoding="utf-8")))
    return found


def _name(func: ast.expr) -> str:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return ""


def _documented_codes() -> set[str]:
    codes = set()
    for line in DOCS.read_text(encoding="utf-8").splitlines():
        if line.startswith("| `"):
            first_cell = line.split("|")[1]
            codes.update(re.findall(r"`([a-z0-9_]+)`", first_cell))
    return codes


def _is_translated(node: ast.expr) -> bool:
    """A message is gettext of a literal (`_("…")`), or a message handed through by name (a parameter
    holding one), or a choice between such (`message or _("…")`); never an f-string, a %-formatted or
    concatenated string, or an untranslated literal."""
    if isinstance(node, ast.Call) and _name(node.func) in ("_", "gettext_lazy", "gettext", "pgettext_lazy"):
        return all(isinstance(arg, ast.Constant) and isinstance(arg.value, str) for arg in node.args)
    if isinstance(node, ast.Name | ast.Attribute):
        return True
    if isinstance(node, ast.BoolOp):
        return all(_is_translated(value) for value in node.values)
    return False


def _error_classes(trees: list[ast.Module]) -> set[str]:
    """DomainError and the classes derived from it (ledger's LedgerError family), by name."""
    found = {"DomainError"}
    classes = [node for tree in trees for node in ast.walk(tree) if isinstance(node, ast.ClassDef)]
    while True:
        more = {c.name for c in classes if any(_name(base) in found for base in c.bases)} - found
        if not more:
            return found
        found |= more


def _violations(sources: list[tuple[str, str]]) -> tuple[list[str], set[str]]:
    """What breaks the rules in these modules, and every code they raise."""
    problems: list[str] = []
    used: set[str] = set()
    trees = [(rel, ast.parse(text, filename=rel)) for rel, text in sources]
    error_classes = _error_classes([tree for _rel, tree in trees])
    for rel, tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                # DomainError subclasses (ledger's) carry their code as default_code.
                for stmt in node.body:
                    if (
                        isinstance(stmt, ast.Assign)
                        and any(isinstance(t, ast.Name) and t.id == "default_code" for t in stmt.targets)
                        and isinstance(stmt.value, ast.Constant)
                        and node.name != "DomainError"
                    ):
                        used.add(stmt.value.value)
            if isinstance(node, ast.FunctionDef) and node.name == "_fail":
                problems.append(f"{rel}:{node.lineno}: a private _fail helper; raise core.errors.fail(...) instead")
            if (
                isinstance(node, ast.Raise)
                and isinstance(node.exc, ast.Call)
                and _name(node.exc.func) == "ValidationError"
                and Path(rel).name not in PLAIN_VALIDATION_ERROR_ALLOWED
            ):
                problems.append(f"{rel}:{node.lineno}: plain ValidationError raised; use core.errors.fail")
            if not isinstance(node, ast.Call):
                continue
            name = _name(node.func)
            where = f"{rel}:{node.lineno}"
            if name in error_classes - {"DomainError"}:
                # A subclass carries its family's code (default_code) unless the raise names a specific
                # one (`code="…"`); its message follows the same rule.
                message = node.args[1] if len(node.args) > 1 else None
                if message is not None and not _is_translated(message):
                    problems.append(f"{where}: the message of {name} is not gettext of a literal")
                code_node = next((k.value for k in node.keywords if k.arg == "code"), None)
                if code_node is not None:
                    if not (isinstance(code_node, ast.Constant) and isinstance(code_node.value, str)):
                        problems.append(f"{where}: the code is not a literal string")
                    elif code_node.value == "invalid" or not CODE.match(code_node.value):
                        problems.append(f"{where}: code {code_node.value!r} is not a specific snake_case code")
                    else:
                        used.add(code_node.value)
                continue
            if name == "fail" and len(node.args) >= 2:
                code_node, message = node.args[1], node.args[2] if len(node.args) > 2 else None
            elif name == "DomainError" and rel != ERRORS_MODULE:  # where fail() itself builds one
                code_node = next((k.value for k in node.keywords if k.arg == "code"), None)
                message = node.args[1] if len(node.args) > 1 else None
                if isinstance(code_node, ast.Attribute) and code_node.attr == "code":
                    continue  # re-raising another DomainError under a new field keeps its code and message
            else:
                continue
            if not (isinstance(code_node, ast.Constant) and isinstance(code_node.value, str)):
                problems.append(f"{where}: the code is not a literal string")
                continue
            code = code_node.value
            used.add(code)
            if code == "invalid" or not CODE.match(code):
                problems.append(f"{where}: code {code!r} is not a specific snake_case code")
            if message is None or not _is_translated(message):
                problems.append(f"{where}: the message of {code!r} is not gettext of a literal")
    return problems, used


def test_every_refusal_has_a_specific_code_and_a_translatable_message():
    problems, _used = _violations(_sources())
    assert not problems, "\n".join(problems)


def test_every_code_raised_is_listed_in_docs_errors_md():
    _problems, used = _violations(_sources())
    assert used, "the scan found no codes: is the source walk broken?"
    missing = sorted(used - _documented_codes())
    assert not missing, f"codes raised but not documented in docs/errors.md: {missing}"


def test_docs_list_no_code_that_nothing_raises():
    _problems, used = _violations(_sources())
    stale = sorted(_documented_codes() - used)
    assert not stale, f"docs/errors.md lists codes nothing raises: {stale}"


@pytest.mark.parametrize(
    "source, expected",
    [
        ('raise fail("x", "invalid", _("Bad."))', "not a specific"),
        ('raise fail("x", "BadCode", _("Bad."))', "not a specific"),
        ('raise fail("x", "x_bad", _("Bad %s." % y))', "not gettext"),
        ('raise fail("x", code, _("Bad."))', "not a literal"),
        ('raise fail("x", "x_bad", f"Bad {y}.")', "not gettext"),
        ('raise fail("x", "x_bad", "Bad.")', "not gettext"),
        ('raise DomainError("x", "Bad.", code="x_bad")', "not gettext"),
        ('raise ValidationError("Bad.")', "plain ValidationError"),
        ('raise InvalidLeg("unit", f"{unit} is not a unit.")', "message of InvalidLeg"),
        ('raise InvalidLeg("unit", _("Bad."), code="Bad")', "not a specific"),
        ('raise InvalidLeg("unit", _("Bad."), code=code)', "not a literal"),
        ("def _fail(field, message, code='invalid'):\n        pass", "private _fail"),
    ],
)
def test_the_guard_catches_each_kind_of_offence(source, expected):
    """The guard is not vacuous: each offence, in a module it scans, is reported."""
    errors = "class DomainError(Exception):\n    pass\nclass LedgerError(DomainError):\n    pass\nclass InvalidLeg(LedgerError):\n    pass\n"
    problems, _used = _violations([("wallet/services/probe.py", f"{errors}def probe():\n    {source}\n")])
    assert any(expected in p for p in problems), problems


def test_the_guard_accepts_the_house_style():
    source = (
        "def probe(message=None):\n"
        '    raise fail("amount", "amount_zero", message or _("The amount must be greater than %(x)s."), x=yuan(1))\n'
    )
    assert _violations([("wallet/services/probe.py", source)]) == ([], {"amount_zero"})


def test_a_specific_code_named_by_a_ledger_raise_counts_as_raised():
    errors = (
        "class DomainError(Exception):\n    pass\nclass InvalidLeg(DomainError):\n    default_code = 'invalid_leg'\n"
    )
    source = f'{errors}def probe():\n    raise InvalidLeg("legs", _("An entry needs at least two legs."), code="legs_too_few")\n'
    assert _violations([("ledger/probe.py", source)]) == ([], {"invalid_leg", "legs_too_few"})
