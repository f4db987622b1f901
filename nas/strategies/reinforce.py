"""REINFORCE: a policy network learns which architectures score well.

Policy-gradient NAS (Zoph & Le, ICLR 2017) with the likelihood-ratio gradient
of Williams (1992). Each generation is one controller epoch: propose samples
the candidates from the policy, update takes gradient steps on their rewards.

Formulations
  generate  (any space) the policy emits one categorical decision per gene.
            controller "lstm": autoregressive; the LSTM reads the embedding of
            the previous decision (a learned start token first) and head t
            gives the logits of gene t. controller "mlp": the genes are
            independent; a learned input vector passes through one tanh layer
            to one softmax head per gene.
  edit      (chain space) an episode edits a network step by step (see
            EditActions for the actions). It starts from the best architecture
            evaluated so far, or, before any has succeeded, from a random one
            per episode, and ends at `stop` or after `max_edits` edits; the
            candidate is the network it ends with. The policy is an MLP (one
            tanh layer of `hidden` units) over the one-hot genome of the
            current network and the one-hot step number. Proposal.trace is
            {"start": genome, "known_start": bool, "actions": [action, ...]};
            a candidate of fill()'s random fallback has none, nor an episode.

Update, on the batch of N results (beta = entropy_weight):
  R_i   fitness of candidate i (validation accuracy, %); a failed candidate
        (-inf) gets the batch's worst finite fitness, or 0 when none is finite.
  b     the moving-average baseline before this batch; in the first epoch the
        batch mean.
  A_i = R_i - b
  generate: Â_i = A_i / (rms(A) + 1e-8)
            loss = -(1/N) sum_i Â_i log pi(genome_i) - beta (1/N) sum_i H_i
            H_i: the entropies of the decision distributions along genome i.
  edit:     episode i took T_i actions a_0..a_{T-1}; its return at step t is
            G_it = gamma^(T_i-1-t) A_i, Ĝ = G / (rms(G over all steps of all
            episodes) + 1e-8),
            loss = -(1/E) sum_i sum_t Ĝ_it log pi(a_t|s_t) - beta mean_steps H(s_t)
            over the E results that are episodes (a random fallback is not).
  Each of `updates_per_epoch` Adam steps recomputes the loss; then
  b <- mean(R) in the first epoch, else decay b + (1 - decay) mean(R).

The advantages are divided by their root mean square rather than by the std
of the batch's rewards: the two are close while the baseline tracks the batch
mean, but the std is zero for a batch of one or of equal rewards, where
A / (std + eps) would blow up; the rms gives +-1 there (and 0 when A is 0).

The log-probabilities are recomputed in update from the results (teacher
forcing): generate needs only the genomes, edit replays each trace. In the
generate formulation a candidate from fill()'s random fallback is learnt from
like a sample of the policy; that is off-policy, a bias the policy's own
samples outweigh as long as fallbacks are rare (they happen when the policy
keeps producing evaluated architectures).

Initial weights come from a fixed seed (INIT_SEED): initial_state() does not
know the run seed. Runs with different seeds still differ, since every draw of
propose comes from a torch.Generator seeded by the run's rng. The global torch
random state is seeded only inside fork_rng, which restores it.
"""

from __future__ import annotations

import copy
import functools
import io
import itertools
import math
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
from torch import nn

from nas.io import ArtefactError, CorruptArtefact, atomic_write_bytes, write_json
from nas.spaces.base import Genome, SearchSpace, SpaceError
from nas.spaces.chain import GENES, SLOT, TYPE, ChainSpace
from nas.strategies.base import Evaluated, Proposal, Strategy, StrategyError, fittest

FORMULATIONS = ("generate", "edit")
CONTROLLERS = ("lstm", "mlp")
EDIT_METHODS = ("add_layer", "remove_layer", "change_layer", "used_genes")
KINDS = ("add", "remove", "change", "stop")
ADD, REMOVE, CHANGE, STOP = range(len(KINDS))
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
    ) -> None:
        """controller: lstm or mlp for generate (default lstm); edit always uses
        its MLP policy, so only mlp (the default there) is accepted with it."""
        super().__init__(space, population)
        self.formulation = _choice("formulation", formulation, FORMULATIONS)
        self.controller = _controller(formulation, controller)
        if formulation == "edit" and not all(callable(getattr(space, m, None)) for m in EDIT_METHODS):
            raise StrategyError(
                f"reinforce formulation 'edit' needs a space with {', '.join(EDIT_METHODS)} (the chain space); "
                f"space {space.name!r} has none of them; use formulation 'generate'"
            )
        self.hidden = _integer("hidden", hidden, 1)
        self.lr = _number("lr", lr, lambda v: v > 0, "> 0")
        self.entropy_weight = _number("entropy_weight", entropy_weight, lambda v: v >= 0, ">= 0")
        self.baseline_decay = _number("baseline_decay", baseline_decay, lambda v: 0 <= v < 1, "in [0, 1)")
        self.gamma = _number("gamma", gamma, lambda v: 0 < v <= 1, "in (0, 1]")
        self.max_edits = _integer("max_edits", max_edits, 1)
        self.updates_per_epoch = _integer("updates_per_epoch", updates_per_epoch, 1)
        self.actions = EditActions(space, self.max_edits) if formulation == "edit" else None
        # One network reused by every call: propose and update load the state's
        # weights into it, so building it (and drawing its init) happens once.
        self._net = self._fresh_net()

    def options(self) -> dict[str, Any]:
        return {
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
        atomic_write_bytes(Path(directory) / "policy.pt", buffer.getvalue())
        summary = {
            "strategy": self.name,
            "formulation": self.formulation,
            "controller": self.controller,
            "epoch": state["epoch"],
            "baseline": state["baseline"],
            "mean_reward": state["mean_reward"],
        }
        write_json(Path(directory) / "state.json", summary)

    def load_state(self, directory: Path) -> dict[str, Any]:
        path = Path(directory) / "policy.pt"
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
        return self.fill(n, history, rng, lambda _: (tuple(next(samples)), "policy", ()))

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
                action = self.actions.sample(net, genome, t, _can_stop(trace, t), generator)
                trace["actions"].append(action)
                if action[0] == STOP:
                    break
                genome = self.actions.apply(genome, action)
            return genome, "edit", (start.key,) if start else (), trace

        return self.fill(n, history, rng, episode)

    # -- update -----------------------------------------------------------------------

    def update(self, state: dict[str, Any], results: Sequence[Evaluated]) -> dict[str, Any]:
        if not results:
            return dict(state)
        rewards = _rewards(results)
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


# -- generate: the controllers ------------------------------------------------------------


class LSTMController(nn.Module):
    """Decision t comes from head t after the LSTM has read decision t-1."""

    def __init__(self, cards: Sequence[int], hidden: int) -> None:
        super().__init__()
        # Token 0 is the start; value v of gene t is token 1 + (cards before t) + v.
        self.first_token = [1 + o for o in itertools.accumulate(cards, initial=0)][:-1]
        self.embed = nn.Embedding(1 + sum(cards), hidden)
        self.lstm = nn.LSTM(hidden, hidden, batch_first=True)
        self.heads = _uniform_heads(hidden, cards)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        tokens, memory, genes = torch.zeros(n, 1, dtype=torch.long), None, []
        for t, head in enumerate(self.heads):
            out, memory = self.lstm(self.embed(tokens), memory)
            gene = torch.multinomial(torch.softmax(head(out[:, 0]), -1), 1, generator=generator)
            genes.append(gene)
            tokens = gene + self.first_token[t]
        return torch.cat(genes, 1)

    def log_prob(self, genomes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """log pi(genome) and the summed entropies of its decisions, per row."""
        start = torch.zeros(len(genomes), 1, dtype=torch.long)
        tokens = torch.cat([start, genomes[:, :-1] + torch.tensor(self.first_token[:-1], dtype=torch.long)], 1)
        out, _ = self.lstm(self.embed(tokens))
        logits = [head(out[:, t]) for t, head in enumerate(self.heads)]
        return _decisions(logits, genomes)


class MLPController(nn.Module):
    """Independent decisions: a learned input, one tanh layer, one head per gene."""

    def __init__(self, cards: Sequence[int], hidden: int) -> None:
        super().__init__()
        self.input = nn.Parameter(torch.randn(hidden))
        self.body = nn.Sequential(nn.Linear(hidden, hidden), nn.Tanh())
        self.heads = _uniform_heads(hidden, cards)

    def _logits(self) -> list[torch.Tensor]:
        features = self.body(self.input)
        return [head(features) for head in self.heads]

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        columns = [torch.multinomial(torch.softmax(z, -1), n, replacement=True, generator=generator)
                   for z in self._logits()]
        return torch.stack(columns, 1)

    def log_prob(self, genomes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return _decisions([z.expand(len(genomes), -1) for z in self._logits()], genomes)


def _uniform_heads(hidden: int, cards: Sequence[int]) -> nn.ModuleList:
    """Output heads that start at zero: the first controller epoch samples every
    value of a gene equally, so no operation is favoured (by the order of the
    space's options, say) before any reward has come in."""
    heads = nn.ModuleList(nn.Linear(hidden, c) for c in cards)
    for head in heads:
        nn.init.zeros_(head.weight)
        nn.init.zeros_(head.bias)
    return heads


def _decisions(logits: list[torch.Tensor], genomes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed log-probabilities of the genes chosen and summed entropies, per row."""
    log_prob = torch.zeros(len(genomes))
    entropy = torch.zeros(len(genomes))
    for t, z in enumerate(logits):
        log_p = torch.log_softmax(z, -1)
        log_prob = log_prob + log_p.gather(1, genomes[:, t : t + 1])[:, 0]
        entropy = entropy - (log_p.exp() * log_p).sum(-1)
    return log_prob, entropy


# -- edit: actions on a chain and the policy over them ---------------------------------------


class EditPolicy(nn.Module):
    """Logits of every head of EditActions from the encoded network and step."""

    def __init__(self, inputs: int, hidden: int, outputs: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(inputs, hidden), nn.Tanh(), nn.Linear(hidden, outputs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class EditActions:
    """The factorised actions of an edit episode on a chain space.

    An action is a list of ints shaped like the space's edit calls:
      [0, position, type, kernel, filters, stride, activation]  add_layer(genome, position, layer)
      [1, position]                                              remove_layer(genome, position)
      [2, position, gene, value]                                 change_layer(genome, position, gene, value)
      [3]                                                        stop
    Each int is one decision, drawn from its own softmax head (kind; position
    per kind; per gene the value of an added layer; the gene to change; per
    gene its new value). A decision may take only values that leave at least
    one way to finish the action into a valid network, so every action is
    possible and the masked distributions are exactly the policy. A pool's
    filters and activation are 0: a decision with one allowed value, which
    adds nothing to log pi. Stop is masked at the first step of an episode
    that starts from an evaluated network, which would otherwise come back.
    """

    def __init__(self, space: ChainSpace, max_edits: int) -> None:
        self.space = space
        cards = space.cardinalities()
        slot = cards[:SLOT]  # values per gene of one layer; type counts the empty slot
        self.values = [range(1, slot[TYPE]) if g == TYPE else range(slot[g]) for g in range(SLOT)]
        sizes = {"kind": len(KINDS), "change_gene": SLOT}
        sizes.update({f"{kind}_position": space.max_layers for kind in KINDS[:3]})
        sizes.update({f"{kind}_{GENES[g]}": len(self.values[g]) for kind in KINDS[::2] for g in range(SLOT)})
        starts = itertools.accumulate(sizes.values(), initial=0)
        self.heads = {name: start for name, start in zip(sizes, starts)}
        self.outputs = sum(sizes.values())
        self.gene_start = list(itertools.accumulate(cards, initial=0))
        self.inputs = self.gene_start[-1] + max_edits
        # propose and update ask about the same (network, partial action) pairs.
        self._feasible = functools.lru_cache(maxsize=1 << 16)(self._feasible_uncached)

    def encode(self, genome: Genome, step: int) -> list[int]:
        """Where the one-hot input of (network, step) is 1."""
        return [start + g for start, g in zip(self.gene_start, genome)] + [self.gene_start[-1] + step]

    def apply(self, genome: Genome, action: Sequence[int]) -> Genome:
        kind = action[0]
        if kind == ADD:
            return self.space.add_layer(genome, action[1], action[2:])
        if kind == REMOVE:
            return self.space.remove_layer(genome, action[1])
        if kind == CHANGE:
            return self.space.change_layer(genome, action[1], action[2], action[3])
        return genome

    def _next(self, layers: list, prefix: tuple[int, ...], can_stop: bool) -> tuple[str, Sequence[int]] | None:
        """The head and the values the next decision may take by the action's form, or None when complete."""
        n, depth = len(layers), len(prefix)
        if depth == 0:
            possible = (n < self.space.max_layers, n > self.space.min_layers, True, can_stop)
            return "kind", [k for k, ok in enumerate(possible) if ok]
        kind = prefix[0]
        if kind == ADD and depth < 2 + SLOT:
            if depth == 1:
                return "add_position", range(n + 1)
            gene = depth - 2
            used = gene == TYPE or gene in self.space.used_genes(prefix[2:3])  # prefix[2] is the type
            return f"add_{GENES[gene]}", self.values[gene] if used else (0,)
        if kind == REMOVE and depth == 1:
            return "remove_position", range(n)
        if kind == CHANGE and depth < 4:
            if depth == 1:
                return "change_position", range(n)
            layer = layers[prefix[1]]
            if depth == 2:
                return "change_gene", [g for g in self.space.used_genes(layer) if len(self.values[g]) > 1]
            return f"change_{GENES[prefix[2]]}", [v for v in self.values[prefix[2]] if v != layer[prefix[2]]]
        return None

    def _feasible_uncached(self, genome: Genome, prefix: tuple[int, ...], can_stop: bool) -> bool:
        """Whether the partial action can be finished into a valid network."""
        step = self._next(self.space.layers(genome), prefix, can_stop)
        if step is None:
            try:
                self.apply(genome, prefix)
            except SpaceError:
                return False
            return True
        return any(self._feasible(genome, prefix + (v,), can_stop) for v in step[1])

    def choices(self, genome: Genome, prefix: tuple[int, ...], can_stop: bool) -> tuple[list[int], list[int]] | None:
        """The logit columns and values the next decision may take, or None when the action is complete."""
        step = self._next(self.space.layers(genome), prefix, can_stop)
        if step is None:
            return None
        head, values = step
        allowed = [v for v in values if self._feasible(genome, prefix + (v,), can_stop)]
        if not allowed:
            raise StrategyError(f"chain network {list(genome)} has no valid edit")
        offset = self.heads[head] - (1 if head.endswith("_type") else 0)
        return [offset + v for v in allowed], allowed

    def sample(
        self, net: nn.Module, genome: Genome, step: int, can_stop: bool, generator: torch.Generator
    ) -> list[int]:
        with torch.no_grad():
            x = torch.zeros(self.inputs)
            x[self.encode(genome, step)] = 1.0
            logits = net(x)
        prefix: tuple[int, ...] = ()
        while (choice := self.choices(genome, prefix, can_stop)) is not None:
            columns, values = choice
            pick = torch.multinomial(torch.softmax(logits[columns], -1), 1, generator=generator)
            prefix += (values[int(pick)],)
        return list(prefix)

    def replay(self, result: Evaluated, batch: "StepBatch") -> int:
        """Add the steps of the result's episode to `batch`; their number."""
        trace = result.trace
        try:
            genome = self.space.check(trace["start"])
            for t, action in enumerate(trace["actions"]):
                batch.add_step(self.encode(genome, t))
                for i in range(len(action)):
                    columns, values = self.choices(genome, tuple(action[:i]), _can_stop(trace, t))
                    batch.add_decision(columns, values.index(action[i]))
                if self.choices(genome, tuple(action), _can_stop(trace, t)) is not None:
                    raise ValueError(f"action {action} is incomplete")
                genome = self.apply(genome, action)
        except (KeyError, TypeError, ValueError) as e:  # SpaceError is a ValueError
            raise StrategyError(f"candidate {result.key}: its edit trace does not replay ({e})") from None
        if genome != self.space.canonical(result.genome):
            raise StrategyError(f"candidate {result.key}: its edit trace leads to {list(genome)}, not its genome")
        return len(trace["actions"])


class StepBatch:
    """The steps of a batch of episodes, for one forward pass of the policy."""

    def __init__(self) -> None:
        self.inputs: list[list[int]] = []  # per step: where its one-hot input is 1
        self.decisions: list[tuple[int, list[int], int]] = []  # (step, allowed columns, index of the chosen one)

    def add_step(self, ones: list[int]) -> None:
        self.inputs.append(ones)

    def add_decision(self, columns: list[int], chosen: int) -> None:
        self.decisions.append((len(self.inputs) - 1, columns, chosen))

    def evaluate(self, net: nn.Module, actions: EditActions) -> tuple[torch.Tensor, torch.Tensor]:
        """Per step: log pi(a_t|s_t) and the summed entropies of its decisions."""
        x = torch.zeros(len(self.inputs), actions.inputs)
        for row, ones in enumerate(self.inputs):
            x[row, ones] = 1.0
        logits = net(x)
        steps = torch.tensor([d[0] for d in self.decisions])
        allowed = torch.zeros(len(self.decisions), actions.outputs, dtype=torch.bool)
        for i, (_, columns, _) in enumerate(self.decisions):
            allowed[i, columns] = True
        chosen = torch.tensor([columns[k] for _, columns, k in self.decisions])
        log_p = torch.log_softmax(logits[steps].masked_fill(~allowed, -math.inf), -1)
        picked = log_p.gather(1, chosen[:, None])[:, 0]
        # Masked entries have log_p = -inf and p = 0: zero their log_p, since
        # 0 * -inf would be NaN (and its gradient too, even behind a where).
        entropy = -(log_p.exp() * log_p.masked_fill(~allowed, 0.0)).sum(-1)
        per_step = torch.zeros(len(self.inputs))
        return per_step.index_add(0, steps, picked), per_step.index_add(0, steps, entropy)


# -- helpers ------------------------------------------------------------------------------


def _can_stop(trace: dict[str, Any], step: int) -> bool:
    return step > 0 or not trace["known_start"]


def _rewards(results: Sequence[Evaluated]) -> list[float]:
    finite = [r.fitness for r in results if math.isfinite(r.fitness)]
    floor = min(finite) if finite else 0.0
    return [r.fitness if math.isfinite(r.fitness) else floor for r in results]


def _rms_scaled(values: torch.Tensor) -> torch.Tensor:
    return values / (values.square().mean().sqrt() + EPS)


def _choice(option: str, value: Any, allowed: Sequence[str]) -> str:
    if value not in allowed:
        raise StrategyError(f"reinforce option {option}={value!r}: choose one of: {', '.join(allowed)}")
    return value


def _controller(formulation: str, controller: str | None) -> str:
    if formulation == "edit":
        if controller not in (None, "mlp"):
            raise StrategyError(
                f"reinforce option controller={controller!r}: formulation 'edit' has an MLP policy; "
                "choose mlp or leave controller out"
            )
        return "mlp"
    return "lstm" if controller is None else _choice("controller", controller, CONTROLLERS)


def _integer(option: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise StrategyError(f"reinforce option {option}={value!r}: must be an integer >= {low}")
    return int(value)


def _number(option: str, value: Any, ok: Callable[[float], bool], rule: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not math.isfinite(value) \
            or not ok(value):
        raise StrategyError(f"reinforce option {option}={value!r}: must be a number {rule}")
    return float(value)
