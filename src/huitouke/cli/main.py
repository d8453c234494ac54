"""The `huitouke` command line: a thin layer over the library.

Each bounded context owns one module here (``cli/<context>_cmd.py``) exposing
``register(app)``; this module only assembles them and maps :class:`HuitoukeError` to
friendly text and exit codes. Commands print machine-readable output on stdout and human
progress/errors on stderr.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
from typing import Any

import typer

from huitouke.errors import HuitoukeError

app = typer.Typer(
    name="huitouke",
    help="回头客 huitouke — repurchase analytics, prediction, loyalty and reminders.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

#: Command modules, registered in this order; a module that is not there yet is skipped.
COMMAND_MODULES = (
    "huitouke.cli.import_cmd",
    "huitouke.cli.analytics_cmd",
    "huitouke.cli.report_cmd",
    "huitouke.cli.predict_cmd",
    "huitouke.cli.loyalty_cmd",
    "huitouke.cli.service_cmd",
    "huitouke.cli.journeys_cmd",
    "huitouke.cli.messaging_cmd",
    "huitouke.cli.admin_cmd",
    "huitouke.cli.users_cmd",
    "huitouke.cli.identity_cmd",
    "huitouke.cli.wecom_cmd",
    "huitouke.cli.snapshots_cmd",
    "huitouke.cli.scheduler_cmd",
    "huitouke.cli.connectors_cmd",
    "huitouke.cli.profiles_cmd",
)


def _fold_long_words_in_help() -> None:
    """Fold, never crop, help text that does not fit its column.

    Rich wraps at spaces and crops a "word" longer than the column with "…"; a Chinese
    sentence has no spaces, so at 80 columns the zh half of most option helps was cut off.
    Folding breaks such a run at the column edge instead (CJK text may break anywhere).
    """
    try:
        from rich.text import Text
        from typer import rich_utils
    except ImportError:  # no Rich: Click's plain help wraps long words itself
        return
    make = getattr(rich_utils, "_make_rich_text", None)
    if make is None or getattr(make, "_folds", False):
        return

    def folding(*args: Any, **kwargs: Any) -> Any:
        out = make(*args, **kwargs)
        if isinstance(out, Text):
            out.overflow = "fold"
        return out

    folding._folds = True  # type: ignore[attr-defined]
    rich_utils._make_rich_text = folding


_fold_long_words_in_help()

for _name in COMMAND_MODULES:
    try:
        _mod = importlib.import_module(_name)
    except ModuleNotFoundError as _exc:
        if _exc.name != _name:
            raise
        continue
    _mod.register(app)


def main(argv: list[str] | None = None) -> Any:
    """Entry point that turns huitouke errors into a message and an exit code."""
    try:
        return app(args=argv, standalone_mode=False)
    except HuitoukeError as exc:
        lang = _error_lang()
        label = "错误" if lang == "zh" else "error"
        typer.echo(f"{label} [{exc.code}]: {exc.localized(lang)}", err=True)
        for key, value in exc.details.items():
            typer.echo(f"  {key}: {value}", err=True)
        sys.exit(exc.exit_code)


def _error_lang() -> str:
    """The merchant's language for an error; from the environment when the settings
    themselves are what failed."""
    from huitouke.errors import ConfigError
    from huitouke.settings import get_settings

    try:
        return get_settings().lang
    except ConfigError:
        lang = os.environ.get("HUITOUKE_LANG", "zh")
        return lang if lang in ("zh", "en") else "zh"


def _exit_now(code: int) -> None:
    """Leave at once after an error, skipping interpreter teardown.

    Under load, Arrow's C++ thread pools can still be winding down while the interpreter
    finalises after an exception, which aborts the process ("terminate called without an
    active exception", exit 134) and hides the real exit code. Nothing is left to save on an
    error path, so flush what was printed and exit with the intended code.
    """
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)


def run() -> None:
    """Console-script entry point."""
    # Typer bundles its own Click: usage errors derive from typer's TyperException.
    from typer.exceptions import Abort, Exit, TyperException

    try:
        main()
    except Exit as exc:
        if exc.exit_code:
            _exit_now(exc.exit_code)
    except Abort:
        _exit_now(130)
    except TyperException as exc:
        show = getattr(exc, "show", None)
        if callable(show):
            show()
        else:
            typer.echo(str(exc), err=True)
        _exit_now(int(getattr(exc, "exit_code", 2)))
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if code:
            _exit_now(code)
        raise
