"""nodes/_comfy_paths.py: FrameFold's model folders registered with ComfyUI's folder_paths (test double in
tests/comfy_double.py), extra_model_paths.yaml entries respected, core entries never changed."""

import os

import pytest
from comfy_double import install, load_extra_path_config

from framefold.nodes import _comfy_paths, _folders

FF_NAMES = ("animatediff_models", "animatediff_motion_lora", "frame_interpolation", "vfi_models")


@pytest.fixture
def fp(monkeypatch, tmp_path):
    return install(monkeypatch, tmp_path / "ComfyUI")


def test_missing_folders_get_standard_name_and_extensions(fp):
    added = _comfy_paths.register_if_inside_comfyui()
    assert sorted(added) == sorted(FF_NAMES)
    for name in FF_NAMES:
        paths, exts = fp.folder_names_and_paths[name]
        assert paths == [os.path.join(fp.models_dir, name)]
        assert exts == fp.supported_pt_extensions


def test_core_entries_are_not_clobbered(fp):
    before = {k: (list(v[0]), set(v[1])) for k, v in fp.folder_names_and_paths.items()}
    _comfy_paths.register_model_folders(fp)
    for name in ("controlnet", "upscale_models", "checkpoints"):
        assert fp.folder_names_and_paths[name][0] == before[name][0]
        assert fp.folder_names_and_paths[name][1] == before[name][1]


def test_registration_is_idempotent(fp):
    _comfy_paths.register_model_folders(fp)
    snapshot = {k: (list(v[0]), set(v[1])) for k, v in fp.folder_names_and_paths.items()}
    assert _comfy_paths.register_model_folders(fp) == []
    assert {k: (list(v[0]), set(v[1])) for k, v in fp.folder_names_and_paths.items()} == snapshot


def test_extra_model_paths_yaml_entries_kept_first(fp, tmp_path):
    shared = tmp_path / "shared"
    load_extra_path_config(
        fp,
        {"a1111": {"base_path": str(shared), "animatediff_models": "motion\nmotion2", "controlnet": "cn"}},
        str(tmp_path),
    )
    _comfy_paths.register_model_folders(fp)
    paths, exts = fp.folder_names_and_paths["animatediff_models"]
    assert paths == [str(shared / "motion"), str(shared / "motion2"), os.path.join(fp.models_dir, "animatediff_models")]
    assert exts == fp.supported_pt_extensions  # the yaml-made entry had none (= every file)
    assert fp.folder_names_and_paths["controlnet"][0][-1] == str(shared / "cn")


def test_framefold_finds_models_in_yaml_folders_and_vfi_alias(fp, tmp_path):
    shared = tmp_path / "shared"
    (shared / "motion").mkdir(parents=True)
    (shared / "motion" / "mm_sd15_v2.safetensors").write_bytes(b"x")
    (shared / "motion" / "notes.txt").write_text("not a model")
    vfi = os.path.join(fp.models_dir, "vfi_models")
    os.makedirs(vfi)
    open(os.path.join(vfi, "rife47.pth"), "wb").close()
    load_extra_path_config(fp, {"x": {"base_path": str(shared), "animatediff_models": "motion"}}, str(tmp_path))
    _comfy_paths.register_model_folders(fp)

    motion = _folders.list_models("animatediff_models")
    assert "mm_sd15_v2.safetensors" in motion and "notes.txt" not in motion
    assert _folders.resolve_model("animatediff_models", "mm_sd15_v2.safetensors") == shared / "motion" / (
        "mm_sd15_v2.safetensors"
    )
    assert "rife47.pth" in _folders.list_models("frame_interpolation")
    assert "mm_sd15_v2.safetensors" in fp.get_filename_list("animatediff_models")  # core's listing sees it too


def test_motion_lora_is_a_framefold_model_kind(fp):
    _comfy_paths.register_model_folders(fp)
    dirs = _folders.model_search_dirs("animatediff_motion_lora")
    assert dirs[-1] == _folders.Path(fp.models_dir) / "animatediff_motion_lora"


def test_outside_comfyui_nothing_is_registered():
    assert _comfy_paths.register_if_inside_comfyui() == []
