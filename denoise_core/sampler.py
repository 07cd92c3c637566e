"""Adaptive degradation weights.

Each training sample draws its degradation from categorical weights ``p``.
The weights move toward the degradations the model finds hardest.

The rule, applied at every update (once per epoch by default):

1. For each degradation ``i`` the training loop records the per-sample loss of
   the model's output and of the degraded input itself (both against the clean
   image). Over the update interval their means give the *difficulty*

   - ``relative`` (default): ``d_i = mean loss(output) / mean loss(input)``, the
     fraction of the damage the model has not repaired. Without this, a
     degradation that is merely loud (sigma=50 noise) would crowd out one the
     model cannot yet repair at all (JPEG blocking), however little of it there is.
   - ``absolute``: ``d_i = mean loss(output)``.

   Optionally smoothed across intervals: ``D_i <- s * D_i + (1 - s) * d_i``
   (``smoothing`` s, default 0: the latest interval decides). Degradations not
   drawn in an interval keep their previous difficulty.
2. ``p = floor + (1 - K * floor) * softmax(D / (mean(D) * temperature))``. Dividing
   by the mean makes the temperature scale-free; the floor guarantees each of
   the K degradations at least ``floor`` probability so none starves.

``rule="dro"`` replaces step 2 with online group DRO (Sagawa et al., 2020, "Distributionally
Robust Neural Networks"): exponentiated-gradient ascent on the weights, ``q_i <- q_i * exp(eta * d_i /
mean(d))``, renormalised, then the floor. Where the softmax rule sets the weights from the latest
difficulties alone, this one accumulates them, and so keeps moving toward the worst degradation
for as long as it stays the worst (the minimax objective: the loss of the worst group). ``eta`` is
``dro_step`` (default 0.1).

``prior`` (name -> relative share, default 1 each) multiplies the softmax before
the floor is added, so a run can give noise, say, three times the share the rule
alone would; with ``adaptive=False`` the weights stay at the normalised prior
(uniform without one: the ablation baseline).
"""

from __future__ import annotations

import torch

from .degradations import validate_names


class AdaptiveSampler:
    """Categorical degradation weights updated from per-degradation losses."""

    def __init__(
        self,
        names: list[str] | tuple[str, ...],
        *,
        temperature: float = 0.5,
        floor: float = 0.02,
        smoothing: float = 0.0,
        difficulty: str = "relative",
        adaptive: bool = True,
        prior: dict[str, float] | None = None,
        rule: str = "softmax",
        dro_step: float = 0.1,
    ) -> None:
        self.names = validate_names(names)
        k = len(self.names)
        prior = prior or {}
        unknown = sorted(set(prior) - set(self.names))
        if unknown:
            raise ValueError(f"prior names degradation(s) not in this run: {', '.join(unknown)}")
        if any(not v > 0 for v in prior.values()):
            raise ValueError(f"prior shares must be > 0, got {prior}")
        self.prior = torch.tensor([float(prior.get(n, 1.0)) for n in self.names], dtype=torch.float64)
        self.prior /= self.prior.sum()
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        if not 0.0 <= floor or k * floor > 1.0:
            raise ValueError(f"floor must be in [0, 1/{k}] for {k} degradations, got {floor}")
        if not 0.0 <= smoothing < 1.0:
            raise ValueError(f"smoothing must be in [0, 1), got {smoothing}")
        if difficulty not in ("relative", "absolute"):
            raise ValueError(f"difficulty must be 'relative' or 'absolute', got {difficulty!r}")
        if rule not in ("softmax", "dro"):
            raise ValueError(f"rule must be 'softmax' or 'dro', got {rule!r}")
        if not dro_step > 0:
            raise ValueError(f"dro_step must be > 0, got {dro_step}")
        self.rule, self.dro_step = rule, float(dro_step)
        self.dual = self.prior.clone()  # group DRO's weights before the floor
        self.temperature = float(temperature)
        self.floor = float(floor)
        self.smoothing = float(smoothing)
        self.difficulty_mode = difficulty
        self.adaptive = adaptive
        self.weights = self.prior.clone()
        self.difficulty = torch.zeros(k, dtype=torch.float64)
        self.seen = torch.zeros(k, dtype=torch.bool)
        self.updates = 0
        self.reset_stats()

    # -- recording -------------------------------------------------------
    def reset_stats(self) -> None:
        """Clear the losses accumulated since the last update."""
        k = len(self.names)
        self.loss_sum = torch.zeros(k, dtype=torch.float64)
        self.input_loss_sum = torch.zeros(k, dtype=torch.float64)
        self.count = torch.zeros(k, dtype=torch.float64)

    def record(self, indices: torch.Tensor, losses: torch.Tensor, input_losses: torch.Tensor | None = None) -> None:
        """Accumulate per-sample losses; ``indices`` are degradation indices, shape (B,).

        Negative indices (undegraded samples, `data.CLEAN`) are not any degradation's and are skipped.
        """
        idx = indices.detach().long().cpu()
        keep = idx >= 0
        idx, losses = idx[keep], losses.detach().cpu()[keep]
        self.loss_sum.index_add_(0, idx, losses.double())
        if input_losses is not None:
            self.input_loss_sum.index_add_(0, idx, input_losses.detach().cpu()[keep].double())
        self.count.index_add_(0, idx, torch.ones_like(idx, dtype=torch.float64))

    def stats_tensor(self) -> torch.Tensor:
        """Accumulators stacked as one (3, K) tensor, for all-reducing across ranks."""
        return torch.stack([self.loss_sum, self.input_loss_sum, self.count])

    def load_stats_tensor(self, stats: torch.Tensor) -> None:
        self.loss_sum, self.input_loss_sum, self.count = (s.double().cpu().clone() for s in stats)

    # -- updating --------------------------------------------------------
    def update(self, losses: dict[str, float] | None = None) -> torch.Tensor:
        """Move the weights toward the hardest degradations; returns the new weights.

        ``losses`` (name -> difficulty) replaces the recorded statistics when given.
        """
        if losses is not None:
            new = torch.tensor([float(losses.get(n, float("nan"))) for n in self.names], dtype=torch.float64)
        else:
            mean = self.loss_sum / self.count.clamp(min=1)
            if self.difficulty_mode == "relative":
                base = self.input_loss_sum / self.count.clamp(min=1)
                new = mean / base.clamp(min=1e-8)
            else:
                new = mean
            new[self.count == 0] = float("nan")
        fresh = ~torch.isnan(new)
        first = fresh & ~self.seen
        blend = fresh & self.seen
        self.difficulty[first] = new[first]
        self.difficulty[blend] = self.smoothing * self.difficulty[blend] + (1 - self.smoothing) * new[blend]
        self.seen |= fresh
        self.updates += 1
        self.reset_stats()
        if self.adaptive and self.seen.any():
            d = self.difficulty.clone()
            d[~self.seen] = d[self.seen].mean()  # unseen: assume average difficulty
            if self.rule == "dro":
                log_q = torch.log(self.dual.clamp(min=1e-300)) + self.dro_step * d / d.mean().clamp(min=1e-12)
                self.dual = torch.softmax(log_q, dim=0)
                soft = self.dual
            else:
                scale = d.mean().clamp(min=1e-12) * self.temperature
                soft = torch.softmax(d / scale, dim=0)
                if bool((self.prior != self.prior[0]).any()):  # uniform: leave the softmax as it is
                    soft = soft * self.prior / (soft * self.prior).sum()
            k = len(self.names)
            self.weights = self.floor + (1.0 - k * self.floor) * soft
            self.weights = self.weights / self.weights.sum()
        return self.weights.clone()

    # -- drawing ---------------------------------------------------------
    def draw(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """Draw ``n`` degradation indices from the current weights."""
        return torch.multinomial(self.weights.float(), n, replacement=True, generator=generator)

    def weights_dict(self) -> dict[str, float]:
        return {n: float(w) for n, w in zip(self.names, self.weights)}

    # -- persistence -----------------------------------------------------
    def state_dict(self) -> dict:
        return {
            "names": list(self.names),
            "weights": self.weights.clone(),
            "difficulty": self.difficulty.clone(),
            "seen": self.seen.clone(),
            "updates": self.updates,
            "loss_sum": self.loss_sum.clone(),
            "input_loss_sum": self.input_loss_sum.clone(),
            "count": self.count.clone(),
            "dual": self.dual.clone(),
        }

    def load_state_dict(self, state: dict) -> None:
        if list(state["names"]) != self.names:
            raise ValueError(f"sampler state is for degradations {state['names']}, not {self.names}")
        self.weights = state["weights"].clone().double()
        self.difficulty = state["difficulty"].clone().double()
        self.seen = state["seen"].clone().bool()
        self.updates = int(state["updates"])
        self.loss_sum = state["loss_sum"].clone().double()
        self.input_loss_sum = state["input_loss_sum"].clone().double()
        self.count = state["count"].clone().double()
        if "dual" in state:  # older states: the softmax rule, whose dual is unused
            self.dual = state["dual"].clone().double()
