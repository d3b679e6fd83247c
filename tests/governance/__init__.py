"""Tests of the governance layer: gates, validation, promotions, releases, and the server's release routing."""
