"""mtpkit.executor: local processes and a real Dask LocalCluster; failures are per job."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

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


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_workers_end_with_a_killed_parent(tmp_path):
    """kill -9 of the process running an Executor ends its workers too (a killed `mtpkit label` must not
    leave DFT workers computing for an hour): each worker writes its pid, the parent is killed, and every
    worker is gone within seconds."""
    script = tmp_path / "parent.py"
    script.write_text(textwrap.dedent(f"""
        import os, time
        from mtpkit.executor import Executor, Job

        def work(k):
            open(os.path.join({str(tmp_path)!r}, f"w{{k}}.pid"), "w").write(str(os.getpid()))
            time.sleep(120)

        if __name__ == "__main__":
            Executor(workers=2).run([Job(f"j{{k}}", work, (k,)) for k in range(2)])
    """))
    parent = subprocess.Popen([sys.executable, str(script)], cwd=tmp_path)
    try:
        deadline = time.time() + 60
        while len(list(tmp_path.glob("w*.pid"))) < 2 and time.time() < deadline:
            time.sleep(0.2)
        pids = [int(p.read_text()) for p in tmp_path.glob("w*.pid")]
        assert len(pids) == 2
        parent.kill()
        parent.wait()
        deadline = time.time() + 10
        while any(_alive(pid) for pid in pids) and time.time() < deadline:
            time.sleep(0.2)
        assert not any(_alive(pid) for pid in pids)
    finally:
        parent.kill()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False
