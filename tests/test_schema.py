"""Every enum of config/schema.yaml is the registry or constant the code chooses from.

The schema refuses a bad name before any job with a clear message; the code
holds the same vocabulary in one place each. This test is the seam: an enum
it does not know fails it, so a new one is added here with its home.
"""

from __future__ import annotations

import pytest
import yaml

from nas.evaluators import EVALUATORS
from nas.evaluators.proxy import PROXIES
from nas.evaluators.recipe import DEVICES, OPTIMIZERS, PRECISIONS, SCHEDULES, TRAIN_ON
from nas.objectives import DIRECTIONS
from nas.spaces import SPACES
from nas.spaces.base import STEM_STRIDES
from nas.spaces.chain import ACTIVATIONS, LAYER_TYPES
from nas.spaces.nb201 import ALL_OPS
from nas.strategies import STRATEGIES
from nas.strategies.genetic import CROSSOVERS, SELECTIONS
from nas.predictors import PREDICTORS
from nas.strategies.bananas import ACQUISITIONS, TARGETS
from nas.strategies.local_search import RESTARTS
from nas.strategies.predictor import GUIDES
from nas.strategies.mutation import MUTATIONS
from nas.strategies.reinforce.gradient import FORMULATIONS, REWARDS
from nas.strategies.reinforce.controllers import CONTROLLERS
from nas.tasks import TASKS
from nas.tasks.augment import AUGMENTS
from nas.tasks.digits import ROTATIONS
from nas.tasks.memory import IN_MEMORY
from nas.tasks.segmentation import DECODERS
from nas.tasks.segmentation_sets import VOC_YEARS
from tests.helpers import REPO

RUN = "$defs.run.properties"
HOMES = {
    f"{RUN}.space.properties.name": SPACES,
    f"{RUN}.final.properties.train_on": TRAIN_ON,
    f"{RUN}.space.properties.ops.items": ALL_OPS,
    f"{RUN}.space.properties.stem_stride": STEM_STRIDES,
    f"{RUN}.space.properties.layer_types.items": LAYER_TYPES,
    f"{RUN}.space.properties.activations.items": ACTIVATIONS,
    f"{RUN}.strategy.properties.name": STRATEGIES,
    f"{RUN}.strategy.properties.selection": SELECTIONS,
    f"{RUN}.strategy.properties.crossover": CROSSOVERS,
    f"{RUN}.strategy.properties.mutation": MUTATIONS,
    f"{RUN}.strategy.properties.restart": RESTARTS,
    f"{RUN}.strategy.properties.guide": GUIDES,
    f"{RUN}.strategy.properties.formulation": FORMULATIONS,
    f"{RUN}.strategy.properties.controller": CONTROLLERS,
    f"{RUN}.strategy.properties.reward": REWARDS,
    f"{RUN}.strategy.properties.acquisition": ACQUISITIONS,
    f"{RUN}.strategy.properties.predictor": PREDICTORS,
    f"{RUN}.strategy.properties.target": TARGETS,
    f"{RUN}.task.properties.name": TASKS,
    f"{RUN}.task.properties.rotation": ROTATIONS,
    f"{RUN}.task.properties.decoder": DECODERS,
    f"{RUN}.task.properties.year": VOC_YEARS,
    f"{RUN}.task.properties.in_memory": IN_MEMORY,
    f"{RUN}.task.properties.augment": AUGMENTS,
    f"{RUN}.training.properties.optimizer": OPTIMIZERS,
    f"{RUN}.training.properties.schedule": SCHEDULES,
    f"{RUN}.training.properties.device": DEVICES,
    f"{RUN}.training.properties.precision": PRECISIONS,
    f"{RUN}.evaluator.properties.name": EVALUATORS,
    f"{RUN}.evaluator.properties.proxies.items": PROXIES,
    f"{RUN}.objectives.items.properties.direction": DIRECTIONS,
}


def enums(node, path=()):
    if isinstance(node, dict):
        if "enum" in node:
            yield ".".join(path), node["enum"]
        for key, value in node.items():
            yield from enums(value, (*path, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from enums(value, (*path, str(i)))


SCHEMA = dict(enums(yaml.safe_load((REPO / "config" / "schema.yaml").read_text())))


def test_every_enum_has_a_home():
    assert set(SCHEMA) == set(HOMES)


@pytest.mark.parametrize("path", sorted(HOMES))
def test_the_enum_is_its_home(path):
    assert sorted(map(str, SCHEMA[path])) == sorted(map(str, HOMES[path]))
