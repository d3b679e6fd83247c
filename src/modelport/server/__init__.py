"""Layer 3: the online prediction server (ASGI)."""
