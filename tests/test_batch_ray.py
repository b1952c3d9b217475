"""framefold batch on Ray (local ray.init, 2 CPUs, loopback): same bytes as in-process; a killed actor's job retried."""

import os
import signal

import pytest
from batch_support import files_under, read_manifest, tiny_workflow

from framefold.host.batch import BatchOptions, run_batch
from framefold.host.batch_jobs import build_jobs, cli_variants
from framefold.host.batch_worker import ProcessPool
from framefold.host.registry import default_registry

os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
ray = pytest.importorskip("ray", reason="ray is not installed (pip install framefold[ray]); Ray backend not tested")


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False)
    yield
    ray.shutdown()


def test_ray_outputs_equal_in_process_and_a_killed_actor_is_retried(tmp_path, local_ray):
    from framefold.host.batch_ray import RayPool

    # PNG-sequence output: its bytes are a pure function of the frames and the embedded prompt
    variants = cli_variants([], ["7.seed=1..6", "4.text=a red circle,a blue square"], [])
    jobs = build_jobs([str(tiny_workflow(tmp_path))], variants, default_registry())
    assert len(jobs) == 12
    local = run_batch(jobs, lambda n: ProcessPool(1, threads=1), BatchOptions(tmp_path / "local", quiet=True))
    assert local.exit_code == 0

    victim = jobs[5].id
    killed = []

    def kill_once(job, worker):
        if job.id == victim and not killed:
            killed.append(worker["pid"])
            os.kill(worker["pid"], signal.SIGKILL)

    options = BatchOptions(tmp_path / "ray", quiet=True, crash_retries=1, on_dispatch=kill_once)
    outcome = run_batch(jobs, lambda n: RayPool(workers=2, threads=1), options)
    assert outcome.exit_code == 0 and len(killed) == 1
    records = {r["id"]: r for r in read_manifest(tmp_path / "ray")}
    assert len(records) == 12 and all(r["status"] == "ok" for r in records.values())
    assert records[victim]["attempts"] == 2 and "died" in records[victim]["worker_failures"][0]["message"]
    assert len({r["worker"] for r in records.values()}) >= 2  # two actors (plus the replacement) shared the jobs
    assert files_under(tmp_path / "ray" / "jobs") == files_under(tmp_path / "local" / "jobs")
    assert len(files_under(tmp_path / "local" / "jobs")) == 24

    again = run_batch(jobs, lambda n: RayPool(workers=2, threads=1), BatchOptions(tmp_path / "ray", quiet=True))
    assert again.ran == [] and len(again.skipped) == 12  # the same resume rules: nothing to do
