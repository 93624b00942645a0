"""Stage 2, the brain: a diffusion transformer that samples listener FLAME motion from a speaker."""
