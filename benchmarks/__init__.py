"""Benchmarks of blinker_events against blinker, Django signals and pyee."""
