"""framefold batch with compute (tiny default-model jobs): lost workers, resume rules, report, exit codes."""

import os
import signal

from batch_support import files_under, read_manifest, tiny_workflow, write_jobs

from framefold.host.batch import BatchOptions, run_batch
from framefold.host.batch_jobs import build_jobs, cli_variants
from framefold.host.batch_worker import ProcessPool
from framefold.host.cli import main
from framefold.host.registry import default_registry


def test_a_killed_worker_is_retried_once_then_recorded_failed(tmp_path):
    jobs = build_jobs([str(tiny_workflow(tmp_path))], cli_variants([], ["7.seed=1..3"], []), default_registry())
    flaky, doomed = jobs[0].id, jobs[1].id
    kills = []

    def kill(job, worker):
        if job.id == doomed or (job.id == flaky and not kills.count(flaky)):
            kills.append(job.id)
            os.kill(worker["pid"], signal.SIGKILL)

    options = BatchOptions(output_dir=tmp_path / "out", quiet=True, crash_retries=1, on_dispatch=kill)
    outcome = run_batch(jobs, lambda n: ProcessPool(1, threads=1), options)
    records = {r["id"]: r for r in read_manifest(tmp_path / "out")}
    assert len(read_manifest(tmp_path / "out")) == 3 and sorted(kills) == sorted([flaky, doomed, doomed])
    assert records[flaky]["status"] == "ok" and records[flaky]["attempts"] == 2
    assert "SIGKILL" in records[flaky]["worker_failures"][0]["message"]
    assert records[doomed]["status"] == "failed" and records[doomed]["attempts"] == 2
    assert records[doomed]["error"]["class"] == "WorkerCrashed" and len(records[doomed]["worker_failures"]) == 2
    assert records[jobs[2].id]["status"] == "ok" and outcome.exit_code == 1
    assert sorted(p.name for p in (tmp_path / "out" / "jobs").iterdir()) == sorted([flaky, jobs[2].id])
    assert not (tmp_path / "out" / ".staging").exists()
    for record in records.values():  # every recorded output is on disk with its size and hash
        assert set(files_under(tmp_path / "out" / "jobs" / record["id"])) == {o["path"] for o in record["outputs"]}

    again = run_batch(jobs, lambda n: ProcessPool(1, threads=1), BatchOptions(output_dir=tmp_path / "out", quiet=True))
    assert again.ran == [] and sorted(again.skipped) == sorted(j.id for j in jobs)
    retried = run_batch(
        jobs,
        lambda n: ProcessPool(1, threads=1),
        BatchOptions(output_dir=tmp_path / "out", quiet=True, only_failed=True),
    )
    assert retried.ran == [doomed] and retried.exit_code == 0


def test_cli_reports_invalid_jobs_together_and_writes_a_contact_sheet(tmp_path, capsys):
    tiny_workflow(tmp_path)
    rows = [
        {"workflow": "tiny.json", "7.seed": 1},
        {"workflow": "tiny.json", "7.seed": 2, "9.format": "mp4"},
        {"workflow": "tiny.json", "7.cfg": "lots"},
        {"workflow": "tiny.json", "9.filename_prefix": "../outside"},
        {"workflow": "tiny.json", "6.frames": 24, "8.frame_chunk": 24},
    ]
    jobs = write_jobs(tmp_path / "jobs.jsonl", rows)
    out, report = tmp_path / "out", tmp_path / "sheet.html"
    argv = ["batch", str(jobs), "--output-dir", str(out), "--threads", "1", "--report", str(report)]
    code = main(argv)
    captured = capsys.readouterr()
    assert code == 1
    assert "2 of 5 jobs are invalid" in captured.err and "node 7 (FrameFoldVideoSampler), input 'cfg'" in captured.err
    assert "node 9 (FrameFoldSaveVideo)" in captured.err and "input 'filename_prefix'" in captured.err
    statuses = sorted(r["status"] for r in read_manifest(out))
    assert statuses == ["failed", "invalid", "invalid", "ok", "ok"]
    failed = next(r for r in read_manifest(out) if r["status"] == "failed")
    assert failed["error"]["node"] == "7" and failed["error"]["class"] == "FrameFoldVideoSampler"
    assert "frames" in failed["error"]["message"] and failed["computed"][-1] == "7"
    page = report.read_text()
    assert page.count("<img ") == 2 and page.count("<figure") == 5
    frames = sorted((tmp_path / "sheet_files").iterdir())
    assert len(frames) == 2 and all(f.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for f in frames)
    assert "5 jobs: 1 failed, 2 invalid, 2 ok; ran 3" in captured.out
    assert main(argv + ["--dry-run"]) == 1
