"""Tests of the subnet search (a package, so the test modules can import ``search_helpers`` relatively)."""
