"""Benchmark sections; scripts/bench.py runs them and prints one table."""
