"""Training the default ControlNet: encoder copy, keyframe masks, object weights, warm start, resume."""

import json

import numpy as np
import pytest
import torch

from framefold.pipelines import synthetic
from framefold.training import controlnet as cn_training


def test_object_weight_map_covers_the_object_on_the_latent_grid():
    scene = synthetic.layout_scene("red", "circle", "right", "white", 0)
    video = synthetic.render_scene(scene)[None]
    weight = cn_training.object_weight_map(video, 16, 3.0)
    assert weight.shape == (16, 1, 16, 16)
    assert set(weight.unique().tolist()) == {1.0, 4.0}
    for frame in (0, 15):
        cx, cy = scene.start if frame == 0 else scene.end
        assert weight[frame, 0, int(cy) // 4, int(cx) // 4] == 4.0  # the centre is on the object
        assert weight[frame, 0].eq(4.0).sum() < 0.2 * 256  # the background is not weighted up


def test_keyframe_masks_keep_all_or_a_few_frames():
    rng = np.random.default_rng(0)
    masks = [cn_training.keyframe_mask(rng, 16, 0.5) for _ in range(200)]
    full = sum(bool(m.all()) for m in masks)
    assert 60 < full < 140
    assert all(1 <= int(m.sum()) <= 4 for m in masks if not m.all())


def test_keyframe_loss_weights_raise_only_the_controlled_frames_of_keyframe_clips():
    keep = torch.ones(2, 16)
    keep[1] = 0
    keep[1, [0, 15]] = 1  # clip 1: keyframe control on its first and last frames
    weights = cn_training.keyframe_loss_weights(keep.flatten(), 16, 5.0).view(2, 16)
    assert torch.equal(weights[0], torch.ones(16))  # fully controlled clip: unchanged
    assert weights[1, 0] == weights[1, 15] == 6.0
    assert torch.equal(weights[1, 1:15], torch.ones(14))


def test_training_steps_run_save_resume_and_warm_start(tmp_path, capsys):
    common = ["--threads", "1", "--batch", "1", "--log-every", "1", "--object-weight", "2", "--keyframe-weight", "4"]
    cn_training.main(common + ["--state", str(tmp_path / "a.pt"), "--out", str(tmp_path / "a"), "--steps", "2"])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line.get("step") for line in lines if "step" in line] == [1, 2]
    assert all(np.isfinite(line["loss"]) for line in lines if "loss" in line)
    exported = tmp_path / "a" / cn_training.EXPORT_NAME
    assert exported.is_file()

    cn_training.main(common + ["--state", str(tmp_path / "a.pt"), "--out", str(tmp_path / "a"), "--steps", "3"])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines[0] == {"resumed": 2} and lines[-1] == {"done": 3}

    # a warm start takes the exported weights (not the UNet's encoder copy with zero convs)
    args = cn_training.parse_args(["--init-from", str(exported), "--batch", "1"])
    trainer = cn_training.Trainer(args)
    from framefold.pipelines.loading.controlnet import load_controlnet

    saved = load_controlnet(exported).model.state_dict()
    assert all(torch.equal(v, saved[k]) for k, v in trainer.controlnet.state_dict().items())
    with pytest.raises(SystemExit, match="not a ControlNet"):
        cn_training.initial_weights(str(exported), cn_training.ControlNetModel(_other_config(trainer)))


def _other_config(trainer):
    from dataclasses import replace

    from framefold.pipelines.models.controlnet import ControlNetConfig

    config = trainer.controlnet.config
    return ControlNetConfig(replace(config.unet, model_channels=16), config.hint_channels, (16, 16, 16))
