import pytest
import torch

from denoise_core.losses import RestorationLoss, ssim_window


def test_identical_inputs_give_zero():
    x = torch.rand(2, 3, 32, 32)
    assert RestorationLoss()(x, x).item() == pytest.approx(0.0, abs=1e-5)


@pytest.mark.parametrize("alpha", [0.0, 0.5, 0.95, 1.0])
@pytest.mark.parametrize("size", [(32, 32), (8, 12), (3, 5)])
def test_positive_finite_and_differentiable(alpha, size):
    y = torch.rand(2, 3, *size)
    x = (y + 0.1 * torch.randn_like(y)).requires_grad_()
    loss = RestorationLoss(alpha)(x, y)
    assert loss.item() > 0 and torch.isfinite(loss)
    loss.backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_small_patches_pick_window_or_refuse():
    assert ssim_window(64, 64) == 11
    assert ssim_window(8, 20) == 7
    with pytest.raises(ValueError, match="too small for SSIM"):
        RestorationLoss(0.5)(torch.rand(1, 3, 2, 8), torch.rand(1, 3, 2, 8))


def test_per_image_and_bad_alpha():
    y = torch.rand(3, 3, 16, 16)
    x = y.clone()
    x[1] += 0.2
    per = RestorationLoss().per_image(x.clamp(0, 1), y)
    assert per.shape == (3,) and per[1] > per[0]
    with pytest.raises(ValueError):
        RestorationLoss(1.5)
