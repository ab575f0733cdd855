"""The value classes whose ``__init__`` is written out (``@dataclass(init=False)``, so that
mypyc compiles it) take and set every field, in the fields' order.

Such an ``__init__`` repeats the field list by hand; a field added to the class but not
to its ``__init__`` would leave instances without it (an AttributeError at first read,
far from the cause). This walks every gateway module and checks each such class against
its source (read from the ``.py`` file, so that it holds for the compiled core too): the
parameters are the fields in order, and the body assigns each field.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import inspect
import pkgutil
from pathlib import Path

import gateway

SOURCE = Path(__file__).resolve().parents[2]


def _written_out_classes() -> list[type]:
    found: list[type] = []
    for info in pkgutil.walk_packages(gateway.__path__, "gateway."):
        if info.name.endswith("__main__"):
            continue  # runs the command line
        module = importlib.import_module(info.name)
        for value in vars(module).values():
            if (
                inspect.isclass(value)
                and value.__module__ == module.__name__
                and dataclasses.is_dataclass(value)
                and not value.__dataclass_params__.init  # type: ignore[attr-defined]
                and "__init__" in vars(value)
            ):
                found.append(value)
    return found


def _init_of(cls: type) -> ast.FunctionDef:
    path = SOURCE / (cls.__module__.replace(".", "/") + ".py")
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ClassDef) and node.name == cls.__name__:
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and item.name == "__init__":
                    return item
    raise AssertionError(f"no __init__ for {cls.__qualname__} in {path}")


def _assigned(init: ast.FunctionDef) -> set[str]:
    """Names the body sets: ``self.x = ...`` or ``object.__setattr__(self, "x", ...)``."""
    names: set[str] = set()
    for node in ast.walk(init):
        if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            if isinstance(node.value, ast.Name) and node.value.id == "self":
                names.add(node.attr)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "__setattr__"
            and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant)
            and isinstance(node.args[1].value, str)
        ):
            names.add(node.args[1].value)
    return names


def test_written_out_inits_take_and_set_every_field() -> None:
    classes = _written_out_classes()
    names = {cls.__qualname__ for cls in classes}
    # the hot classes of the SIP core, the SDP model, the controller and the records
    assert {"Via", "NameAddr", "SessionDescription", "Call", "CallRecord", "RecordRow"} <= names
    for cls in classes:
        label = f"{cls.__module__}.{cls.__qualname__}"
        fields = [f.name for f in dataclasses.fields(cls) if f.init]
        init = _init_of(cls)
        parameters = [a.arg for a in [*init.args.args[1:], *init.args.kwonlyargs]]
        assert parameters == fields, label
        missing = set(fields) - _assigned(init)
        assert not missing, f"{label} never sets {sorted(missing)}"
