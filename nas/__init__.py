"""snakenas: neural architecture search as a Snakemake workflow.

Light on import: nothing here pulls in torch, so the Snakefile and the
propose/aggregate steps stay fast. Modules that train import torch themselves.
"""

__version__ = "0.1.0"
