"""Outputs under concurrency and hostile settings: parallel runs, killed runs, checks before compute, CLI messages."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from framefold.host.cli import main, prepare_output_dir, typed_value
from framefold.host.registry import NodeRegistry, default_registry
from framefold.host.validate import validate_prompt
from framefold.nodes import _folders
from framefold.pipelines import progress
from framefold.pipelines.video.io import write_video_numbered
from framefold.pipelines.video.naming import claim_numbered_name, clean_stale_temp_files, temp_name

PARALLEL_RUNS = 8


def synthetic_to_video(**save):
    """A cheap real workflow: a synthetic 8-frame clip saved as mp4."""
    return {
        "1": {
            "class_type": "FrameFoldSyntheticVideo",
            "inputs": {"caption": "a red circle moving left on a black background", "seed": 3, "frames": 8, "size": 64},
        },
        "2": {
            "class_type": "FrameFoldSaveVideo",
            "inputs": {
                "images": ["1", 0],
                "fps": 8.0,
                "filename_prefix": "r",
                "format": "mp4",
                "crf": 19,
                "lossless": False,
                **save,
            },
        },
    }


@pytest.fixture
def output_dir(tmp_path):
    saved = dict(_folders._dirs)
    _folders.set_io_dirs(output=tmp_path / "out", input=tmp_path / "in")
    yield tmp_path / "out"
    _folders._dirs.clear()
    _folders._dirs.update(saved)


def test_parallel_cli_runs_into_one_folder_write_distinct_identical_files(tmp_path):
    workflow = tmp_path / "w.json"
    workflow.write_text(json.dumps(synthetic_to_video()))
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "framefold.host.cli", "run", str(workflow), "--output-dir", str(out), "--quiet"]
    runs = [
        subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(PARALLEL_RUNS)
    ]
    listed = []
    for run in runs:
        stdout, stderr = run.communicate(timeout=600)
        assert run.returncode == 0, stderr
        written = [line[len("wrote ") :] for line in stdout.splitlines() if line.startswith("wrote ")]
        assert len(written) == 1, stdout
        listed.append(Path(written[0]))
    assert len(set(listed)) == PARALLEL_RUNS
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in listed)  # no temp file left
    contents = {p.read_bytes() for p in listed}
    assert len(contents) == 1  # deterministic encoding (the default of `framefold run`): identical bytes


def test_numbered_names_are_claimed_atomically_by_threads(tmp_path):
    def claim(k):
        tmp = tmp_path / temp_name("x")
        tmp.write_text(str(k))
        claimed.append(claim_numbered_name(tmp, tmp_path, "x", ".txt"))

    claimed = []
    threads = [threading.Thread(target=claim, args=(k,)) for k in range(24)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(claimed)) == 24
    assert sorted(p.read_text() for p in claimed) == sorted(str(k) for k in range(24))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"x_{n:05d}_.txt" for n in range(1, 25))


def test_numbered_png_sequence_folder_takes_the_next_name(tmp_path):
    frames = torch.rand(2, 8, 8, 3)
    first = write_video_numbered(frames, tmp_path, "seq", format="png")
    second = write_video_numbered(frames, tmp_path, "seq", format="png")
    assert (first.name, second.name) == ("seq_00001_", "seq_00002_")
    assert sorted(p.name for p in second.iterdir()) == ["frame_00000.png", "frame_00001.png"]


def test_temp_files_of_killed_runs_are_removed_and_live_ones_kept(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    sub = tmp_path / "sub"
    sub.mkdir()
    stale_file = sub / f".r_00001_.mp4.{dead.pid}-0123abcd.tmp.mp4"
    stale_file.write_bytes(b"half")
    stale_folder = tmp_path / f".seq_00001_.{dead.pid}-89abcdef.tmp"
    stale_folder.mkdir()
    (stale_folder / "frame_00000.png").write_bytes(b"x")
    live = tmp_path / temp_name("r_00002_.mp4", ".mp4")
    live.write_bytes(b"in progress")
    keep = tmp_path / "r_00001_.mp4"
    keep.write_bytes(b"done")
    assert sorted(clean_stale_temp_files(tmp_path)) == sorted([stale_file, stale_folder])
    assert live.exists() and keep.exists() and not stale_file.exists() and not stale_folder.exists()


def test_unwritable_output_folder_is_refused_before_compute(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert prepare_output_dir(blocker / "out") is not None
    workflow = tmp_path / "w.json"
    workflow.write_text(json.dumps(synthetic_to_video()))
    assert main(["run", str(workflow), "--output-dir", str(blocker / "out"), "--quiet"]) == 2
    assert "not writable" in capsys.readouterr().err


@pytest.mark.parametrize(
    "change, expected",
    [
        ({"crf": 60}, "input 'crf': 0..51 for mp4, got 60"),
        ({"format": "webm", "crf": 64}, "Value 64 bigger than max of 63"),
        ({"filename_prefix": "../escape/r"}, "input 'filename_prefix'"),
        ({"filename_prefix": "/abs/r"}, "input 'filename_prefix'"),
    ],
)
def test_save_settings_are_refused_at_validation(output_dir, change, expected):
    result = validate_prompt(synthetic_to_video(**change), default_registry())
    assert not result.ok
    messages = " ".join(e["message"] for e in result.node_errors["2"]["errors"])
    assert expected in messages


def test_widget_step_is_validated(output_dir):
    prompt = synthetic_to_video()
    prompt["1"]["inputs"]["size"] = 63
    result = validate_prompt(prompt, default_registry())
    (error,) = result.node_errors["1"]["errors"]
    assert error["type"] == "value_not_on_step" and "nearest allowed: 56 or 64" in error["message"]


def test_set_values_are_typed_by_the_input(tmp_path, output_dir, capsys):
    registry = default_registry()
    spec = registry.input_types("FrameFoldSyntheticVideo")["required"]
    assert typed_value("[1,2]", spec["frames"])[1] == "INT input: expected a single value, got [1,2]"
    assert typed_value("12", spec["frames"]) == (12, None)
    assert typed_value("[1,2]", spec["caption"]) == ("[1,2]", None)  # STRING keeps the text
    workflow = tmp_path / "w.json"
    workflow.write_text(json.dumps(synthetic_to_video()))
    assert main(["run", "--check", str(workflow), "--set", "1.frames=[1,2]"], registry=registry) == 2
    err = capsys.readouterr().err
    assert "--set 1.frames=[1,2]: node 1 (FrameFoldSyntheticVideo): INT input: expected a single value" in err
    assert main(["run", "--check", str(workflow), "--set", "2.images=3"], registry=registry) == 2
    assert "takes a link from a node's IMAGE output" in capsys.readouterr().err


def test_a_failure_prints_one_message_and_the_traceback_only_with_debug(tmp_path, output_dir, capsys):
    workflow = tmp_path / "w.json"
    prompt = synthetic_to_video()
    prompt["1"]["inputs"]["caption"] = "a plaid unicorn"  # not in the caption grammar: fails at run time
    workflow.write_text(json.dumps(prompt))
    out = tmp_path / "o"
    assert main(["run", str(workflow), "--quiet", "--output-dir", str(out)]) == 1
    err = capsys.readouterr().err
    failure = [line for line in err.splitlines() if "failed" in line or "FrameFoldSyntheticVideo" in line]
    assert len(failure) == 1 and "Traceback" not in err, err
    assert main(["run", str(workflow), "--quiet", "--debug", "--output-dir", str(out)]) == 1
    assert "Traceback" in capsys.readouterr().err


class TDecodeUntilInterrupted:
    """Stands for a long decode: presses Ctrl-C (SIGINT to its own process), then works until the interrupt
    lands, saving its latents on the way out the way FrameFoldVAEDecode does (nodes/latent.py)."""

    RETURN_TYPES = ()
    OUTPUT_NODE = True
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {}}

    def run(self):
        os.kill(os.getpid(), signal.SIGINT)
        try:
            for _ in range(3000):
                progress.check_interrupt()
                time.sleep(0.01)
        except progress.Interrupted as e:
            saved = _folders.io_dir("output") / "decode_failed.latent"
            saved.write_bytes(b"latents")
            raise progress.Interrupted(f"{e}; the latents were saved to {saved}") from e
        raise AssertionError("the interrupt never reached the node")


def test_ctrl_c_interrupts_the_node_cleanly_and_says_where_the_latents_are(tmp_path, capsys):
    registry = NodeRegistry({"TDecode": TDecodeUntilInterrupted})
    workflow = tmp_path / "w.json"
    workflow.write_text(json.dumps({"1": {"class_type": "TDecode", "inputs": {}}}))
    out = tmp_path / "out"
    assert main(["run", str(workflow), "--quiet", "--output-dir", str(out)], registry=registry) == 1
    err = capsys.readouterr().err
    saved = out / "decode_failed.latent"
    assert saved.read_bytes() == b"latents"
    assert f"interrupted at node 1 (TDecode): interrupted by the user; the latents were saved to {saved}" in err
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # Ctrl-C handling restored


@pytest.mark.parametrize("text", ["nan", "inf", "-Infinity", "1e999", "1" + "0" * 400])
def test_set_refuses_non_finite_numbers(text):
    spec = ("FLOAT", {"default": 1.0})
    value, reason = typed_value(text, spec)
    assert value is None and "expected a finite number" in reason
