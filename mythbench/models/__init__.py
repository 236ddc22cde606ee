"""Layer 1, models: the RDT config, its layers and model, parameter/FLOP accounting, and the registries of
model families and baselines (plugins register themselves there; this layer never names them)."""
