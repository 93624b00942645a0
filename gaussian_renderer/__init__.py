"""Rendering as pure functions: Gaussians + camera in, colour/alpha/depth out (gsplat or PyTorch reference)."""
