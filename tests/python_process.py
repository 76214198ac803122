"""A new Python process for the tests that need one (imports, environment
variables, JAX settings that only a fresh process shows)."""

import os
import subprocess
import sys


def run_python(script: str, *arguments: str, **environment: str | None):
    """``python -c script arguments...`` with ``os.environ`` updated by
    ``environment`` (a ``None`` value removes the variable); a failed process
    fails the test with its stderr's tail, as the other tests' processes do.
    Returns the `subprocess.CompletedProcess` (text stdout, stderr)."""
    env = dict(os.environ)
    for name, value in environment.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    done = subprocess.run(
        [sys.executable, "-c", script, *arguments],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done
