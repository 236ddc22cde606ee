"""Layer 5, results: the results.json model and its validators, the leaderboard and submissions."""
