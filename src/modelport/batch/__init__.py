"""Layer 3: batch scoring jobs, schedules and run records."""
