"""Every command shown in docs/ (but docs/inference.md) runs as written: tests/test_readme_commands.py's plans and
sandbox, in a sandbox of this file's own, so that pytest-xdist runs it beside README.md's commands. (Python blocks of
every document run there.)"""

import pytest
from test_readme_commands import (
    PLANS,
    SHELL,
    _runnable,
    run_shell_command,
    sandbox,  # noqa: F401  (a module-scoped fixture: this file gets its own)
)


@pytest.mark.parametrize(("command", "plan"), _runnable(PLANS, SHELL, readme=False))
def test_documented_shell_command_runs(command, plan, sandbox):  # noqa: F811
    run_shell_command(command, plan, sandbox)

