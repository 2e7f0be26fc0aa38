"""mtpkit.executor: local processes and a real Dask LocalCluster; failures are per job."""

from __future__ import annotations

import os

import pytest

from mtpkit.executor import Executor, Job


def square_pid(x):
    return x * x, os.getpid()


def fail_on_three(x):
    if x == 3:
        raise ValueError("three is bad")
    return x


def test_local_processes_results_in_order_and_parallel():
    seen = []
    with Executor(workers=2) as ex:
        outs = ex.map(square_pid, [(i,) for i in range(6)],
                      progress=lambda d, t, o: seen.append((d, t, o.key)))
    assert [o.result[0] for o in outs] == [i * i for i in range(6)]
    assert all(o.ok for o in outs)
    assert os.getpid() not in {o.result[1] for o in outs}  # ran in worker processes
    assert [d for d, _, _ in seen] == list(range(1, 7)) and {t for _, t, _ in seen} == {6}


def test_failure_is_captured_and_others_finish():
    with Executor(workers=2) as ex:
        outs = ex.run([Job(f"j{i}", fail_on_three, (i,)) for i in range(5)])
    bad = [o for o in outs if not o.ok]
    assert [o.key for o in bad] == ["j3"]
    assert "ValueError: three is bad" in bad[0].error and "fail_on_three" in bad[0].traceback
    assert [o.result for o in outs if o.ok] == [0, 1, 2, 4]


def test_duplicate_keys_rejected():
    with pytest.raises(ValueError, match="unique"):
        Executor(workers=1).run([Job("a", abs, (1,)), Job("a", abs, (2,))])


def test_dask_local_cluster():
    distributed = pytest.importorskip("distributed")
    with (distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                   dashboard_address=None) as cluster,
          Executor(scheduler=cluster.scheduler_address) as ex):
        assert ex.kind == "dask"
        outs = ex.run([Job(f"k{i}", fail_on_three, (i,)) for i in range(5)])
    assert [o.ok for o in outs] == [True, True, True, False, True]
    assert outs[3].error.startswith("ValueError")
    assert [o.result for o in outs if o.ok] == [0, 1, 2, 4]
