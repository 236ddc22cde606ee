"""Layer 6, training: train, evaluate, checkpoint and run one benchmark (`mythbench run`), and the throughput bench."""
