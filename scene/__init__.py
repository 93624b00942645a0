"""Stage 1, the body: a persistent 3D Gaussian head deformed by FLAME codes."""
