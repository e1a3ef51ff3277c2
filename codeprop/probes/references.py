"""Published accuracies (%) of other systems, for comparison tables. Never our results."""

DEVMAP = {  # (AMD, NVIDIA), stratified 10-fold CV as reported by each paper.
    "Static mapping": (58.8, 56.9),
    "DeepTune": (83.7, 80.3),
    "inst2vec": (82.8, 81.8),
    "ProGraML": (86.6, 80.0),
    "IR2Vec": (92.8, 89.7),
    "PerfoGraph": (94.0, 90.0),
}

POJ104 = {
    "TBCNN": 94.0,
    "inst2vec": 94.8,
    "ProGraML": 96.6,
    "GEPCode": 97.2,
}


def for_benchmark(benchmark: str) -> dict[str, float]:
    """Published accuracy of each system on ``devmap/amd``, ``devmap/nvidia`` or ``poj104``."""
    if benchmark == "poj104":
        return dict(POJ104)
    column = {"devmap/amd": 0, "devmap/nvidia": 1}[benchmark]
    return {name: values[column] for name, values in DEVMAP.items()}
