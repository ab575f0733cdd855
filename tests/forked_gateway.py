"""What a forked test gateway runs: ``vrgw run`` after its imports (harness.start_gateway).

The harness's gateways are forked by multiprocessing's fork server, one per pytest
worker, which has imported the gateway once; each fork then does what ``python -m
gateway run`` does once its imports are done. The fork imports this module when its
task arrives, so it imports nothing that the server has not (harness.py would bring
pytest in). A test's ``env`` becomes the fork's environment before the gateway reads
any of it (the gateway reads none at import); what Python itself reads at start
(``PYTHON*``) is the worker's, as the fork server started with it.
"""

from __future__ import annotations

import os
import sys

from gateway import cli


def run(argv: list[str], log_path: str, env: dict[str, str], cwd: str) -> None:
    """Run ``vrgw`` with ``argv`` as its own session, its output in ``log_path``, in ``env``
    and ``cwd``, as ``subprocess.Popen(start_new_session=True)`` would have started it."""
    os.setsid()
    log = os.open(log_path, os.O_WRONLY | os.O_APPEND)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    sys.argv = [sys.executable, "-m", "gateway", *argv]
    # multiprocessing ends the process with this code (0 when the target just returns).
    sys.exit(cli.main(argv))
