"""The generate formulation's policies: one categorical decision per gene.

controller "lstm": autoregressive; the LSTM reads the embedding of the
previous decision (a learned start token first) and head t gives the logits of
gene t. controller "mlp": the genes are independent; a learned input vector
passes through one tanh layer to one softmax head per gene. Both offer
`sample(n, generator)` and `log_prob(genomes) -> (log pi, summed entropies)`.
"""

from __future__ import annotations

import itertools
from typing import Sequence

import torch
from torch import nn

CONTROLLERS = ("lstm", "mlp")


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
