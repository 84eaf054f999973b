"""Training tests (a package, so a test module can import another's helpers)."""
