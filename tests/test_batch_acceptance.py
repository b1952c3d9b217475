"""framefold batch acceptance: a 100-job sweep with 10 bad jobs, and SIGKILL part-way then resume."""

import signal
import time
from collections import Counter
from pathlib import Path

from batch_support import PROMPTS, cli, files_under, read_manifest, tiny_workflow, write_jobs

from framefold.host.batch_jobs import build_jobs
from framefold.host.registry import default_registry


def descendants(pid):
    """Process ids below ``pid`` (from /proc), e.g. the forkserver and the worker of a batch."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found, frontier = [], [pid]
    while frontier:
        children = [child for child, parent in parents.items() if parent in frontier]
        found += children
        frontier = children
    return found


def _check_outputs_match_records(out, ok_records):
    """jobs/ holds exactly one folder per ok record, with exactly the recorded files (size and hash)."""
    import hashlib

    assert sorted(p.name for p in (out / "jobs").iterdir()) == sorted(r["id"] for r in ok_records)
    for record in ok_records:
        files = files_under(out / "jobs" / record["id"])
        assert {o["path"]: (o["size"], o["sha256"]) for o in record["outputs"]} == {
            path: (len(data), hashlib.sha256(data).hexdigest()) for path, data in files.items()
        }
    assert not (out / ".staging").exists() or not any((out / ".staging").iterdir())


def test_100_job_sweep_with_10_bad_jobs(tmp_path):
    tiny_workflow(tmp_path)
    good = [{"workflow": "tiny.json", "4.text": text, "7.seed": seed} for text in PROMPTS for seed in range(10)]
    invalid_values = [{"7.steps": 0}, {"7.cfg": "strong"}, {"7.sampler_name": "euler_x"}, {"6.width": 3}]
    missing_models = [
        {"1.ckpt_name": "missing.safetensors"},
        {"1.ckpt_name": "missing.safetensors", "7.seed": 7},
        {"2.model_name": "missing-motion.safetensors"},
    ]
    # valid graphs that fail in the sampler after the loaders ran: more frames than the motion module's window
    raising = [{"6.frames": 24, "8.frame_chunk": 24, "7.seed": seed} for seed in (1, 2, 3)]
    bad = [{"workflow": "tiny.json", **row} for row in invalid_values + missing_models + raising]
    jobs = write_jobs(tmp_path / "jobs.jsonl", good[:45] + bad + good[45:])
    out = tmp_path / "out"
    process = cli([jobs, "--output-dir", out])
    stdout, stderr = process.communicate(timeout=900)
    assert process.returncode == 1, stderr[-3000:]
    records = read_manifest(out)
    assert len(records) == 100 and len({r["id"] for r in records}) == 100
    statuses = Counter(r["status"] for r in records)
    assert statuses == {"ok": 90, "invalid": 7, "failed": 3}
    for record in records:
        assert {"id", "params", "status", "outputs", "error", "workflow"} <= set(record)
        if record["status"] == "ok":
            assert record["seconds"] > 0 and record["peak_memory"]["rss_bytes"] > 0 and len(record["outputs"]) == 2
        else:
            assert record["error"]["message"] and record["outputs"] == []
    assert {r["error"]["input"] for r in records if r["status"] == "invalid"} == {
        "steps",
        "cfg",
        "sampler_name",
        "width",
        "ckpt_name",
        "model_name",
    }
    raised = [r for r in records if r["status"] == "failed"]
    assert all(r["error"]["node"] == "7" and r["error"]["class"] == "FrameFoldVideoSampler" for r in raised)
    assert "7 of 100 jobs are invalid" in stderr and "100 jobs: 3 failed, 7 invalid, 90 ok" in stdout
    _check_outputs_match_records(out, [r for r in records if r["status"] == "ok"])
    # one worker process ran all 93 valid jobs: the checkpoint and motion loaders computed once, the
    # 10 prompts (9 swept + the workflow's own in the raising jobs) were each encoded once (jobs ordered by prompt)
    ran = [r for r in records if r["status"] in ("ok", "failed")]
    assert len({r["worker"] for r in ran}) == 1
    computed = Counter(node for r in ran for node in r["computed"])
    assert computed["1"] == 1 and computed["2"] == 1 and computed["5"] == 1
    assert computed["4"] == len(PROMPTS) + 1


def test_sigkill_part_way_then_resume_runs_exactly_the_missing_jobs(tmp_path):
    tiny_workflow(tmp_path)
    rows = [{"workflow": "tiny.json", "4.text": text, "7.seed": seed} for text in PROMPTS[:2] for seed in range(6)]
    jobs = write_jobs(tmp_path / "jobs.jsonl", rows)
    out = tmp_path / "out"
    process = cli([jobs, "--output-dir", out])
    deadline = time.monotonic() + 600
    while len(read_manifest(out)) < 4 and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    helpers = descendants(process.pid)
    assert helpers, "the batch runs its jobs in a worker process"
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=60)
    deadline = time.monotonic() + 30
    while any(Path(f"/proc/{pid}").exists() for pid in helpers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in helpers if Path(f"/proc/{pid}").exists()], "a worker outlived the killed batch"
    before = read_manifest(out)
    assert 4 <= len(before) < 12, "the batch was not killed part-way"
    done = {r["id"] for r in before}

    all_ids = {job.id for job in build_jobs([str(jobs)], [{}], default_registry())}
    assert len(all_ids) == 12
    missing = sorted(all_ids - done)
    stale = out / "jobs" / missing[0]  # as if the kill came between moving outputs into place and recording
    stale.mkdir(parents=True, exist_ok=True)
    (stale / "leftover.png").write_bytes(b"partial")

    resumed = cli([jobs, "--output-dir", out])
    stdout, stderr = resumed.communicate(timeout=900)
    assert resumed.returncode == 0, stderr[-3000:]
    after = read_manifest(out)
    second_run = [r for r in after if r["run"] != before[0]["run"]]
    assert sorted(r["id"] for r in second_run) == missing
    assert Counter(r["id"] for r in after) == Counter({i: 1 for i in all_ids})
    assert all(r["status"] == "ok" for r in after)
    _check_outputs_match_records(out, after)
    assert f"ran {len(missing)}, kept {len(done)} from before" in stdout
