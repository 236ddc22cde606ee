"""Layer 4, analysis: statistics, scaling-law fits and the Markdown/plot reports built from results."""
