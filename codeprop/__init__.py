"""codeprop: code representations on code properties, and CodeShell-style code LLMs.

Subpackages: `codeprop.data` (benchmarks, splits), `codeprop.graphs` (AST graphs,
batching), `codeprop.models` (GNNs), `codeprop.train` (steps, metrics), `codeprop.probes`
(probe loop, experiments, reports). The command line is `python -m codeprop.main`.
"""

__version__ = "0.1.0"
