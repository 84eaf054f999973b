"""Tests of materialization, budget loading, model cards and the Hub (a package, for relative imports)."""
