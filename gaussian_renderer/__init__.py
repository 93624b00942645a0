"""Rendering as pure functions: Gaussians + camera in, colour/alpha/depth out (gsplat or PyTorch reference).

    from gaussian_renderer import Camera, GaussianLayer, render_layers
    out = render_layers([face_layer, mouth_layer], camera, background=bg, backend="auto")

See docs/RENDERER.md for conventions (pixel centres, depth, compositing) and measurements.
"""
from gaussian_renderer.backends import BACKENDS, render_layers, render_stacked, render_stacked_frames, resolve_backend
from gaussian_renderer.camera import Camera
from gaussian_renderer.compositing import composite, stack_in_order, to_frames
from gaussian_renderer.gsplat_backend import rasterize_gsplat
from gaussian_renderer.layer import GaussianLayer, covariance_3d, quat_to_rotmat
from gaussian_renderer.reference import project_gaussians, rasterize_reference

__all__ = ["BACKENDS", "Camera", "GaussianLayer", "composite", "covariance_3d", "project_gaussians",
           "quat_to_rotmat", "rasterize_gsplat", "rasterize_reference", "render_layers", "render_stacked",
           "render_stacked_frames", "resolve_backend", "stack_in_order", "to_frames"]
