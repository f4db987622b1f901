"""The policy gradient: the `reinforce` strategy's propose, update and state.

See the package's docstring (nas/strategies/reinforce/__init__.py) for the
formulations and the update rule; the policies are in controllers.py
(generate) and edit.py (edit).
"""

from __future__ import annotations

import copy
import io
import math
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
from torch import nn

from nas import layout
from nas.io import ArtefactError, CorruptArtefact, atomic_write_bytes, write_json
from nas.objectives import nondominated_ranks
from nas.options import choice, integer, number
from nas.spaces.base import Genome, SearchSpace
from nas.strategies.base import Evaluated, Proposal, Strategy, StrategyError, fittest, known
from nas.strategies.reinforce.controllers import CONTROLLERS, LSTMController, MLPController
from nas.strategies.reinforce.edit import EDIT_METHODS, STOP, EditActions, EditPolicy, StepBatch, can_stop

FORMULATIONS = ("generate", "edit")
REWARDS = ("weighted", "mnas", "pareto")
INIT_SEED = 0
PRETRAIN_LR = 0.01
EPS = 1e-8
STATE_KEYS = ("policy", "optimizer", "baseline", "epoch", "mean_reward")


class Reinforce(Strategy):
    name = "reinforce"

    def __init__(
        self,
        space: SearchSpace,
        population: int,
        formulation: str = "generate",
        controller: str | None = None,
        hidden: int = 64,
        lr: float = 0.005,
        entropy_weight: float = 1e-3,
        baseline_decay: float = 0.9,
        gamma: float = 1.0,
        max_edits: int = 4,
        updates_per_epoch: int = 1,
        reward: str = "weighted",
        reward_target: float | None = None,
        reward_exponent: float = -0.07,
    ) -> None:
        """controller: lstm or mlp for generate (default lstm); edit always uses
        its MLP policy, so only mlp (the default there) is accepted with it."""
        super().__init__(space, population)
        self.formulation = choice("reinforce", "formulation", formulation, FORMULATIONS, StrategyError)
        self.controller = _controller(formulation, controller)
        if formulation == "edit" and not all(callable(getattr(space, m, None)) for m in EDIT_METHODS):
            raise StrategyError(
                f"reinforce formulation 'edit' needs a space with {', '.join(EDIT_METHODS)} (the chain space); "
                f"space {space.name!r} has none of them; use formulation 'generate'"
            )
        self.hidden = integer("reinforce", "hidden", hidden, 1, StrategyError)
        self.lr = number("reinforce", "lr", lr, lambda v: v > 0, "> 0", StrategyError)
        self.entropy_weight = number("reinforce", "entropy_weight", entropy_weight, lambda v: v >= 0, ">= 0",
                                     StrategyError)
        self.baseline_decay = number("reinforce", "baseline_decay", baseline_decay, lambda v: 0 <= v < 1,
                                     "in [0, 1)", StrategyError)
        self.gamma = number("reinforce", "gamma", gamma, lambda v: 0 < v <= 1, "in (0, 1]", StrategyError)
        self.max_edits = integer("reinforce", "max_edits", max_edits, 1, StrategyError)
        self.updates_per_epoch = integer("reinforce", "updates_per_epoch", updates_per_epoch, 1, StrategyError)
        self.reward = choice("reinforce", "reward", reward, REWARDS, StrategyError)
        self.reward_target = None if reward_target is None else number(
            "reinforce", "reward_target", reward_target, lambda v: v > 0, "> 0", StrategyError)
        self.reward_exponent = number("reinforce", "reward_exponent", reward_exponent, lambda v: v <= 0, "<= 0",
                                      StrategyError)
        self.actions = EditActions(space, self.max_edits) if formulation == "edit" else None
        # One network reused by every call: propose and update load the state's
        # weights into it, so building it (and drawing its init) happens once.
        self._net = self._fresh_net()

    def options(self) -> dict[str, Any]:
        return {
            "reward": self.reward, "reward_target": self.reward_target, "reward_exponent": self.reward_exponent,
            "formulation": self.formulation, "controller": self.controller, "hidden": self.hidden, "lr": self.lr,
            "entropy_weight": self.entropy_weight, "baseline_decay": self.baseline_decay, "gamma": self.gamma,
            "max_edits": self.max_edits, "updates_per_epoch": self.updates_per_epoch,
        }

    # -- state ----------------------------------------------------------------------

    def _fresh_net(self) -> nn.Module:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(INIT_SEED)
            if self.actions is not None:
                return EditPolicy(self.actions.inputs, self.hidden, self.actions.outputs)
            cards = self.space.cardinalities()
            if self.controller == "lstm":
                return LSTMController(cards, self.hidden)
            return MLPController(cards, self.hidden)

    def _imitate(self, net: nn.Module, seeds: Sequence[Genome], steps: int) -> None:
        """Warm start: `steps` Adam steps (lr PRETRAIN_LR) raising the mean
        log-likelihood of the seed genomes, so the first epoch samples near them.
        Its optimizer is thrown away; the search's starts afresh."""
        genomes = torch.tensor([list(g) for g in seeds], dtype=torch.long)
        optimizer = torch.optim.Adam(net.parameters(), lr=PRETRAIN_LR)
        for _ in range(steps):
            optimizer.zero_grad()
            log_prob, _ = net.log_prob(genomes)
            (-log_prob.mean()).backward()
            optimizer.step()

    def _optimizer(self, net: nn.Module) -> torch.optim.Optimizer:
        return torch.optim.Adam(net.parameters(), lr=self.lr)

    def initial_state(self) -> dict[str, Any]:
        net = self._fresh_net()
        if self.warm is not None and self.warm.seeds and self.actions is None:
            self._imitate(net, self.warm.seeds, self.warm.pretrain_steps)
        return {
            "policy": net.state_dict(),
            "optimizer": self._optimizer(net).state_dict(),
            "baseline": None,
            "epoch": 0,
            "mean_reward": None,
        }

    def _load(self, state: dict[str, Any]) -> nn.Module:
        self._net.load_state_dict(state["policy"])
        return self._net

    def save_state(self, state: dict[str, Any], directory: Path) -> None:
        """policy.pt: the whole state (tensors and plain numbers); state.json: a
        summary for people, never read back."""
        buffer = io.BytesIO()
        torch.save({k: state[k] for k in STATE_KEYS}, buffer)
        atomic_write_bytes(layout.policy_file(directory), buffer.getvalue())
        summary = {
            "strategy": self.name,
            "formulation": self.formulation,
            "controller": self.controller,
            "epoch": state["epoch"],
            "baseline": state["baseline"],
            "mean_reward": state["mean_reward"],
        }
        write_json(layout.state_json(directory), summary)

    def load_state(self, directory: Path) -> dict[str, Any]:
        path = layout.policy_file(directory)
        if not path.is_file():
            raise ArtefactError(f"{path}: file not found")
        try:
            state = torch.load(path, weights_only=True)
        except Exception as e:  # torch.load fails in many ways on a damaged file; all mean "re-make it"
            raise CorruptArtefact(path, f"not a readable policy file ({e})") from None
        if not isinstance(state, dict) or set(state) != set(STATE_KEYS):
            raise CorruptArtefact(path, f"expected a dict with keys {', '.join(STATE_KEYS)}")
        expected = {k: tuple(v.shape) for k, v in self._net.state_dict().items()}
        policy = state["policy"]
        if not isinstance(policy, dict) or {k: tuple(getattr(v, "shape", ())) for k, v in policy.items()} != expected:
            raise CorruptArtefact(path, "the policy does not fit this run's options (space, controller, hidden)")
        return state

    # -- propose ----------------------------------------------------------------------

    def propose(
        self, state: dict[str, Any], history: Sequence[Evaluated], n: int, rng: np.random.Generator
    ) -> list[Proposal]:
        if self.actions is not None and state["epoch"] == 0 and self.warm is not None and self.warm.seeds:
            # Warm start of edit episodes: evaluate the seeds; later episodes start from the best.
            return self.initial(n, history, rng)
        net = self._load(state)
        generator = torch.Generator().manual_seed(int(rng.integers(2**63)))
        if self.actions is None:
            return self._generate(net, history, n, rng, generator)
        return self._edit(net, history, n, rng, generator)

    def _generate(
        self, net: nn.Module, history: Sequence[Evaluated], n: int, rng: np.random.Generator,
        generator: torch.Generator,
    ) -> list[Proposal]:
        def draws() -> Iterator[list[int]]:
            # Batches of n: fill() usually takes n draws, more when some are known.
            while True:
                yield from net.sample(n, generator).tolist()

        samples = draws()
        return self.fill(n, known(history), rng, lambda _: (tuple(next(samples)), "policy", ()))

    def _edit(
        self, net: nn.Module, history: Sequence[Evaluated], n: int, rng: np.random.Generator,
        generator: torch.Generator,
    ) -> list[Proposal]:
        best = fittest(history, 1)
        start = best[0] if best and math.isfinite(best[0].fitness) else None

        def episode(rng: np.random.Generator) -> tuple[Genome, str, tuple[str, ...], dict[str, Any]]:
            genome = self.space.canonical(start.genome) if start else self.space.sample(rng)
            trace = {"start": list(genome), "known_start": start is not None, "actions": []}
            for t in range(self.max_edits):
                action = self.actions.sample(net, genome, t, can_stop(trace, t), generator)
                trace["actions"].append(action)
                if action[0] == STOP:
                    break
                genome = self.actions.apply(genome, action)
            return genome, "edit", (start.key,) if start else (), trace

        return self.fill(n, known(history), rng, episode)

    # -- update -----------------------------------------------------------------------

    def update(self, state: dict[str, Any], results: Sequence[Evaluated]) -> dict[str, Any]:
        if not results:
            return dict(state)
        rewards = self._rewards(results)
        mean, previous = float(np.mean(rewards)), state["baseline"]
        advantages = [r - (mean if previous is None else previous) for r in rewards]
        net = self._load(state)
        optimizer = self._optimizer(net)
        # A deep copy: Adam keeps loaded tensors as they are and updates them in place.
        optimizer.load_state_dict(copy.deepcopy(state["optimizer"]))
        loss = (self._generate_loss if self.actions is None else self._edit_loss)(results, advantages)
        for _ in range(self.updates_per_epoch if loss is not None else 0):
            optimizer.zero_grad()
            loss().backward()
            optimizer.step()
        decay = self.baseline_decay
        return {
            # Clones: the network is reused, and loading the next state would overwrite these.
            "policy": {k: v.clone() for k, v in net.state_dict().items()},
            "optimizer": optimizer.state_dict(),
            "baseline": mean if previous is None else decay * previous + (1 - decay) * mean,
            "epoch": state["epoch"] + 1,
            "mean_reward": mean,
        }

    def check_objectives(self, objectives: Sequence[dict[str, str]]) -> None:
        super().check_objectives(objectives)
        if len(objectives) > 1 and self.reward == "mnas" and (len(objectives) != 2 or self.reward_target is None):
            raise StrategyError("reinforce option reward='mnas' scores accuracy x (cost / reward_target) ** "
                                "reward_exponent: it needs exactly two objectives (the accuracy, then the cost) "
                                "and reward_target")

    def _rewards(self, results: Sequence[Evaluated]) -> list[float]:
        """One number per result: the primary objective under one objective; under
        several, MnasNet's soft constraint acc * (cost / target) ** w (Tan et al.
        2019; `reward: mnas`), the mean of the objectives min-max normalised over
        the batch (`reward: weighted`), or 1 - rank / fronts by the batch's own
        non-dominated sorting (`reward: pareto`). A failed or infeasible result gets the
        batch's worst reward of a feasible one (0 when there is none)."""
        good = [i for i, r in enumerate(results) if math.isfinite(r.fitness) and r.violation == 0]
        if len(self.objectives) <= 1:
            raw = {i: results[i].fitness for i in good}
        elif self.reward == "mnas":
            signs = [1.0 if o["direction"] == "max" else -1.0 for o in self.objectives]
            raw = {i: signs[0] * results[i].values[0]
                   * (signs[1] * results[i].values[1] / self.reward_target) ** self.reward_exponent for i in good}
        elif self.reward == "pareto":
            # Every candidate on the batch's own front scores 1, the next front less:
            # no weighting of the objectives, so the policy is not pulled to one end.
            ranks = nondominated_ranks([results[i].values for i in good])
            depth = max(ranks, default=0) + 1
            raw = {i: 1.0 - rank / depth for i, rank in zip(good, ranks)}
        else:
            columns = list(zip(*(results[i].values for i in good))) if good else []
            spans = [(min(c), max(c)) for c in columns]
            raw = {i: float(np.mean([(v - lo) / (hi - lo) if hi > lo else 0.5
                                     for v, (lo, hi) in zip(results[i].values, spans)])) for i in good}
        floor = min(raw.values()) if raw else 0.0
        return [raw.get(i, floor) for i in range(len(results))]

    def _generate_loss(self, results: Sequence[Evaluated], advantages: list[float]) -> Callable[[], torch.Tensor]:
        genomes = torch.tensor([list(r.genome) for r in results], dtype=torch.long)
        scaled = _rms_scaled(torch.tensor(advantages, dtype=torch.float32))

        def loss() -> torch.Tensor:
            log_prob, entropy = self._net.log_prob(genomes)
            return -(scaled * log_prob).mean() - self.entropy_weight * entropy.mean()

        return loss

    def _edit_loss(
        self, results: Sequence[Evaluated], advantages: list[float]
    ) -> Callable[[], torch.Tensor] | None:
        """None when no result is an episode (all came from fill()'s random fallback)."""
        episodes = [(r, a) for r, a in zip(results, advantages) if r.trace is not None]
        if not episodes:
            return None
        # Replaying (the masks) is the costly part: done once for all Adam steps.
        batch = StepBatch()
        returns: list[float] = []
        for result, advantage in episodes:
            steps = self.actions.replay(result, batch)
            returns += [self.gamma ** (steps - 1 - t) * advantage for t in range(steps)]
        scaled = _rms_scaled(torch.tensor(returns, dtype=torch.float32))

        def loss() -> torch.Tensor:
            log_prob, entropy = batch.evaluate(self._net, self.actions)
            return -(scaled * log_prob).sum() / len(episodes) - self.entropy_weight * entropy.mean()

        return loss


# -- helpers ------------------------------------------------------------------------------




def _rms_scaled(values: torch.Tensor) -> torch.Tensor:
    return values / (values.square().mean().sqrt() + EPS)


def _controller(formulation: str, controller: str | None) -> str:
    if formulation == "edit":
        if controller not in (None, "mlp"):
            raise StrategyError(
                f"reinforce option controller={controller!r}: formulation 'edit' has an MLP policy; "
                "choose mlp or leave controller out"
            )
        return "mlp"
    return "lstm" if controller is None else choice("reinforce", "controller", controller, CONTROLLERS, StrategyError)
