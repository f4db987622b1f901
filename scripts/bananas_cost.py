"""What one bananas generation costs to propose, by how much has been evaluated.

    python scripts/bananas_cost.py                  # nb201 and the default chain, 2 and 8 proposals
    python scripts/bananas_cost.py --sizes 10,100 --repeats 3

For each history size, a history of that many distinct random architectures
(scored by a fixed random additive landscape: the cost does not depend on the
scores) and one call of `Strategy.proposals` as the propose step makes it:
the refit of the predictor on the encoded history, the pool of mutations, the
acquisition. Prints the median seconds over --repeats calls, one thread.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from threadpoolctl import threadpool_limits

from nas.spaces import make_space
from nas.strategies import Evaluated, make_strategy

SPACES = {"nb201": {"name": "nb201"}, "chain": {"name": "chain"}}


def history(space, size: int, rng: np.random.Generator) -> list[Evaluated]:
    weights = rng.normal(size=sum(space.cardinalities()))
    out, seen = [], set()
    while len(out) < size:
        genome = space.sample(rng)
        arch = space.to_string(genome)
        if arch not in seen:
            seen.add(arch)
            score = float(space.encode([genome], "onehot")[0] @ weights)
            out.append(Evaluated(f"gen_000/c{len(out):03d}", arch, genome, score))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10,50,100,200")
    parser.add_argument("--proposals", default="2,8")
    parser.add_argument("--acquisitions", default="its,ei")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    threadpool_limits(1)
    print("space\tacquisition\tevaluated\tproposals\tseconds")
    for name, cfg in SPACES.items():
        space = make_space(cfg)
        for acquisition in args.acquisitions.split(","):
            strategy = make_strategy({"name": "bananas", "acquisition": acquisition}, space, 10)
            for size in map(int, args.sizes.split(",")):
                evaluated = history(space, size, np.random.default_rng(size))
                for n in map(int, args.proposals.split(",")):
                    times = []
                    for r in range(args.repeats):
                        start = time.perf_counter()
                        strategy.proposals({}, evaluated, n, np.random.default_rng(r))
                        times.append(time.perf_counter() - start)
                    print(f"{name}\t{acquisition}\t{size}\t{n}\t{np.median(times):.3f}", flush=True)


if __name__ == "__main__":
    main()
