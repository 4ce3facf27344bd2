"""Chaos suite: the whole system as real processes, broken on purpose, nothing lost."""
