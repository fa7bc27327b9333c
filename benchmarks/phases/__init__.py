"""The bench's phases, one module each; every phase returns its typed result
(benchmarks/results.py) and changes nothing it was given but the load it offered."""
