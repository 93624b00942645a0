"""Stage 1 + 2 together: listener videos offline and live (brain sampling chained into the frozen body)."""
