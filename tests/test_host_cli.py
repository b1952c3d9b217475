"""The framefold command: run (exit codes 0/2/1, --set, --sweep, folders), nodes, models, convert."""

import json
import shutil
from pathlib import Path

import pytest
from test_host_support import CALLS, isolated_io, make_registry  # noqa: F401 (autouse fixture)

from framefold.host.cli import main

UI_DIR = Path(__file__).parent / "data" / "ui"


def run(argv):
    return main(argv, registry=make_registry())


def write(path, data):
    path.write_text(json.dumps(data))
    return path


def api_prompt(**source):
    inputs = {"seed": 1, "size": 4, "label": "red", **source}
    return {
        "1": {"class_type": "TSource", "inputs": inputs},
        "2": {"class_type": "TSave", "inputs": {"data": ["1", 0], "filename_prefix": "cli"}},
    }


def test_run_ui_file_lists_written_files(tmp_path, capsys):
    out = tmp_path / "elsewhere"
    code = run(["run", str(UI_DIR / "seed_control.json"), "--output-dir", str(out), "--quiet"])
    assert code == 0
    saved = json.loads((out / "seeded_2.json").read_text())
    assert saved["data"]["seed"] == 1234 and saved["has_workflow"] is True
    assert f"wrote {out / 'seeded_2.json'}" in capsys.readouterr().out


def test_run_invalid_workflow_exits_2_and_prints_errors(tmp_path, capsys):
    path = write(tmp_path / "bad.json", api_prompt(size=0, label="purple"))
    assert run(["run", str(path)]) == 2
    err = capsys.readouterr().err
    assert "node 1 (TSource), input 'size': Value 0 smaller than min of 1" in err
    assert "input 'label'" in err
    assert CALLS == {}


def test_run_partly_invalid_workflow_is_still_invalid_for_the_cli(tmp_path):
    prompt = api_prompt()
    prompt["3"] = {"class_type": "TAny", "inputs": {"value": ["9", 0]}}
    assert run(["run", str(write(tmp_path / "w.json", prompt))]) == 2
    assert CALLS == {}


def test_run_failure_exits_1(tmp_path, capsys):
    prompt = api_prompt()
    prompt["3"] = {"class_type": "TFail", "inputs": {"data": ["1", 0], "kind": "runtime"}}
    prompt["4"] = {"class_type": "TAny", "inputs": {"value": ["3", 0]}}
    assert run(["run", str(write(tmp_path / "w.json", prompt)), "--quiet"]) == 1
    assert "node 3 (TFail) failed: boom" in capsys.readouterr().err


def test_unreadable_file_exits_2(tmp_path):
    (tmp_path / "broken.json").write_text("{not json")
    assert run(["run", str(tmp_path / "broken.json")]) == 2
    assert run(["run", str(tmp_path / "missing.json")]) == 2


def test_set_overrides_inputs(tmp_path, isolated_io):
    path = write(tmp_path / "w.json", api_prompt())
    code = run(
        ["run", str(path), "--set", "1.size=9", "--set", "2.filename_prefix=over", "--set", "1.label=blue", "--quiet"]
    )
    assert code == 0
    saved = json.loads((isolated_io["output"] / "over_2.json").read_text())
    assert saved["data"]["size"] == 9 and saved["data"]["label"] == "blue"
    assert run(["run", str(path), "--set", "7.size=9"]) == 2
    assert run(["run", str(path), "--set", "1.nope=9"]) == 2
    assert run(["run", str(path), "--set", "size=9"]) == 2
    assert run(["run", str(path), "--set", "1.size=999"]) == 2  # out of range after the override


def test_sweep_runs_every_value(tmp_path, isolated_io):
    path = write(tmp_path / "w.json", api_prompt())
    code = run(["run", str(path), "--sweep", "2.filename_prefix=a,b,c", "--quiet"])
    assert code == 0
    assert sorted(p.name for p in isolated_io["output"].iterdir()) == ["a_2.json", "b_2.json", "c_2.json"]
    assert CALLS["TSource"] == 1  # the source is cached across the sweep


def test_run_folder_runs_every_workflow(tmp_path, isolated_io):
    folder = tmp_path / "flows"
    folder.mkdir()
    for name in ("seed_control.json", "reroute_primitive_schema1.json", "subgraph.json"):
        shutil.copy(UI_DIR / name, folder / name)
    assert run(["run", str(folder), "--quiet"]) == 0
    assert sorted(p.name for p in isolated_io["output"].iterdir()) == ["rerouted_3.json", "seeded_2.json", "sub_3.json"]
    sub = json.loads((isolated_io["output"] / "sub_3.json").read_text())
    assert sub["data"]["factor"] == 3.0 and sub["data"]["note"] == "inner"


def test_convert_both_ways(tmp_path, capsys):
    api_path, ui_path, back_path = tmp_path / "a.json", tmp_path / "u.json", tmp_path / "b.json"
    assert run(["convert", str(UI_DIR / "converted_widget.json"), str(api_path), "--to", "api"]) == 0
    assert run(["convert", str(api_path), str(ui_path), "--to", "ui"]) == 0
    assert run(["convert", str(ui_path), str(back_path), "--to", "api"]) == 0
    api = json.loads(api_path.read_text())
    assert api["2"]["inputs"]["size"] == ["1", 0]
    assert json.loads(back_path.read_text()) == api
    assert json.loads(ui_path.read_text())["version"] == 0.4


def test_nodes_listing_and_json(capsys):
    assert run(["nodes"]) == 0
    out = capsys.readouterr().out
    assert "TSave" in out and "[output]" in out
    assert run(["nodes", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["TSource"]["input_order"] == {"required": ["seed", "size", "label"]}
    assert info["TSave"]["output_node"] is True


def test_models_lists_every_kind(capsys, monkeypatch, tmp_path):
    (tmp_path / "models" / "vae").mkdir(parents=True)
    (tmp_path / "models" / "vae" / "tiny.safetensors").write_bytes(b"x")
    monkeypatch.setenv("FRAMEFOLD_MODELS", str(tmp_path / "models"))
    assert run(["models"]) == 0
    out = capsys.readouterr().out
    assert "checkpoints:" in out and "animatediff_models:" in out
    assert "tiny.safetensors" in out and str(tmp_path / "models" / "vae") in out


def test_serve_calls_the_server(monkeypatch):
    import sys
    import types

    calls = {}
    fake = types.ModuleType("framefold.host.server")
    fake.serve = lambda **kwargs: calls.update(kwargs)
    monkeypatch.setitem(sys.modules, "framefold.host.server", fake)
    import framefold.host as host_pkg

    monkeypatch.setattr(host_pkg, "server", fake, raising=False)
    assert run(["serve", "--port", "9999", "--max-upload-mb", "300", "--allow-host", "box.lan"]) == 0
    assert calls == {
        "listen": "127.0.0.1",
        "port": 9999,
        "open_browser": False,
        "max_upload_mb": 300.0,
        "output_dir": None,
        "input_dir": None,
        "user_dir": None,
        "temp_dir": None,
        "allowed_hosts": ("box.lan",),
    }


def test_usage_error_exits_2():
    with pytest.raises(SystemExit) as info:
        run(["frobnicate"])
    assert info.value.code == 2


def test_reseed_changes_only_seed_inputs_and_set_wins(tmp_path, isolated_io, capsys):
    path = write(tmp_path / "w.json", api_prompt(seed=1234))
    assert run(["run", str(path), "--reseed-with", "5", "--quiet"]) == 0
    first = json.loads((isolated_io["output"] / "cli_2.json").read_text())["data"]
    assert first["seed"] != 1234 and first["size"] == 4  # size has no control_after_generate
    assert "input 'seed' re-seeded to" in capsys.readouterr().err
    assert run(["run", str(path), "--reseed-with", "5", "--quiet"]) == 0
    again = json.loads((isolated_io["output"] / "cli_2.json").read_text())["data"]
    assert again["seed"] == first["seed"]  # reproducible from the --reseed-with value
    assert run(["run", str(path), "--reseed", "--set", "1.seed=77", "--quiet"]) == 0
    assert json.loads((isolated_io["output"] / "cli_2.json").read_text())["data"]["seed"] == 77
