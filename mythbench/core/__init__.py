"""Layer 0, core: errors and crash-safe file I/O. Imports nothing else of mythbench."""
