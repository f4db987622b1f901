"""REINFORCE: a policy network learns which architectures score well.

    gradient.py     the strategy: propose, update (the policy gradient), state
    controllers.py  the generate formulation's policies (lstm, mlp)
    edit.py         the edit formulation: actions on a chain network and their policy


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

from nas.strategies.reinforce.gradient import FORMULATIONS, Reinforce

__all__ = ["FORMULATIONS", "Reinforce"]
