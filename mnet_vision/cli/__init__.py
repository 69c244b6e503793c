"""The command-line tools, one module per tool, each a Hydra app (``main``) whose defaults live in
``conf/<tool>.yaml``. ``python tools/<tool>.py key=value ...`` and the installed ``mnet-<tool>``
entry points (pyproject.toml's ``[project.scripts]``) both run these ``main`` functions.

The top of the dependency stack: a tool parses its config, calls one library function by keyword,
prints or writes; nothing in the package imports this one. Imports nothing here, so ``mnet-detect``
loads no Lightning and no training code.
"""


def skipped_note(skipped: list) -> str:
    """The end of a tool's summary line: ``"; skipped N unreadable"``, or nothing when none was."""
    return f"; skipped {len(skipped)} unreadable" if skipped else ""
