"""The fused linear cross-entropy check on a Dask cluster (a local one of two worker processes)
gives one machine's report: to the bit where one machine also goes by blocks of classes (the
block sizes shrunk here, on this process and on the workers, so that small inputs take three
blocks of classes and two or five tiles of rows), and the same verdict, mistake and worst errors
where one machine holds ∂L/∂C whole.

The kernels are numpy's (tests/linear_kernels.py), right or with a planted mistake; each case
also asserts the verdict its answer deserves, so that two equal wrong reports cannot pass.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import sys

import numpy as np
import pytest

import sce.dask
from sce.grading.linear import mistakes
from sce.testing import check_linear_cross_entropy
from tests.linear_kernels import Case, kernel, make_case

distributed = pytest.importorskip("distributed")
ml_dtypes = pytest.importorskip("ml_dtypes")

#: Small enough that 150 classes of width 16 take three blocks of classes (64, 64, 22), ∂L/∂C never
#: fits whole, and ∂L/∂E fits whole for 24 rows but not for 70 (then formed a block of rows at a time).
SHRUNK = {
    "sce.loss.linear_cross_entropy": {"CLASSIFIER_BYTES": 5000, "BLOCK_BYTES": 8192},
    "sce.grading.linear.stepped_baseline": {"BASELINE_BYTES": 2000},
}
V = 150


def set_constants(values: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    """Set module constants (on whichever process runs it); return those they replace."""
    before = {}
    for module_name, constants in values.items():
        module = importlib.import_module(module_name)
        before[module_name] = {name: getattr(module, name) for name in constants}
        for name, value in constants.items():
            setattr(module, name, value)
    return before


@pytest.fixture(scope="module")
def client():
    import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers cannot import the tests
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0", silence_logs=50
        ) as cluster,
        distributed.Client(cluster, set_as_default=False) as connected,
    ):
        connected.wait_for_workers(2)  # each holds a copy of the inputs: one of them may die
        yield connected


@pytest.fixture
def shrunk(client):
    """The block sizes shrunk on this process and on every worker, restored after."""
    yield from shrunk_to(client, SHRUNK)


@pytest.fixture
def tiny(client):
    """Every size goes by classes, with every gradient formed a block at a time."""
    yield from shrunk_to(client, {**SHRUNK, "sce.loss.linear_cross_entropy": {"CLASSIFIER_BYTES": 8, "BLOCK_BYTES": 8192},
                                  "sce.grading.linear.stepped_baseline": {"BASELINE_BYTES": 8}})  # fmt: skip


def shrunk_to(client, constants):
    before = set_constants(constants)
    client.run(set_constants, constants)
    yield
    set_constants(before)
    client.run(set_constants, before)


def check(case: Case, outputs: dict, profile: str = "pytorch", **engine) -> sce.testing.Report:
    arguments = dict(bias=case.bias, **outputs, **case.options, grad_output=case.grad_output, profile=profile)
    if engine:
        return sce.dask.check_linear_cross_entropy(case.hidden, case.classifier, case.labels, **arguments, **engine)
    return check_linear_cross_entropy(case.hidden, case.classifier, case.labels, **arguments)


WEIGHTS = list(np.linspace(0.5, 2, V))
CASES = [
    (70, {}, None),
    (24, {}, "ignored_counted"),
    (70, {"reduction": "none"}, "upstream_first"),
    (24, {"softcap": 2.0}, "softcap_factor_missing"),
    (70, {"z_loss": 1e-2, "weight": WEIGHTS}, "z_loss_weighted"),
    (70, {"label_smoothing": 0.3, "weight": WEIGHTS, "ignore_index": 3}, None),
    (24, {"reduction": "sum", "softcap": 5.0, "z_loss": 1e-3, "label_smoothing": 0.1, "smoothing_style": "off-target"},
     None),
]  # fmt: skip
NAMED = {
    "ignored_counted": mistakes.IGNORED_ROWS_COUNTED,
    "upstream_first": mistakes.ROWS_SCALED_BY_FIRST_UPSTREAM,
    "softcap_factor_missing": mistakes.SOFTCAP_FACTOR_MISSING,
    "z_loss_weighted": mistakes.Z_LOSS_WEIGHTED_OR_DIVIDED,
}


def planted_case(n: int, options: dict, planted: str | None, dtype: object = np.float32) -> tuple[Case, dict]:
    case = make_case(dtype, n=n, v=V, **options)
    if planted == "upstream_first":
        case = dataclasses.replace(case, grad_output=np.linspace(0.5, 2.0, n))
    if "ignore_index" in options:
        case = dataclasses.replace(case, labels=np.where(case.labels == -100, 3, case.labels))
    return case, kernel(case, mistake=planted)


@pytest.mark.parametrize(("n", "options", "planted"), CASES, ids=[f"{c[0]}-{c[2]}-{c[1]}"[:60] for c in CASES])
def test_the_cluster_gives_one_machines_report_to_the_bit(n, options, planted, client, shrunk):
    case, outputs = planted_case(n, options, planted)
    alone = check(case, outputs)
    assert alone.passed is (planted is None), str(alone)
    assert alone.mistake == (NAMED[planted].name if planted else None)
    on_two = check(case, outputs, client=client)
    assert on_two.to_dict() == alone.to_dict()
    assert str(on_two) == str(alone)


@pytest.mark.parametrize("profile", ["liger", "cce", "loop"])
def test_every_profile_gives_one_machines_report(profile, client, shrunk):
    case, outputs = planted_case(70, {"z_loss": 1e-3}, None, ml_dtypes.bfloat16)
    alone = check(case, outputs, profile)
    assert alone.passed and alone.profile == profile, str(alone)
    assert check(case, outputs, profile, client=client).to_dict() == alone.to_dict()


def test_a_bfloat16_kernel_and_a_planted_mistake_in_bfloat16(client, shrunk):
    case, outputs = planted_case(70, {}, None, ml_dtypes.bfloat16)
    alone = check(case, outputs)
    assert alone.passed and check(case, outputs, client=client).to_dict() == alone.to_dict()
    wrong = kernel(case, mistake="ignored_counted")
    alone = check(case, wrong)
    assert alone.mistake == mistakes.IGNORED_ROWS_COUNTED.name
    assert check(case, wrong, client=client).to_dict() == alone.to_dict()


@pytest.mark.parametrize("given", [("loss",), ("grad_hidden",), ("grad_classifier",), ("grad_bias", "loss")])
@pytest.mark.parametrize("n", [24, 70])
def test_any_outputs_alone_and_without_a_bias(given, n, client, shrunk):
    """Without ∂L/∂C the baseline takes its own blocks of classes; without ∂L/∂E no row tiles of it."""
    case, outputs = planted_case(n, {"reduction": "sum"}, None)
    if "grad_bias" not in given:
        case = dataclasses.replace(case, bias=None)
        outputs = kernel(case)
    chosen = {name: outputs[name] for name in given}
    alone = check(case, chosen)
    assert alone.passed, str(alone)
    assert check(case, chosen, client=client).to_dict() == alone.to_dict()


@pytest.mark.parametrize("planted", [None, "ignored_counted"])
def test_where_one_machine_holds_the_classifiers_gradient_whole_the_verdict_mistake_and_worst_are_its(
    planted, client
):
    """Unshrunk, one machine goes by rows and the cluster by classes: the reference agrees to
    float64's last digits, and the baseline is one machine's, so each output's worst error and its
    allowance (in float32 ulps) agree to 1e-9."""
    case, outputs = planted_case(70, {}, planted)
    alone, on_two = check(case, outputs), check(case, outputs, client=client)
    assert (on_two.passed, on_two.verdict, on_two.mistake) == (alone.passed, alone.verdict, alone.mistake)
    assert alone.passed is (planted is None)
    for name in ("loss", "grad_hidden", "grad_classifier", "grad_bias"):
        mine, theirs = getattr(on_two, name), getattr(alone, name)
        for figure in ("worst_ulp", "baseline_ulp", "allowed_ulp", "allowed_rms_ulp"):
            # The baseline is one machine's (this process forms it by rows): its errors, and so the
            # allowance, move only with the float64 reference's last digits.
            assert getattr(mine, figure) == pytest.approx(getattr(theirs, figure), rel=1e-9), figure
        assert mine.worst_entry == theirs.worst_entry


def saved(tmp_path, case: Case, outputs: dict, name: str = "dump.npz") -> str:
    arrays = {"hidden": case.hidden, "classifier": case.classifier, "labels": case.labels, **outputs}
    if case.bias is not None:
        arrays["bias"] = case.bias
    np.savez(tmp_path / name, **arrays)
    return name


@pytest.mark.parametrize("planted", [None, "ignored_counted"])
@pytest.mark.parametrize("output_format", ["table", "json"])
def test_check_arrays_with_the_dask_engine_prints_one_processs_report(
    planted, output_format, client, shrunk, sce, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    case, outputs = planted_case(70, {"label_smoothing": 0.1}, planted)
    name = saved(tmp_path, case, outputs)
    args = ("check", "--arrays", name, "--smoothing", "0.1", "--format", output_format)
    alone = sce(*args)
    on_cluster = sce(*args, "--engine", "dask", "--scheduler", client.scheduler.address)
    assert alone.exit_code == (0 if planted is None else 1), alone.output
    assert (on_cluster.exit_code, on_cluster.stdout, on_cluster.stderr) == (alone.exit_code, alone.stdout, "")
    if output_format == "json":
        assert json.loads(alone.stdout)["mistake"] == (None if planted is None else NAMED[planted].name)


def test_a_bad_dump_is_one_processs_line_before_a_cluster_is_reached(sce, tmp_path):
    """Labels out of range are named at once; the scheduler (none answers there) is never tried."""
    case, outputs = planted_case(24, {}, None)
    labels = case.labels.copy()
    labels[9] = V + 2
    name = saved(tmp_path, dataclasses.replace(case, labels=labels), outputs)
    path = tmp_path / name
    alone = sce("check", "--arrays", path)
    on_cluster = sce("check", "--arrays", path, "--engine", "dask", "--scheduler", "tcp://127.0.0.1:1")
    assert alone.exit_code == 1 and alone.stderr.startswith("sce: error: ") and alone.stderr.count("\n") == 1
    assert (on_cluster.exit_code, on_cluster.stdout, on_cluster.stderr) == (alone.exit_code, "", alone.stderr)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--quick",), "--engine dask runs the full check; --quick runs in this process: leave out one of them"),
        (("RANK",), "--engine dask checks one dump of hidden states; the ranks' dumps of a vocabulary-parallel kernel "
                    "are checked in this process: leave out --engine"),
    ],
)  # fmt: skip
def test_quick_mode_and_rank_dumps_are_refused_with_the_dask_engine(extra, message, sce, tmp_path):
    case, outputs = planted_case(24, {}, None)
    path = tmp_path / saved(tmp_path, case, outputs)
    extra = tuple(str(path) if word == "RANK" else word for word in extra)
    result = sce("check", "--arrays", path, *extra, "--engine", "dask", "--workers", "2")
    assert (result.exit_code, result.stdout, result.stderr) == (2, "", f"sce: error: {message}\n")


def test_without_the_extra_the_dask_engine_names_it_for_hidden_states(sce, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed raises ImportError
    case, outputs = planted_case(24, {}, None)
    result = sce("check", "--arrays", tmp_path / saved(tmp_path, case, outputs), "--engine", "dask")
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == (
        "sce: error: --engine dask needs Dask's distributed package, which is not installed: pip install 'sce[dask]'\n"
    )


def test_the_python_entry_refuses_what_it_cannot_use_before_a_cluster(client):
    case, outputs = planted_case(24, {}, None)
    arguments = (case.hidden, case.classifier, case.labels)
    with pytest.raises(ValueError, match="^workers: 0 worker processes cannot run anything; give 1 to 256$"):
        sce.dask.check_linear_cross_entropy(*arguments, **outputs, bias=case.bias, workers=0)
    with pytest.raises(ValueError, match="^scheduler connects to a running cluster: give one of"):
        sce.dask.check_linear_cross_entropy(*arguments, **outputs, client=client, scheduler="tcp://127.0.0.1:1")
    with pytest.raises(ValueError, match=r"^scheduler: 'nowhere' is not a scheduler's address"):
        sce.dask.check_linear_cross_entropy(*arguments, **outputs, bias=case.bias, scheduler="nowhere")
    with pytest.raises(TypeError, match="runs the full check: leave out mode"):
        sce.dask.check_linear_cross_entropy(*arguments, **outputs, client=client, mode="quick")
    with pytest.raises(ValueError, match="grad_bias is given but bias is not"):
        sce.dask.check_linear_cross_entropy(*arguments, **outputs, scheduler="tcp://127.0.0.1:1")


@pytest.mark.parametrize(
    ("n", "d", "v", "options"),
    [(1, 1, 1, {}), (5, 3, 2, {"reduction": "sum"}), (24, 16, V, {"offset": 40.0}), (70, 16, V, {"every": "sum"}),
     (70, 16, V, {"every": "mean"})],
    ids=["one row, one class", "two classes", "extreme logits", "every row ignored", "every row ignored, a NaN mean"],
)
def test_edge_sizes_and_values_give_one_machines_report(n, d, v, options, client, tiny):
    options = dict(options)
    offset = options.pop("offset", 0.0)
    every_ignored = options.pop("every", None)
    case = make_case(np.float32, n=n, d=d, v=v, offset=offset, confident=(), **options)
    if every_ignored:
        case = dataclasses.replace(case, options={"reduction": every_ignored}, labels=np.full(n, -100))
    outputs = kernel(case)
    alone = check(case, outputs)
    assert alone.passed, str(alone)
    assert check(case, outputs, client=client).to_dict() == alone.to_dict()


def test_results_come_back_in_their_order_however_the_tasks_finish(client):
    """The later a task's place, the sooner it finishes: the results are still handed on in order."""
    from sce.grading.linear.cluster import in_order

    def late(place: int) -> int:
        import time

        time.sleep(0.1 * (4 - place))
        return place

    assert list(in_order(client, late, [(place,) for place in range(5)])) == [0, 1, 2, 3, 4]


def test_a_worker_killed_mid_run_leaves_the_report_one_machines(client):
    """The first block of classes kills its worker (a lost machine, an out-of-memory kill), once: Dask
    runs it again on the other worker, which holds its own copy of the inputs."""
    import tempfile
    from pathlib import Path

    case, outputs = planted_case(70, {}, "ignored_counted")
    alone = check(case, outputs)
    marker = Path(tempfile.mkdtemp()) / "died"
    client.run(dies_once, str(marker))
    try:
        on_two = check(case, outputs, client=client)
    finally:
        client.wait_for_workers(2)
        client.run(dies_once, None)
    assert marker.exists()
    assert (on_two.passed, on_two.mistake) == (False, mistakes.IGNORED_ROWS_COUNTED.name)
    assert on_two.grad_hidden.worst_ulp == pytest.approx(alone.grad_hidden.worst_ulp, rel=1e-9)


def dies_once(marker: str | None) -> None:
    """On a worker: the blocks of classes' task kills the process the first time any worker runs it
    (``marker`` is a file then made); None puts the task back as it was."""
    import os

    tiles = importlib.import_module("sce.grading.linear.cluster")
    original = getattr(tiles.class_tile, "original", tiles.class_tile)
    if marker is None:
        tiles.class_tile = original
        return

    def dying(*arguments):
        try:
            os.close(os.open(marker, os.O_CREAT | os.O_EXCL))  # one worker only, though both start at once
        except FileExistsError:
            return original(*arguments)
        os._exit(1)

    dying.original = original
    tiles.class_tile = dying


def test_an_unreachable_scheduler_is_one_line_for_hidden_states(sce, tmp_path):
    import socket
    import time

    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    case, outputs = planted_case(24, {}, None)
    path = tmp_path / saved(tmp_path, case, outputs)
    began = time.monotonic()
    result = sce("check", "--arrays", path, "--engine", "dask", "--scheduler", f"tcp://127.0.0.1:{port}")
    assert time.monotonic() - began < 10
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"sce: error: --scheduler: no Dask scheduler answers at tcp://127.0.0.1:{port}")


def test_hidden_states_with_batch_and_sequence_axes_and_the_current_client(client, shrunk):
    """B × T × D hidden states (labels B × T) as B·T rows; without client=, the current client is used."""
    case, outputs = planted_case(70, {"reduction": "none"}, None)
    hidden, labels = case.hidden.reshape(2, 35, 16), case.labels.reshape(2, 35)
    shaped = {**outputs, "loss": outputs["loss"].reshape(2, 35), "grad_hidden": outputs["grad_hidden"].reshape(2, 35, 16)}
    alone = check_linear_cross_entropy(hidden, case.classifier, labels, bias=case.bias, reduction="none", **shaped)
    assert alone.passed, str(alone)
    with client.as_current():
        current = sce.dask.check_linear_cross_entropy(
            hidden, case.classifier, labels, bias=case.bias, reduction="none", **shaped
        )
    assert current.to_dict() == alone.to_dict()


def test_a_closed_client_is_refused(client):
    case, outputs = planted_case(24, {}, None)
    closed = distributed.Client(client.scheduler.address, set_as_default=False)
    closed.close()
    with pytest.raises(ValueError, match="^client: the client is closed"):
        sce.dask.check_linear_cross_entropy(case.hidden, case.classifier, case.labels, **outputs, bias=case.bias,
                                            client=closed)  # fmt: skip


def test_ctrl_c_on_the_client_cancels_the_clusters_tasks(client, tmp_path):
    """Interrupted while the cluster computes the blocks of classes: 130, no traceback, and the
    cluster (started apart, so that it outlives the run) is left with nothing to do."""
    import signal
    import subprocess
    import time

    rng = np.random.default_rng(5)
    n, d, v = 4096, 256, 40_000
    path = tmp_path / "large.npz"
    np.savez(path, hidden=rng.standard_normal((n, d), np.float32), classifier=rng.standard_normal((v, d), np.float32),
             labels=rng.integers(0, v, n), grad_hidden=np.zeros((n, d), np.float32))  # fmt: skip
    process = subprocess.Popen(
        ["sce", "check", "--arrays", str(path), "--engine", "dask", "--scheduler", client.scheduler.address],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.monotonic() + 60
    while not any(client.processing().values()):
        assert process.poll() is None, f"finished before it could be interrupted: {process.stderr.read()}"
        assert time.monotonic() < deadline
        time.sleep(0.02)
    process.send_signal(signal.SIGINT)
    process.wait(timeout=60)
    stdout, stderr = process.communicate()
    assert process.returncode == 130, stderr
    assert stdout == "" and "Traceback" not in stderr
    deadline = time.monotonic() + 10
    while any(client.processing().values()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(client.processing().values())


@pytest.mark.parametrize("wrong", [False, True])
def test_a_float64_kernel_and_its_exactly_recomputed_entries(wrong, client, shrunk):
    """A float64 answer's entries that the reference's bound cannot decide are recomputed exactly
    on this machine after the cluster's pass, as one machine recomputes them."""
    from sce.loss.linear_cross_entropy import linear_cross_entropy

    case = make_case(np.float64, n=24, v=V)
    exact = linear_cross_entropy(case.hidden, case.classifier, case.labels, bias=case.bias)
    outputs = {"loss": np.float64(exact.loss), "grad_hidden": exact.grad_hidden,
               "grad_classifier": exact.grad_classifier * (1 + 1e-12 * wrong), "grad_bias": exact.grad_bias}  # fmt: skip
    alone = check(case, outputs)
    assert alone.passed is not wrong, str(alone)
    assert check(case, outputs, client=client).to_dict() == alone.to_dict()


def test_a_second_pass_for_entries_a_narrow_band_leaves_open_runs_on_the_cluster_too(client, shrunk, monkeypatch):
    """Where the reference's bound leaves a verdict open, the check runs its pass again keeping
    the entries: the cluster's pass again, from sums of nothing (forced here for every output)."""
    import sce.grading.linear.check as full

    monkeypatch.setattr(full, "decided_by_bound", lambda found: False)
    case, outputs = planted_case(70, {"softcap": 2.0}, "softcap_factor_missing")
    alone = check(case, outputs)
    assert alone.mistake == mistakes.SOFTCAP_FACTOR_MISSING.name
    assert check(case, outputs, client=client).to_dict() == alone.to_dict()


def test_where_this_machine_forms_the_baseline_the_clusters_tasks_leave_it_out():
    # Where one machine holds ∂L/∂C whole, the client forms the same-type baseline by rows: the
    # cluster's first and last passes then compute the reference's statistics and ∂L/∂E only.
    from sce.grading.linear.cluster import hidden_tile, statistics_tile
    from sce.grading.linear.profiles import PROFILES
    from sce.loss.linear_terms import linear_terms
    from sce.options import LossOptions

    case = make_case(np.float32)
    terms = linear_terms(np.asarray(case.labels), len(case.classifier), LossOptions())
    e, c, b, profile = case.hidden, case.classifier, case.bias, PROFILES["pytorch"]
    rows = slice(0, len(e))
    top, lse, base_lse = statistics_tile(e, c, b, terms, terms, profile, rows, False)
    assert base_lse is None and top.shape == lse.shape == (len(e),)
    with_base = statistics_tile(e, c, b, terms, terms, profile, rows)
    assert with_base[2] is not None and (with_base[1] == lse).all()
    found = hidden_tile(e, c, b, terms, terms, profile, {}, (top, lse), None, rows, False)
    assert found and all(base is None for *_, base in found)
    assert all(part[3] is not None for part in hidden_tile(e, c, b, terms, terms, profile, {}, (top, lse), with_base[2], rows))
