"""framefold batch, without compute: job files, sweeps, ids, validation together, ordering, manifest, resume plan."""

import json

import pytest
from batch_support import tiny_workflow, write_jobs

from framefold.host.batch import BatchOptions, plan
from framefold.host.batch_jobs import build_jobs, cli_variants, prompt_id, read_job_rows, reuse_order
from framefold.host.batch_manifest import Manifest
from framefold.host.registry import default_registry
from framefold.host.workflow import WorkflowError


@pytest.fixture(scope="module")
def registry():
    return default_registry()


def test_product_and_zip_of_parameters():
    variants = cli_variants(["9.fps=12"], ["7.seed=1..3"], ["4.text=a,b", "7.cfg=2,3.5"])
    assert len(variants) == 6
    assert variants[0] == {"9.fps": 12, "7.seed": 1, "4.text": "a", "7.cfg": 2}
    assert variants[1] == {"9.fps": 12, "7.seed": 1, "4.text": "b", "7.cfg": 3.5}
    assert [v["7.seed"] for v in variants] == [1, 1, 2, 2, 3, 3]
    with pytest.raises(WorkflowError, match="equal lengths"):
        cli_variants([], [], ["4.text=a,b", "7.cfg=1"])
    with pytest.raises(WorkflowError, match="NODE_ID.INPUT"):
        cli_variants([], ["seed=1,2"], [])


def test_jsonl_csv_and_spec_files_give_the_same_jobs(tmp_path, registry):
    workflow = tiny_workflow(tmp_path)
    rows = [{"workflow": "tiny.json", "4.text": t, "7.seed": s} for t in ("a cat", "a dog") for s in (1, 2)]
    jsonl = write_jobs(tmp_path / "jobs.jsonl", rows)
    csv_file = tmp_path / "jobs.csv"
    csv_file.write_text("workflow,4.text,7.seed\n" + "".join(f"tiny.json,{r['4.text']},{r['7.seed']}\n" for r in rows))
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"workflow": "tiny.json", "product": {"4.text": ["a cat", "a dog"], "7.seed": [1, 2]}}))
    ids = [[j.id for j in build_jobs([str(p)], [{}], registry)] for p in (jsonl, csv_file, spec)]
    assert ids[0] == ids[1] == ids[2] and len(set(ids[0])) == 4
    sweep = build_jobs([str(workflow)], cli_variants([], ["4.text=a cat,a dog", "7.seed=1,2"], []), registry)
    assert [j.id for j in sweep] == ids[0]
    assert read_job_rows(str(jsonl))[0]["workflow"] == str(workflow.resolve())


def test_equal_jobs_have_equal_ids_and_run_once(tmp_path, registry):
    workflow = tiny_workflow(tmp_path)
    jobs = build_jobs([str(workflow)], cli_variants([], ["7.seed=5,5.0,5"], []), registry)
    assert len(jobs) == 1  # 5 and 5.0 coerce to the same INT, so the final prompts are equal
    prompt = json.loads(workflow.read_text())
    prompt["7"]["inputs"]["seed"] = 5
    assert jobs[0].id == prompt_id(jobs[0].prompt)
    assert jobs[0].prompt["7"]["inputs"]["seed"] == 5


def test_every_invalid_job_is_reported_with_node_class_and_input(tmp_path, registry):
    tiny_workflow(tmp_path)
    rows = [
        {"workflow": "tiny.json", "7.seed": 1},
        {"workflow": "tiny.json", "7.steps": -3},
        {"workflow": "tiny.json", "1.ckpt_name": "missing.safetensors"},
        {"workflow": "tiny.json", "7.sampler_name": "nope", "7.cfg": "high"},
        {"workflow": "tiny.json", "77.seed": 1},
        {"workflow": "tiny.json", "7.colour": 1},
        {"workflow": "absent.json"},
    ]
    jobs = build_jobs([str(write_jobs(tmp_path / "j.jsonl", rows))], [{}], registry)
    assert [j.valid for j in jobs] == [True] + [False] * 6
    steps, model, two, node, name, absent = (j.errors for j in jobs[1:])
    assert steps[0]["node"] == "7" and steps[0]["class"] == "FrameFoldVideoSampler" and steps[0]["input"] == "steps"
    assert model[0]["input"] == "ckpt_name" and model[0]["class"] == "FrameFoldCheckpointLoader"
    assert sorted(e["input"] for e in two) == ["cfg", "sampler_name"]
    assert "no node 77" in node[0]["message"] and "has no input 'colour'" in name[0]["message"]
    assert "not found" in absent[0]["message"]


def test_unreadable_job_files_are_errors(tmp_path, registry):
    (tmp_path / "bad.jsonl").write_text('{"workflow": "x.json"}\n{oops\n')
    with pytest.raises(WorkflowError, match="bad.jsonl:2"):
        build_jobs([str(tmp_path / "bad.jsonl")], [{}], registry)
    (tmp_path / "nowf.jsonl").write_text('{"7.seed": 1}\n')
    with pytest.raises(WorkflowError, match="no 'workflow'"):
        build_jobs([str(tmp_path / "nowf.jsonl")], [{}], registry)
    (tmp_path / "empty").mkdir()
    with pytest.raises(WorkflowError, match="no .json workflow"):
        build_jobs([str(tmp_path / "empty")], [{}], registry)


def test_jobs_sharing_prompts_run_back_to_back(tmp_path, registry):
    workflow = tiny_workflow(tmp_path)
    jobs = build_jobs([str(workflow)], cli_variants([], ["7.seed=1..4", "4.text=a,b,c"], []), registry)
    texts = [j.prompt["4"]["inputs"]["text"] for j in reuse_order(jobs)]
    assert texts[:4] == [texts[0]] * 4 and texts[4:8] == [texts[4]] * 4 and len(set(texts)) == 3


def test_manifest_append_read_and_output_check(tmp_path):
    manifest = Manifest(tmp_path)
    staging = manifest.staging_dir("abc")
    (staging / "sub").mkdir()
    (staging / "sub" / "f.png").write_bytes(b"frame")
    outputs = manifest.commit_outputs("abc", staging)
    assert outputs[0]["path"] == "sub/f.png" and outputs[0]["size"] == 5 and not staging.exists()
    manifest.append({"id": "abc", "status": "ok", "outputs": outputs})
    with open(manifest.path, "a") as handle:
        handle.write('{"id": "torn", "sta')  # a kill in the middle of a write leaves at most this
    assert list(manifest.latest()) == ["abc"]
    assert manifest.outputs_match(manifest.latest()["abc"])
    (manifest.job_dir("abc") / "sub" / "f.png").write_bytes(b"frams")
    assert not manifest.outputs_match(manifest.latest()["abc"])


def test_resume_plan(tmp_path, registry):
    workflow = tiny_workflow(tmp_path)
    jobs = build_jobs([str(workflow)], cli_variants([], ["7.seed=1..5"], []), registry)
    manifest = Manifest(tmp_path / "out")
    done, changed, failed, missing, _ = jobs
    for job in (done, changed):
        folder = manifest.staging_dir(job.id)
        (folder / "a.png").write_bytes(job.id.encode())
        manifest.append({"id": job.id, "status": "ok", "outputs": manifest.commit_outputs(job.id, folder)})
    (manifest.job_dir(changed.id) / "a.png").write_bytes(b"edited")
    manifest.append({"id": failed.id, "status": "failed", "outputs": []})
    manifest.append({"id": missing.id, "status": "ok", "outputs": [{"path": "gone.png", "size": 1, "sha256": "0"}]})

    def ids(**flags):
        to_run, skipped = plan(jobs, manifest, BatchOptions(output_dir=manifest.output_dir, **flags))
        return sorted(j.index for j in to_run), sorted(j.index for j in skipped)

    assert ids() == ([1, 3, 4], [0, 2])
    assert ids(retry_failed=True) == ([1, 2, 3, 4], [0])
    assert ids(only_failed=True) == ([2], [0, 1, 3, 4])
