"""Tests of the QFA PEFT tuner (a package, so the test modules can import ``tuner_helpers`` relatively)."""
