"""Probes: the graph probe loop (`graph_probe`), experiments (`experiment`), reports and
published reference numbers (`report`, `references`)."""
