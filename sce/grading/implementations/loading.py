"""Finding the user's function: ``FILE.py:FUNCTION`` or ``package.module:FUNCTION``.

:func:`parse_spec` runs in sce's own process and only looks at the text and the
file system; :func:`load_function` imports the user's code, so it runs in the
child process (``worker``).
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import inspect
import linecache
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sce.errors import worded


class UnusableImplementation(ValueError):
    """The function cannot be found, loaded or called as configured: a usage error.

    ``message`` may name options (:func:`sce.errors.option`): ``str()`` words
    them as check_implementation's keywords, sce test as its flags."""

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""

    def __str__(self) -> str:
        return worded(self.message)


@dataclass(frozen=True)
class FunctionSpec:
    """Where the function lives: a file path or a module name, and the function's name."""

    text: str
    function: str
    path: str | None = None
    module: str | None = None


_DOTTED_NAME = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


def parse_spec(text: str) -> FunctionSpec:
    """Read ``FILE.py:FUNCTION`` or ``package.module:FUNCTION``; every problem is one line."""
    where, colon, function = text.rpartition(":")
    if not colon or not where or not function:
        raise UnusableImplementation(
            f"{text!r}: say which function to test, as FILE.py:FUNCTION or package.module:FUNCTION"
        )
    if not _DOTTED_NAME.match(function):
        raise UnusableImplementation(f"{text!r}: {function!r} is not a function name")
    if where.endswith(".py") or "/" in where or "\\" in where or Path(where).is_file():
        path = Path(where)
        if not path.exists():
            raise UnusableImplementation(f"{where}: no such file")
        if not path.is_file():
            raise UnusableImplementation(f"{where}: not a file; give a Python file, e.g. homework.py:softmax_loss")
        return FunctionSpec(text, function, path=str(path.resolve()))
    if not _DOTTED_NAME.match(where):
        raise UnusableImplementation(f"{where!r} is neither a .py file nor a module name")
    return FunctionSpec(text, function, module=where)


def load_function(spec: FunctionSpec) -> Callable[..., Any]:
    """Import the user's code and return the function (in the child process)."""
    module = _import_file(spec.path) if spec.path else _import_module(spec)
    where = Path(spec.path).name if spec.path else spec.module
    target: Any = module
    for part in spec.function.split("."):
        if not hasattr(target, part):
            raise UnusableImplementation(f"{where} has no function {spec.function!r}{_candidates(module)}")
        target = getattr(target, part)
    if not callable(target):
        raise UnusableImplementation(f"{where}: {spec.function} is a {type(target).__name__}, not a function")
    return target


def _candidates(module: Any) -> str:
    names = [
        name
        for name, value in vars(module).items()
        if inspect.isfunction(value) and value.__module__ == module.__name__ and not name.startswith("_")
    ]
    return f"; it defines {', '.join(names)}" if names else "; it defines no functions"


def _import_file(path: str) -> Any:
    name = "sce_user_" + re.sub(r"\W", "_", Path(path).stem)
    sys.path.insert(0, str(Path(path).parent))  # so that the file's own imports of its neighbours work
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise UnusableImplementation(f"{Path(path).name}: cannot be imported as Python")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except SyntaxError as error:
        raise UnusableImplementation(f"{Path(path).name}, line {error.lineno}: SyntaxError: {error.msg}") from None
    except BaseException as error:  # noqa: BLE001 - their module's top level may do anything
        raise UnusableImplementation(f"importing {Path(path).name} raised {describe_exception(error, path)}") from None
    return module


def _import_module(spec: FunctionSpec) -> Any:
    assert spec.module is not None
    try:
        return importlib.import_module(spec.module)
    except ModuleNotFoundError as error:
        if error.name and spec.module.startswith(error.name):
            raise UnusableImplementation(
                f"no module named {spec.module!r} "
                "(run sce test from the folder that holds it, or give FILE.py:FUNCTION)"
            ) from None
        raise UnusableImplementation(f"importing {spec.module} raised {describe_exception(error, None)}") from None
    except SyntaxError as error:
        raise UnusableImplementation(f"{error.filename}, line {error.lineno}: SyntaxError: {error.msg}") from None
    except BaseException as error:  # noqa: BLE001
        raise UnusableImplementation(f"importing {spec.module} raised {describe_exception(error, None)}") from None


def describe_exception(error: BaseException, user_file: str | None) -> str:
    """``ZeroDivisionError: division by zero (homework.py, line 12: return x / 0)``:
    the user's exception and the last line of *their* file it passed through."""
    if isinstance(error, SystemExit):
        text = f"sys.exit({error.code!r})" if error.code is not None else "sys.exit()"
    else:
        try:
            message = str(error).splitlines()[0] if str(error) else ""
        except Exception:  # noqa: BLE001 - their exception's __str__ may itself be broken
            message = "(its message cannot be shown)"
        text = f"{type(error).__name__}: {message}" if message else type(error).__name__
    # Walk the traceback by hand: extract_tb would read the source of every one of
    # a RecursionError's thousand frames.
    last: tuple[str, int] | None = None
    tb = error.__traceback__
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if _is_users(filename, user_file):
            last = (filename, tb.tb_lineno)
        tb = tb.tb_next
    if last is not None:
        line = linecache.getline(last[0], last[1]).strip()
        text += f" ({Path(last[0]).name}, line {last[1]}{': ' + line if line else ''})"
    return text


@functools.lru_cache(maxsize=256)
def _is_users(filename: str, user_file: str | None) -> bool:
    if user_file is not None:
        return Path(filename).resolve() == Path(user_file).resolve()
    # A module spec: any frame outside sce, the standard library and site-packages.
    here = str(Path(__file__).resolve().parent.parent)
    return not (
        filename.startswith(here)
        or "site-packages" in filename
        or filename.startswith(sys.prefix)
        or filename.startswith(sys.base_prefix)
        or filename.startswith("<")
    )
