"""The upscaler training script: seeded, and a few steps already lower the loss."""

import torch

from framefold.training import train_upscalers as training


def test_training_is_seeded_and_learns():
    """Two runs with one seed give identical weights; the loss after 30 steps is below the first steps'."""
    config = training.MODELS["framefold-tiny-compact-x2"]
    pool = training.frame_pool(0, clips=2)
    lr_crop, hr_crop = training.random_crops(pool, torch.Generator().manual_seed(0), batch=4)
    assert lr_crop.shape == (4, 3, 24, 24) and hr_crop.shape == (4, 3, 48, 48)
    assert torch.allclose(training.downscale(hr_crop), lr_crop)
    a, loss_a = training.train_upscaler(config, steps=30, clips=2, batch=4)
    b, _ = training.train_upscaler(config, steps=30, clips=2, batch=4)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    torch.manual_seed(0)
    untrained = training.build_upscaler(config)
    with torch.no_grad():
        before = float(torch.nn.functional.mse_loss(untrained(lr_crop), hr_crop))
        after = float(torch.nn.functional.mse_loss(a(lr_crop), hr_crop))
    assert after < before
