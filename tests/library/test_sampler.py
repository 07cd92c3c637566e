import pytest
import torch

from denoise_core.sampler import AdaptiveSampler

NAMES = ["gaussian_noise", "jpeg", "motion_blur", "low_light"]


def test_weights_start_uniform_and_sum_to_one():
    s = AdaptiveSampler(NAMES)
    assert torch.allclose(s.weights, torch.full((4,), 0.25, dtype=torch.float64))


@pytest.mark.parametrize("temperature", [0.05, 0.5, 5.0])
@pytest.mark.parametrize("floor", [0.0, 0.05, 0.2])
def test_update_properties(temperature, floor):
    s = AdaptiveSampler(NAMES, temperature=temperature, floor=floor)
    losses = {"gaussian_noise": 0.02, "jpeg": 0.09, "motion_blur": 0.05, "low_light": 0.01}
    w = s.update(losses)
    assert abs(w.sum().item() - 1) < 1e-9
    assert (w >= floor - 1e-12).all()
    assert NAMES[int(w.argmax())] == "jpeg"
    assert NAMES[int(w.argmin())] == "low_light"


def test_recorded_relative_difficulty():
    s = AdaptiveSampler(NAMES, difficulty="relative")
    idx = torch.tensor([0, 0, 1, 1, 2, 3])
    # gaussian: output loss high but input loss much higher -> mostly repaired (ratio 0.1)
    # jpeg: output loss low but barely better than input -> hardest (ratio 0.9)
    s.record(idx, torch.tensor([0.1, 0.1, 0.009, 0.009, 0.05, 0.02]), torch.tensor([1.0, 1.0, 0.01, 0.01, 0.1, 0.1]))
    w = s.update()
    assert NAMES[int(w.argmax())] == "jpeg"
    s2 = AdaptiveSampler(NAMES, difficulty="absolute")
    s2.record(idx, torch.tensor([0.1, 0.1, 0.009, 0.009, 0.05, 0.02]), torch.tensor([1.0, 1.0, 0.01, 0.01, 0.1, 0.1]))
    assert NAMES[int(s2.update().argmax())] == "gaussian_noise"


def test_unseen_degradation_keeps_weight_and_uniform_mode():
    s = AdaptiveSampler(NAMES, adaptive=False)
    s.update({"jpeg": 1.0, "gaussian_noise": 0.1})
    assert torch.allclose(s.weights, torch.full((4,), 0.25, dtype=torch.float64))
    s = AdaptiveSampler(NAMES)
    w = s.update({"jpeg": 1.0, "gaussian_noise": 0.1})
    assert w[2] > w[0] and w[2] < w[1]  # unseen ones sit at the average difficulty


def test_state_dict_round_trip_exact():
    s = AdaptiveSampler(NAMES, temperature=0.3, floor=0.01, smoothing=0.5)
    s.update({"gaussian_noise": 0.3, "jpeg": 0.1, "motion_blur": 0.2, "low_light": 0.05})
    s.record(torch.tensor([1, 2]), torch.tensor([0.5, 0.25]), torch.tensor([1.0, 1.0]))
    t = AdaptiveSampler(NAMES, temperature=0.3, floor=0.01, smoothing=0.5)
    t.load_state_dict(s.state_dict())
    assert torch.equal(s.weights, t.weights) and torch.equal(s.difficulty, t.difficulty)
    assert torch.equal(s.update(), t.update())
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    assert torch.equal(s.draw(100, g1), t.draw(100, g2))


def test_draw_follows_weights():
    s = AdaptiveSampler(NAMES, floor=0.0, temperature=0.1)
    s.update({"gaussian_noise": 0.1, "jpeg": 1.0, "motion_blur": 0.1, "low_light": 0.1})
    draws = s.draw(5000, torch.Generator().manual_seed(0))
    freq = torch.bincount(draws, minlength=4).double() / 5000
    assert torch.allclose(freq, s.weights, atol=0.03)


def test_bad_options():
    with pytest.raises(ValueError, match="floor"):
        AdaptiveSampler(NAMES, floor=0.3)
    with pytest.raises(ValueError, match="temperature"):
        AdaptiveSampler(NAMES, temperature=0)
    with pytest.raises(ValueError):
        AdaptiveSampler(NAMES).load_state_dict(AdaptiveSampler(NAMES[:2]).state_dict())


def test_group_dro_rule_accumulates_toward_the_worst():
    """rule="dro": weights grow multiplicatively toward a degradation that stays the hardest, beyond what the
    softmax rule gives for the same (unchanging) difficulties, and the state round-trips."""
    names = ["gaussian_noise", "jpeg", "gaussian_blur"]
    dro = AdaptiveSampler(names, rule="dro", dro_step=0.5, floor=0.0)
    soft = AdaptiveSampler(names, temperature=0.5, floor=0.0)
    difficulty = {"gaussian_noise": 0.2, "jpeg": 0.9, "gaussian_blur": 0.5}
    history = [dro.update(difficulty)[1].item() for _ in range(6)]
    soft_w = [soft.update(difficulty)[1].item() for _ in range(6)]
    assert all(b > a for a, b in zip(history, history[1:]))  # keeps moving toward jpeg
    assert soft_w[0] == pytest.approx(soft_w[-1])  # the softmax rule settles at once
    assert history[-1] > soft_w[-1] > 1 / 3
    again = AdaptiveSampler(names, rule="dro", dro_step=0.5, floor=0.0)
    again.load_state_dict(dro.state_dict())
    assert torch.equal(again.update(difficulty), dro.update(difficulty))
    with pytest.raises(ValueError, match="rule"):
        AdaptiveSampler(names, rule="greedy")
