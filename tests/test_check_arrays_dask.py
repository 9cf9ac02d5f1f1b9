"""A dump graded on a Dask cluster (a local one of two worker processes) gets one process's verdict,
text and JSON, byte for byte; bad data found by a worker is reported as one process reports it.

The dumps are written here with numpy (right answers in float32, and the textbook's mistakes);
the verdict compared with is the one this process gives alone, and each case asserts the verdict
its answer deserves too.
"""

from __future__ import annotations

import numpy as np
import pytest

from sce.errors import DataProblem
from sce.grading.dump import check
from sce.grading.dump.check import check_dump
from sce.grading.dump.cluster_tiles import on_cluster
from sce.grading.dump.tiles import DumpFile
from sce.io.arrays import DumpRequest, read_dump
from sce.options import LossOptions

from .test_check_arrays_tiles import BLOCK_ENTRIES, inputs, plain, shown

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def client():
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, worker_dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as connected,
    ):
        yield connected


def saved(tmp_path, **arrays) -> DumpRequest:
    path = tmp_path / "dump.npz"
    np.savez(path, **arrays)
    return DumpRequest(str(path))


@pytest.mark.parametrize("mistake", ["none", "sign flipped", "sum not mean"])
def test_a_dump_on_a_cluster_gets_one_processs_verdict(mistake, client, tmp_path, monkeypatch):
    monkeypatch.setattr(check, "BLOCK_ENTRIES", BLOCK_ENTRIES)  # on the client, which cuts the blocks
    z, y = inputs(4)
    gradient, losses = plain(z, y, np.float32)
    counted = int((y != -100).sum())
    mean = np.float32(losses.astype(np.float64).sum() / counted)
    factor = {"none": 1, "sign flipped": -1, "sum not mean": counted}[mistake]
    request = saved(tmp_path, logits=z, labels=y, grad=gradient * np.float32(factor), loss=mean)
    dump = read_dump(request)
    alone = check_dump(dump, LossOptions(), "float32")
    assert alone.correct is (mistake == "none")
    engine = on_cluster(client, DumpFile(request))
    assert engine.tiles == 4
    on_two = check_dump(dump, LossOptions(), "float32", engine=engine)
    assert shown(on_two) == shown(alone)
    assert on_two.mistakes == alone.mistakes and bool(alone.mistakes) == (mistake != "none")


def test_bad_data_found_by_a_worker_is_placed_at_its_row(client, tmp_path, monkeypatch):
    monkeypatch.setattr(check, "BLOCK_ENTRIES", BLOCK_ENTRIES)
    z, y = inputs(5)
    gradient, _ = plain(z, y, np.float64)
    z[50] = -np.inf
    request = saved(tmp_path, logits=z, labels=y, grad=gradient)
    dump = read_dump(request)
    with pytest.raises(DataProblem) as alone:
        check_dump(dump, LossOptions(), "float64")
    with pytest.raises(DataProblem) as on_two:
        check_dump(dump, LossOptions(), "float64", engine=on_cluster(client, DumpFile(request)))
    assert "row 50" in str(alone.value) and str(on_two.value) == str(alone.value)
