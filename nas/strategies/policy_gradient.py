"""REINFORCE: a policy network that proposes architectures (Williams 1992;
Zoph & Le 2017), trained one controller epoch per generation.

Two formulations:

- generate: one categorical decision per gene of the space. The controller is
  an LSTM whose input at step t is the decision at step t-1 (autoregressive),
  or (controller mlp) a learned table of per-gene logits (independent
  decisions).
- edit (chain space): state = the current network, actions = add a layer,
  remove a layer, change one of a layer's parameters, or stop. An episode
  starts from the best network evaluated so far and makes at most
  `max_edits` edits; the network it ends with is the candidate. The policy
  is an MLP over the one-hot genome (`controller` does not apply).

Update, for a batch of N candidates with rewards R_i (validation accuracy; a
failed candidate gets the batch's worst finite reward):

    A_i   = (R_i - b) / (std(R) + 1e-8)          baseline b, reward normalisation
    G_i,t = gamma ** (T_i - 1 - t) * A_i         discounted return of step t
    loss  = -(1/N) sum_i sum_t G_i,t log pi(a_i,t | s_i,t) - entropy_weight * mean entropy
    b    <- baseline_decay * b + (1 - baseline_decay) * mean(R)   (b = mean(R) at first)

For generate every decision is a step of an episode whose reward comes at the
end, so gamma < 1 weights late decisions more; gamma = 1 is plain REINFORCE.
The log-probabilities are recomputed in update() from what the proposals
recorded (the genome, or the edit episode in Proposal.trace), so the policy
and optimizer are all the state there is: `state/policy.pt` in the workflow.
Proposals that `fill` had to draw at random (the policy kept producing known
architectures) are learned from too, as if the policy had made them.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from nas.io import ArtefactError, write_json
from nas.spaces.base import Genome, SearchSpace, SpaceError
from nas.strategies.base import Evaluated, Proposal, Strategy, StrategyError

FORMULATIONS = ("generate", "edit")
CONTROLLERS = ("lstm", "mlp")
EDIT_KINDS = ("add", "remove", "change", "stop")
# Adam step sizes that learned fast and stayed stable on NAS-Bench-201 (generate)
# and on a synthetic chain task (edit): a table of logits takes large steps,
# an LSTM or an edit policy over whole networks needs small ones.
DEFAULT_LR = {"mlp": 0.3, "lstm": 0.03, "edit": 0.01}
# Policy weights start from a fixed seed: the run seed only enters through the
# samples, so two runs differ in what they draw, not in where they start.
INIT_SEED = 0


class _GenePolicy(nn.Module):
    """pi(genome): one categorical decision per gene."""

    def __init__(self, cards: Sequence[int], controller: str, hidden: int) -> None:
        super().__init__()
        self.cards = list(cards)
        self.controller = controller
        if controller == "lstm":
            self.offsets = [0] + list(np.cumsum(self.cards)[:-1] + 1)
            self.embed = nn.Embedding(sum(self.cards) + 1, hidden)  # token 0: "start"
            self.cell = nn.LSTMCell(hidden, hidden)
            self.heads = nn.ModuleList(nn.Linear(hidden, c) for c in self.cards)
        else:
            self.logits = nn.ParameterList(nn.Parameter(torch.zeros(c)) for c in self.cards)

    def run(self, batch: int, actions: torch.Tensor | None, generator: torch.Generator | None):
        """Sample (actions None) or score given actions; returns actions, log-probs (B, L), entropies (B, L)."""
        chosen, logps, ents = [], [], []
        if self.controller == "lstm":
            h = c = torch.zeros(batch, self.cell.hidden_size)
            token = torch.zeros(batch, dtype=torch.long)
        for t, card in enumerate(self.cards):
            if self.controller == "lstm":
                h, c = self.cell(self.embed(token), (h, c))
                logits = self.heads[t](h)
            else:
                logits = self.logits[t].expand(batch, card)
            log_probs = torch.log_softmax(logits, dim=-1)
            if actions is not None:
                a = actions[:, t]
            else:
                a = torch.multinomial(log_probs.exp(), 1, generator=generator)[:, 0]
            chosen.append(a)
            logps.append(log_probs.gather(1, a[:, None])[:, 0])
            ents.append(-(log_probs.exp() * log_probs).sum(-1))
            if self.controller == "lstm":
                token = a + self.offsets[t] + (1 if t == 0 else 0)
        return torch.stack(chosen, 1), torch.stack(logps, 1), torch.stack(ents, 1)


class _EditPolicy(nn.Module):
    """pi(edit | network) over the chain space's genome."""

    def __init__(self, space: SearchSpace, hidden: int) -> None:
        super().__init__()
        cards = space.cardinalities()
        self.slot = 5
        self.offsets = torch.tensor(np.concatenate([[0], np.cumsum(cards)[:-1]]), dtype=torch.long)
        self.body = nn.Sequential(nn.Linear(int(sum(cards)), hidden), nn.Tanh())
        layer_cards = cards[: self.slot]
        self.kind = nn.Linear(hidden, len(EDIT_KINDS))
        self.position = nn.Linear(hidden, space.max_layers + 1)
        self.add_type = nn.Linear(hidden, layer_cards[0] - 1)  # not "empty"
        self.add_genes = nn.ModuleList(nn.Linear(hidden, c) for c in layer_cards[1:])
        self.gene = nn.Linear(hidden, self.slot)
        self.values = nn.ModuleList(nn.Linear(hidden, c) for c in layer_cards)

    def encode(self, genome: Genome) -> torch.Tensor:
        x = torch.zeros(int(self.body[0].in_features))
        x[self.offsets + torch.tensor(genome, dtype=torch.long)] = 1.0
        return x


def _masked(logits: torch.Tensor, allowed: Sequence[bool]) -> torch.distributions.Categorical:
    mask = torch.tensor(allowed, dtype=torch.bool)
    return torch.distributions.Categorical(logits=logits.masked_fill(~mask, -1e9))


class Reinforce(Strategy):
    name = "reinforce"

    def __init__(
        self,
        space: SearchSpace,
        population: int,
        formulation: str = "generate",
        controller: str = "mlp",
        hidden: int = 64,
        lr: float | None = None,
        entropy_weight: float = 0.0,
        baseline_decay: float = 0.9,
        gamma: float = 1.0,
        max_edits: int = 3,
        updates_per_epoch: int = 1,
    ) -> None:
        super().__init__(space, population)
        if formulation not in FORMULATIONS:
            raise StrategyError(f"unknown formulation {formulation!r}; choose one of: {', '.join(FORMULATIONS)}")
        if controller not in CONTROLLERS:
            raise StrategyError(f"unknown controller {controller!r}; choose one of: {', '.join(CONTROLLERS)}")
        if formulation == "edit" and not all(hasattr(space, m) for m in ("add_layer", "remove_layer", "change_layer")):
            raise StrategyError(f"formulation 'edit' needs a space of layers (chain), not {space.name!r}")
        lr = DEFAULT_LR[formulation if formulation == "edit" else controller] if lr is None else lr
        checks = {
            "hidden": hidden >= 1, "lr": lr > 0, "entropy_weight": entropy_weight >= 0,
            "baseline_decay": 0 <= baseline_decay < 1, "gamma": 0 < gamma <= 1, "max_edits": max_edits >= 1,
            "updates_per_epoch": updates_per_epoch >= 1,
        }
        for option, ok in checks.items():
            if not ok:
                raise StrategyError(f"reinforce option {option} is out of range: {locals()[option]!r}")
        self.formulation, self.controller, self.hidden = formulation, controller, hidden
        self.lr, self.entropy_weight, self.baseline_decay = lr, entropy_weight, baseline_decay
        self.gamma, self.max_edits, self.updates_per_epoch = gamma, max_edits, updates_per_epoch

    # -- policy and optimizer, rebuilt from the state --------------------------------

    def _build(self) -> nn.Module:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(INIT_SEED)
            if self.formulation == "generate":
                return _GenePolicy(self.space.cardinalities(), self.controller, self.hidden)
            return _EditPolicy(self.space, self.hidden)

    def _policy_of(self, state: dict[str, Any]) -> nn.Module:
        """The policy as the state has it. Built once per strategy object and
        loaded with the state's tensors at every call, so nothing but the
        state decides what it is."""
        if not hasattr(self, "_policy"):
            self._policy = self._build()
            self._initial = {k: v.clone() for k, v in self._policy.state_dict().items()}
        self._policy.load_state_dict(state.get("policy") or self._initial)
        return self._policy

    def _optimizer_of(self, state: dict[str, Any], policy: nn.Module) -> torch.optim.Optimizer:
        # Only update() makes one: the first optimizer of a process imports
        # much of torch (about 1.5 s), which propose need not pay.
        optimizer = torch.optim.Adam(policy.parameters(), lr=self.lr)
        if state.get("optimizer"):
            optimizer.load_state_dict(state["optimizer"])
        return optimizer

    def initial_state(self) -> dict[str, Any]:
        policy = self._policy_of({})
        return {"policy": {k: v.clone() for k, v in policy.state_dict().items()}, "optimizer": {},
                "baseline": None, "epoch": 0}

    # -- propose ----------------------------------------------------------------------

    def propose(
        self, state: dict[str, Any], history: Sequence[Evaluated], n: int, rng: np.random.Generator
    ) -> list[Proposal]:
        policy = self._policy_of(state)
        generator = torch.Generator().manual_seed(int(rng.integers(2**62)))
        if self.formulation == "generate":
            drawn: list[Genome] = []

            def make(rng: np.random.Generator):
                if not drawn:  # sampling a batch at a time is far cheaper than one by one
                    with torch.no_grad():
                        genomes, _, _ = policy.run(4 * n, None, generator)
                    drawn.extend(tuple(int(g) for g in row) for row in reversed(genomes.tolist()))
                return drawn.pop(), "policy", ()

            return self.fill(n, history, rng, make)
        start = max(history, key=lambda e: e.fitness) if history else None
        start_genome = start.genome if start is not None else self.space.sample(rng)
        parents = (start.key,) if start is not None else ()

        def episode(rng: np.random.Generator):
            with torch.no_grad():
                genome, actions = self._episode(policy, start_genome, generator)
            return genome, "edit", parents, {"start": list(start_genome), "actions": actions}

        return self.fill(n, history, rng, episode)

    # -- edit episodes ----------------------------------------------------------------

    def _episode(self, policy: _EditPolicy, start: Genome, generator: torch.Generator):
        genome, actions = self.space.canonical(start), []
        for _ in range(self.max_edits):
            action = self._sample_edit(policy, genome, generator)
            actions.append(action)
            if EDIT_KINDS[action[0]] == "stop":
                break
            genome = self._apply(genome, action)
        return genome, actions

    def _apply(self, genome: Genome, action: list[int]) -> Genome:
        kind, position, gene, value, *layer = action
        if EDIT_KINDS[kind] == "add":
            return self.space.add_layer(genome, position, tuple(layer))
        if EDIT_KINDS[kind] == "remove":
            return self.space.remove_layer(genome, position)
        if EDIT_KINDS[kind] == "change":
            return self.space.change_layer(genome, position, gene, value)
        return genome

    def _dists(self, policy: _EditPolicy, genome: Genome, action: list[int] | None, generator):
        """Walk the factorised edit distribution: sample the parts (action None) or
        score a given action; returns the action, its log-prob and entropy."""
        h = policy.body(policy.encode(genome))
        layers = self.space.layers(genome)
        n = len(layers)
        space = self.space
        kinds_ok = [n < space.max_layers, n > space.min_layers, n > 0, True]
        parts = list(action) if action is not None else []
        logp, ent = torch.zeros(()), torch.zeros(())

        def draw(dist: torch.distributions.Categorical, index: int) -> int:
            nonlocal logp, ent
            if action is None:
                value = int(torch.multinomial(dist.probs, 1, generator=generator)[0])
                parts.append(value)
            else:
                value = parts[index]
            logp = logp + dist.log_prob(torch.tensor(value))
            ent = ent + dist.entropy()
            return value

        kind = draw(_masked(policy.kind(h), kinds_ok), 0)
        name = EDIT_KINDS[kind]
        if name == "stop":
            return (parts if action is None else list(action)) + [0] * (9 - len(parts)), logp, ent
        slots = n + 1 if name == "add" else n
        position = draw(_masked(policy.position(h), [i < slots for i in range(space.max_layers + 1)]), 1)
        if name == "add":
            if action is None:
                parts += [0, 0]
            layer = [1 + draw(torch.distributions.Categorical(logits=policy.add_type(h)), 4)]
            layer += [draw(torch.distributions.Categorical(logits=head(h)), 5 + i) for i, head in enumerate(policy.add_genes)]
        elif name == "change":
            current = layers[position]
            used = space.used_genes(current)
            gene = draw(_masked(policy.gene(h), [g in used for g in range(policy.slot)]), 2)
            card = space.cardinalities()[gene]
            allowed = [v != current[gene] and (gene != 0 or v > 0) for v in range(card)]
            draw(_masked(policy.values[gene](h), allowed), 3)
        full = parts + [0] * (9 - len(parts))
        return (full if action is None else list(action)), logp, ent

    def _sample_edit(self, policy: _EditPolicy, genome: Genome, generator) -> list[int]:
        # An edit can break the shape rules (too many reductions): draw again.
        for _ in range(100):
            action, _, _ = self._dists(policy, genome, None, generator)
            try:
                self._apply(genome, action)
                return action
            except SpaceError:
                continue
        return [EDIT_KINDS.index("stop")] + [0] * 8

    # -- update -------------------------------------------------------------------------

    def update(self, state: dict[str, Any], results: Sequence[Evaluated]) -> dict[str, Any]:
        if not results:
            return dict(state)
        finite = [r.fitness for r in results if math.isfinite(r.fitness)]
        worst = min(finite) if finite else 0.0
        rewards = torch.tensor([r.fitness if math.isfinite(r.fitness) else worst for r in results])
        baseline = state["baseline"]
        b = float(rewards.mean()) if baseline is None else float(baseline)
        scale = float(rewards.std()) if len(rewards) > 1 else 0.0
        # Equal rewards (or one) carry no ranking: leave them unscaled instead of dividing by ~0.
        advantages = (rewards - b) / (scale if scale > 1e-8 else 1.0)
        policy = self._policy_of(state)
        optimizer = self._optimizer_of(state, policy)
        for _ in range(self.updates_per_epoch):
            logps, ents = self._score(policy, results)
            loss = -sum((w * lp).sum() for w, lp in zip(self._weights(advantages, logps), logps)) / len(results)
            loss = loss - self.entropy_weight * torch.cat([e.reshape(-1) for e in ents]).mean()
            if not loss.requires_grad:  # no decision of the policy in this batch (all drawn at random)
                break
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        decay = self.baseline_decay
        new_baseline = float(rewards.mean()) if baseline is None else decay * baseline + (1 - decay) * float(rewards.mean())
        return {
            "policy": {k: v.detach().clone() for k, v in policy.state_dict().items()},
            "optimizer": optimizer.state_dict(),
            "baseline": new_baseline,
            "epoch": int(state["epoch"]) + 1,
            "mean_reward": float(rewards.mean()),
        }

    def _weights(self, advantages: torch.Tensor, logps: list[torch.Tensor]) -> list[torch.Tensor]:
        """Discounted per-step weights: the reward arrives after the last step."""
        out = []
        for a, lp in zip(advantages, logps):
            steps = len(lp)
            out.append(a * self.gamma ** torch.arange(steps - 1, -1, -1, dtype=torch.float32))
        return out

    def _score(self, policy: nn.Module, results: Sequence[Evaluated]):
        if self.formulation == "generate":
            genomes = torch.tensor([list(r.genome) for r in results], dtype=torch.long)
            _, logp, ent = policy.run(len(results), genomes, None)
            return list(logp), list(ent)
        logps, ents = [], []
        for r in results:
            trace = r.trace or {"start": list(r.genome), "actions": []}
            genome = tuple(trace["start"])
            lp, en = [], []
            for action in trace["actions"]:
                _, step_lp, step_ent = self._dists(policy, genome, action, None)
                lp.append(step_lp)
                en.append(step_ent)
                if EDIT_KINDS[action[0]] != "stop":
                    genome = self._apply(genome, action)
            logps.append(torch.stack(lp) if lp else torch.zeros(0))
            ents.append(torch.stack(en) if en else torch.zeros(1))
        return logps, ents

    # -- files ----------------------------------------------------------------------------

    def save_state(self, state: dict[str, Any], directory: Path) -> None:
        torch.save({k: state[k] for k in ("policy", "optimizer", "baseline", "epoch")}, directory / "policy.pt")
        summary = {"strategy": self.name, "formulation": self.formulation, "epoch": state["epoch"],
                   "baseline": state["baseline"], "mean_reward": state.get("mean_reward")}
        write_json(directory / "state.json", summary)

    def load_state(self, directory: Path) -> dict[str, Any]:
        path = directory / "policy.pt"
        try:
            return torch.load(path, weights_only=True)
        except FileNotFoundError:
            raise ArtefactError(f"{path}: file not found") from None
        except Exception as e:  # a truncated or foreign file
            raise ArtefactError(f"{path}: not a readable policy file ({e}); delete it and re-run") from None
