"""The child process that runs the user's function: ``python -m sce.grading.implementations.worker R W``.

It talks to sce over two pipes (file descriptors R and W, pickled messages);
its stdin points at /dev/null and its stdout and stderr at files sce reads after
each case, so that the user's prints cannot corrupt sce's output (``--format
json``) or the conversation, and are shown beside the case that printed them. Nothing
the user's code does here (raise, hang, sys.exit, os._exit, crash) can take
sce down: sce only waits, with a time limit, for the next message.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import re
import sys
import warnings
from collections.abc import Callable, Mapping
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np

from sce.errors import option
from sce.grading.implementations.loading import FunctionSpec, UnusableImplementation, describe_exception, load_function

#: The second argument of the function in each calling convention, as said to the user.
SECOND_ARGUMENT = {
    ("batch", False): "labels",
    ("row", False): "label",
    ("batch", True): "targets",
    ("row", True): "targets",
}
#: The largest file the child may write (its stdout and stderr are files, emptied after each case).
MAX_FILE_BYTES = 1 << 30
_IMPORTS = re.compile(r"^\s*(?:import|from)\s+(torch|jax)\b", re.MULTILINE)


def source_file(fn: Callable[..., Any]) -> str | None:
    try:
        return inspect.getsourcefile(fn)
    except TypeError:  # a builtin or a C extension
        return None


def detect_framework(fn: Callable[..., Any]) -> str:
    """torch or jax when the function's file imports it, else numpy."""
    path = source_file(fn)
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace") if path else ""
    except OSError:
        text = ""
    found = _IMPORTS.search(text)
    return found.group(1) if found else "numpy"


def prepare_framework(framework: str) -> None:
    if framework == "numpy":
        return
    try:
        if framework == "jax":
            import jax

            jax.config.update("jax_enable_x64", True)  # else jax silently turns float64 inputs into float32
        else:
            import torch  # noqa: F401
    except ImportError:
        name = {"torch": "PyTorch", "jax": "JAX"}[framework]
        raise UnusableImplementation(f"{option('framework', framework)}: {name} is not installed here") from None


def check_signature(fn: Callable[..., Any], convention: str, targets: bool, name: str) -> None:
    """Refuse a function that cannot be called as f(logits, second)."""
    second = SECOND_ARGUMENT[(convention, targets)]
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return  # a builtin: find out when calling
    try:
        signature.bind(None, None)
    except TypeError:
        raise UnusableImplementation(
            f"{name} takes {_parameters(signature)}; with {option('convention', convention)} sce calls "
            f"{name}(logits, {second}) with 2 arguments"
        ) from None


def _parameters(signature: inspect.Signature) -> str:
    return str(signature.replace(return_annotation=inspect.Signature.empty)) if signature.parameters else "no arguments"


def to_framework(array: np.ndarray, framework: str) -> Any:
    if framework == "torch":
        import torch

        return torch.from_numpy(array)  # shares memory, so writing into it shows in `array`
    if framework == "jax":
        import jax.numpy as jnp

        return jnp.asarray(array)
    return array


def describe_value(value: Any, largest: int) -> dict[str, Any]:
    """A returned value as sce can receive it: an array (copied, so that later
    writes by the user do not change it), or what it was instead."""
    if value is None:
        return {"kind": "other", "type": "None"}
    if hasattr(value, "detach"):  # a torch tensor, perhaps requiring grad or on a GPU
        if "bfloat16" in str(getattr(value, "dtype", "")):  # which .numpy() refuses
            return {"kind": "other", "type": "bfloat16 values"}
        value = value.detach().cpu().numpy()
    if not isinstance(value, (np.ndarray, np.generic, int, float, list, tuple)) and not hasattr(value, "__array__"):
        return {"kind": "other", "type": type(value).__name__}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            array = np.asarray(value)
    except (ValueError, TypeError):
        return {"kind": "other", "type": type(value).__name__}
    if array.dtype.name == "bfloat16":  # ml_dtypes' (kind V): judged nowhere here, said so
        return {"kind": "other", "type": "bfloat16 values"}
    if array.dtype.kind not in "fiub":
        return {"kind": "other", "type": f"array of {array.dtype}"}
    if array.size > largest:
        return {"kind": "too_large", "shape": array.shape}
    return {"kind": "array", "array": np.array(array, copy=True)}


def describe_return(value: Any, returns: str, largest: int) -> dict[str, Any]:
    if returns == "stages" and isinstance(value, Mapping):
        items = {key if isinstance(key, str) else repr(key): describe_value(v, largest) for key, v in value.items()}
        return {"kind": "stages", "items": items}
    if returns == "loss,grad" and isinstance(value, (tuple, list)) and len(value) == 2:
        return {"kind": "pair", "items": [describe_value(item, largest) for item in value]}
    if isinstance(value, tuple):
        return {"kind": "other", "type": f"a tuple of {len(value)}"}
    return describe_value(value, largest)


def run_case(fn: Callable[..., Any], request: dict[str, Any], framework: str, user_file: str | None) -> dict[str, Any]:
    """Call the function on one case (once, or once per row) and describe what came back."""
    logits, second = request["logits"], request["second"]
    if request["read_only"]:
        logits.flags.writeable = False
        second.flags.writeable = False
    before = (logits.copy(), second.copy())
    largest = 8 * logits.size + 64  # room for any honest answer; stops a runaway one from filling memory
    if request["returns"] == "stages":
        largest *= logits.shape[-1]  # a Jacobian, K×K per row
    if request["convention"] == "row":
        calls = [(logits[row], second[row]) for row in range(logits.shape[0])]
    else:
        calls = [(logits, second)]
    answers = []
    for row_logits, row_second in calls:
        try:
            answer = _call(fn, row_logits, row_second, framework)
        except BaseException as error:  # noqa: BLE001 - KeyboardInterrupt and SystemExit are theirs too
            described = describe_exception(error, user_file)
            return {
                "error": described,
                "read_only_violation": "is read-only" in described,
                "changed": _changed(before, logits, second),
            }
        try:
            answers.append(describe_return(answer, request["returns"], largest))
        except BaseException as error:  # noqa: BLE001 - an answer whose __array__ or __len__ raises
            return {
                "error": f"converting the answer raised {describe_exception(error, user_file)}",
                "changed": _changed(before, logits, second),
            }
    return {"answers": answers, "changed": _changed(before, logits, second)}


def _call(fn: Callable[..., Any], logits: np.ndarray, second: np.ndarray, framework: str) -> Any:
    if second.ndim == 0 and framework != "numpy":
        second_argument: Any = int(second)
    elif second.ndim == 0:
        second_argument = second[()]  # a numpy integer of the case's label dtype
    else:
        second_argument = to_framework(second, framework)
    return fn(to_framework(logits, framework), second_argument)


def _changed(before: tuple[np.ndarray, np.ndarray], logits: np.ndarray, second: np.ndarray) -> list[str]:
    return [
        name
        for name, old, new in (("logits", before[0], logits), ("second", before[1], second))
        if not np.array_equal(old, new, equal_nan=True)
    ]


def _limit_memory(limit: int | None) -> None:
    """The address space this process may take, set here rather than before exec: the parent may
    run several children from threads, where a function run between fork and exec is unsafe."""
    if limit is None:
        return
    import resource

    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def serve(inbox: Connection, outbox: Connection) -> None:
    request = inbox.recv()
    spec: FunctionSpec = request["spec"]
    _limit_memory(request.get("memory_limit"))
    try:
        fn = load_function(spec)
        check_signature(fn, request["convention"], request["targets"], spec.function)
        framework = request["framework"] or detect_framework(fn)
        prepare_framework(framework)
    except UnusableImplementation as problem:
        outbox.send({"load_error": problem.message})
        return
    user_file = spec.path or source_file(fn)
    outbox.send({"loaded": True, "framework": framework})
    while True:
        try:
            request = inbox.recv()
        except EOFError:
            return
        outbox.send(run_case(fn, request, framework, user_file))


def end_with_the_parent(parent: int) -> None:
    """Ask Linux to kill this process when sce test's process ends, however it ends: the time limit
    is the parent's, so a user's endless loop would otherwise run on after a SIGKILL of sce test."""
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        pr_set_pdeathsig = 1
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
    if os.getppid() != parent:  # the parent ended before the request took effect
        os._exit(0)


def bound_file_size() -> None:
    """No file the function writes, its captured output included, grows beyond MAX_FILE_BYTES: a print in
    an endless loop fills a case's time limit, not the disk (a write beyond fails with OSError)."""
    import resource
    import signal

    with contextlib.suppress(OSError, ValueError):
        soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        if soft == resource.RLIM_INFINITY or soft > MAX_FILE_BYTES:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of the signal's core dump
            resource.setrlimit(resource.RLIMIT_FSIZE, (MAX_FILE_BYTES, hard))


def main() -> None:
    read_fd, write_fd = int(sys.argv[1]), int(sys.argv[2])
    end_with_the_parent(int(sys.argv[3]))
    bound_file_size()
    inbox, outbox = Connection(read_fd, writable=False), Connection(write_fd, readable=False)
    serve(inbox, outbox)
    os._exit(0)  # skip interpreter shutdown: the user's atexit handlers and threads are not our business


if __name__ == "__main__":
    main()
