"""Layer 7, experiments: many runs at once, the sweep grids, the scaling ladder, their cells and engines."""
