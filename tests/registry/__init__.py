"""Tests of modelport.registry (a package, so that tests/integration can reuse its suite)."""
