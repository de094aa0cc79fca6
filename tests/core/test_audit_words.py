"""Every action code the server writes to the audit log has a description in the
vocabulary (``AUDIT_ACTIONS`` in server.core.wording), so the audit viewer never shows a
raw code alone: a new ``audit.record`` with an undescribed code fails here."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from gatekeeper.doormodes import DoorModeKind
from hardware.protocol import Command
from server.alerts.service import TRANSITIONS
from server.core.wording import AUDIT_ACTIONS, audit_action
from server.devices.commands import ACCESS_POINT_COMMANDS
from server.people.service import CREDENTIALS

SERVER = Path(__file__).resolve().parents[2] / "server"
CODE = re.compile(r"^[a-z_]+(?:\.[a-z_]+)+$")
RECORD = re.compile(r"\baudit\.record\(")

# The f-string codes, by their source text, and the values they take.
FAMILIES: dict[str, list[str]] = {
    "f'access_point.{command.value}'": [f"access_point.{c.value}" for c in ACCESS_POINT_COMMANDS],
    "f'device.{command.value}'": [f"device.{c.value}" for c in Command],
    "f'alert.{action}'": [f"alert.{action}" for action in TRANSITIONS],
    "f'door_mode.{kind.value}.start'": [f"door_mode.{k.value}.start" for k in DoorModeKind],
    "f'door_mode.{row.kind.value}.lift'": [f"door_mode.{k.value}.lift" for k in DoorModeKind],
    "f'{model.__tablename__}.create'": [f"{m.__tablename__}.create" for m in CREDENTIALS.values()],
    "f'{model.__tablename__}.update'": [f"{m.__tablename__}.update" for m in CREDENTIALS.values()],
}


def _codes_in(node: ast.AST) -> set[str]:
    return {
        n.value
        for n in ast.walk(node)
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and CODE.match(n.value)
    }


def _assigned(function: ast.AST, name: str) -> set[str]:
    """The codes a function assigns to a local ``name`` (``a = "x.y"``, ``a, b = "x.y", ...``)."""
    found: set[str] = set()
    for node in ast.walk(function):
        if not isinstance(node, ast.Assign):
            continue
        for target in node.targets:
            if isinstance(target, ast.Name) and target.id == name:
                found |= _codes_in(node.value)
            elif isinstance(target, ast.Tuple) and isinstance(node.value, ast.Tuple):
                for element, value in zip(target.elts, node.value.elts, strict=False):
                    if isinstance(element, ast.Name) and element.id == name:
                        found |= _codes_in(value)
    return found


def _passed(tree: ast.Module, function: ast.FunctionDef, name: str) -> set[str]:
    """The codes the module's calls of ``function`` pass as its parameter ``name``."""
    params = [a.arg for a in function.args.posonlyargs + function.args.args]
    index = params.index(name)
    found: set[str] = set()
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
            continue
        if node.func.id != function.name:
            continue
        given = [k.value for k in node.keywords if k.arg == name]
        if index < len(node.args):
            given.append(node.args[index])
        for value in given:
            found |= _codes_in(value) if isinstance(value, ast.Constant) else {"?"}
    return found


def _action(call: ast.Call) -> ast.expr | None:
    if len(call.args) > 1:
        return call.args[1]
    return next((k.value for k in call.keywords if k.arg == "action"), None)


def _resolve(tree: ast.Module, function: ast.FunctionDef, arg: ast.expr | None) -> set[str]:
    """The codes an action argument can hold ("?" where one part cannot be worked out)."""
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        return {arg.value} if CODE.match(arg.value) else {"?"}
    if isinstance(arg, ast.JoinedStr):
        return set(FAMILIES.get(ast.unparse(arg), ["?"]))
    if isinstance(arg, ast.IfExp):
        return _resolve(tree, function, arg.body) | _resolve(tree, function, arg.orelse)
    if isinstance(arg, ast.Name):
        params = [a.arg for a in function.args.posonlyargs + function.args.args]
        if arg.id in params:
            return _passed(tree, function, arg.id)
        return _assigned(function, arg.id)
    return {"?"}


def recorded_codes() -> tuple[set[str], list[str], int]:
    """The codes ``audit.record`` is called with anywhere in server/, the calls whose code
    could not be worked out (``path:line: source``), and how many calls were read."""
    codes: set[str] = set()
    unresolved: list[str] = []
    calls = 0
    for path in sorted(SERVER.rglob("*.py")):
        source = path.read_text(encoding="utf-8")
        if not RECORD.search(source):
            continue
        tree = ast.parse(source)
        functions = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)]
        for function in functions:
            for call in ast.walk(function):
                if not (
                    isinstance(call, ast.Call)
                    and isinstance(call.func, ast.Attribute)
                    and call.func.attr == "record"
                    and isinstance(call.func.value, ast.Name)
                    and call.func.value.id == "audit"
                ):
                    continue
                inner = [f for f in functions if f is not function and call in ast.walk(f)]
                if inner:  # counted in the innermost function
                    continue
                calls += 1
                arg = _action(call)
                where = f"{path.relative_to(SERVER.parent)}:{call.lineno}"
                found = _resolve(tree, function, arg)
                if not found or "?" in found:
                    unresolved.append(f"{where}: {ast.unparse(arg) if arg else '(no action)'}")
                codes |= found - {"?"}
    return codes, unresolved, calls


def test_every_recorded_action_is_found() -> None:
    codes, unresolved, calls = recorded_codes()
    written = sum(len(RECORD.findall(p.read_text(encoding="utf-8"))) for p in SERVER.rglob("*.py"))
    assert calls == written, "an audit.record call the scan did not read"
    assert unresolved == [], "audit.record with a code this test cannot work out: " + (
        "give a literal, or teach FAMILIES / the scan the new form"
    )
    assert len(codes) > 80


def test_every_recorded_action_has_a_description() -> None:
    codes, _unresolved, _calls = recorded_codes()
    missing = sorted(codes - AUDIT_ACTIONS.keys())
    assert missing == [], "describe these audit actions in AUDIT_ACTIONS (server/core/wording.py)"


def test_the_descriptions_are_for_recorded_actions_and_unknown_codes_show_as_they_are(
    app,
) -> None:
    codes, _unresolved, _calls = recorded_codes()
    assert sorted(AUDIT_ACTIONS.keys() - codes) == []
    with app.test_request_context(headers={"Accept-Language": "zh-CN"}):
        assert audit_action("person.create") == "新建人员"
        assert audit_action("no_such.action") == "no_such.action"
    with app.test_request_context(headers={"Accept-Language": "en"}):
        assert audit_action("person.create") == "person created"
