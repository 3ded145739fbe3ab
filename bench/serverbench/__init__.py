"""The server comparison run by bench/bench.py: servers, scenarios, load, probes, report."""
