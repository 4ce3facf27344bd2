"""Test helpers: stacks of real processes, fake third parties."""
