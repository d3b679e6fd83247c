"""Layer 3: governance — validation gates, promotion policies, approvals and release rules."""
