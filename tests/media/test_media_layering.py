"""gateway/media sits below the protocols: it imports only the neutral model and itself.

import-linter holds the package-wide contracts; this names the offending module and line
when a media module reaches up (an rtpengine engine must be able to replace the relay
without dragging SIP or the controller along).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import gateway.media

MEDIA = Path(gateway.media.__file__).parent
ALLOWED = ("gateway.media", "gateway.model")


def gateway_imports(path: Path) -> list[tuple[int, str]]:
    """Every ``gateway`` module a file imports, with its line (TYPE_CHECKING ones too)."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "gateway":
                found += [(node.lineno, f"gateway.{alias.name}") for alias in node.names]
            else:
                found.append((node.lineno, node.module))
        elif isinstance(node, ast.ImportFrom) and node.level > 0:
            found.append((node.lineno, "." * node.level + (node.module or "")))
    return [(line, name) for line, name in found if name.split(".")[0] in ("gateway", "")]


@pytest.mark.parametrize("path", sorted(MEDIA.glob("*.py")), ids=lambda p: p.name)
def test_media_modules_import_only_the_model_and_media(path: Path) -> None:
    wrong = [
        f"{path.name}:{line}: {name}"
        for line, name in gateway_imports(path)
        if not any(name == ok or name.startswith(ok + ".") for ok in ALLOWED)
    ]
    assert wrong == []
