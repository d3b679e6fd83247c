"""Layer 1: the bundle — manifest, save/load, hashing, signature inference, reference statistics, flavors."""
