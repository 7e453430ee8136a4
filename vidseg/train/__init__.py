"""Training recipes: HR per-frame, AR-Seg LR branch + CReFF with feature-similarity training, ETC's
temporal-consistency loss, and the built-in demo model."""
