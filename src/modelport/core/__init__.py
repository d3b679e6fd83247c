"""Layer 0: errors, settings and the frozen value types every other layer shares."""
