"""Mangled dialplans and secrets files: only DialplanError escapes, located and secret-free."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.dialplan import Dialplan, DialplanError, load_dialplan

ROOT = Path(__file__).resolve().parents[2]
DIALPLAN = (ROOT / "dialplans" / "example.yaml").read_text()
SECRETS = (ROOT / "dialplans" / "example.secrets").read_text()
PASSWORDS = [
    line.partition(":")[2].strip()
    for line in SECRETS.splitlines()
    if line.strip() and not line.startswith("#")
]
# Characters that matter to YAML and to the secrets format, plus some plain ones.
NOISE = st.text(alphabet=":-[]{}#&*!|>'\"%@`,? \t\nabc019", max_size=12)


@st.composite
def mangled(draw: st.DrawFn, text: str) -> str:
    """``text`` with one line deleted, duplicated or replaced, or noise inserted."""
    lines = text.splitlines(keepends=True)
    index = draw(st.integers(0, len(lines) - 1))
    action = draw(st.sampled_from(["delete", "duplicate", "replace", "insert", "truncate"]))
    if action == "delete":
        del lines[index]
    elif action == "duplicate":
        lines.insert(index, lines[index])
    elif action == "replace":
        lines[index] = draw(NOISE) + "\n"
    elif action == "insert":
        at = draw(st.integers(0, len(lines[index])))
        lines[index] = lines[index][:at] + draw(NOISE) + lines[index][at:]
    else:
        lines = lines[:index]
    return "".join(lines)


def _load(tmp_path: Path, dialplan: str, secrets: str) -> Dialplan | DialplanError:
    (tmp_path / "example.secrets").write_text(secrets)
    path = tmp_path / "example.yaml"
    path.write_text(dialplan)
    try:
        return load_dialplan(path, env={})
    except DialplanError as error:
        return error


def _check_error(tmp_path: Path, error: DialplanError, dialplan: str, secrets: str) -> None:
    sizes = {
        str(tmp_path / "example.yaml"): dialplan.count("\n") + 1,
        str(tmp_path / "example.secrets"): secrets.count("\n") + 1,
    }
    for problem in error.problems:
        assert problem.file in sizes
        assert problem.line is not None and 1 <= problem.line <= sizes[problem.file]
        for password in PASSWORDS:
            assert password not in str(problem)


_settings = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@_settings
@given(dialplan=mangled(DIALPLAN))
def test_mangled_dialplan(tmp_path: Path, dialplan: str) -> None:
    outcome = _load(tmp_path, dialplan, SECRETS)
    if isinstance(outcome, DialplanError):
        _check_error(tmp_path, outcome, dialplan, SECRETS)


@_settings
@given(secrets=mangled(SECRETS))
def test_mangled_secrets_file(tmp_path: Path, secrets: str) -> None:
    outcome = _load(tmp_path, DIALPLAN, secrets)
    if isinstance(outcome, DialplanError):
        _check_error(tmp_path, outcome, DIALPLAN, secrets)
    else:
        # Whatever survived the mangling is taken verbatim, never invented.
        for kiosk in outcome.kiosks.values():
            assert kiosk.username is not None
            assert outcome.secret_for(kiosk.username)
