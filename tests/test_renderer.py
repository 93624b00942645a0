"""The reference rasteriser and the compositing rule against closed forms and a naive per-pixel oracle."""
import math

import numpy as np
import pytest
import torch

from gaussian_renderer import Camera, GaussianLayer, composite, rasterize_reference, render_layers, to_frames

IDENTITY_QUAT = (1.0, 0.0, 0.0, 0.0)


def make_layer(means, scales, opacities, colors, quats=None) -> GaussianLayer:
    """Unbatched lists -> a batch-1 layer."""
    means = torch.tensor(means, dtype=torch.float32)[None]
    count = means.shape[1]
    quats = torch.tensor(quats if quats is not None else [IDENTITY_QUAT] * count, dtype=torch.float32)[None]
    return GaussianLayer(means=means, quats=quats,
                         scales=torch.tensor(scales, dtype=torch.float32)[None],
                         opacities=torch.tensor(opacities, dtype=torch.float32)[None],
                         colors=torch.tensor(colors, dtype=torch.float32)[None])


def random_layer(batch, count, seed, *, depth=0.6, spread=0.08, scale=(0.004, 0.02)) -> GaussianLayer:
    generator = torch.Generator().manual_seed(seed)
    means = torch.randn(batch, count, 3, generator=generator) * spread + torch.tensor([0.0, 0.0, depth])
    scales = torch.empty(batch, count, 3).uniform_(*scale, generator=generator)
    return GaussianLayer(means=means, quats=torch.randn(batch, count, 4, generator=generator), scales=scales,
                         opacities=torch.rand(batch, count, generator=generator) * 0.9 + 0.05,
                         colors=torch.rand(batch, count, 3, generator=generator))


CAMERA = Camera(width=40, height=32, fx=60.0, fy=62.0, cx=20.0, cy=16.0)


def test_single_gaussian_matches_closed_form():
    # Centre on the optical axis so the Jacobian is diag(f/z): Sigma2d = (f s / z)^2 + 0.3 per axis.
    # cx, cy are pixel centres (x.5) so the peak lands exactly on pixel (row 16, col 20).
    camera = Camera(width=41, height=33, fx=60.0, fy=62.0, cx=20.5, cy=16.5)
    z, s, opacity = 0.5, 0.01, 0.7
    out = rasterize_reference(make_layer([[0.0, 0.0, z]], [[s, s, s]], [opacity], [[0.2, 0.4, 1.0]]), camera)
    alpha = out["alpha"][0, ..., 0]
    assert alpha.max() == alpha[16, 20]
    assert alpha[16, 20].item() == pytest.approx(opacity, rel=1e-5)
    assert torch.allclose(out["color"][0, 16, 20], opacity * torch.tensor([0.2, 0.4, 1.0]), rtol=1e-5)
    sigma_x = math.sqrt((camera.fx * s / z) ** 2 + 0.3)
    sigma_y = math.sqrt((camera.fy * s / z) ** 2 + 0.3)
    for k in (1, 2):
        assert alpha[16, 20 + k].item() == pytest.approx(opacity * math.exp(-0.5 * (k / sigma_x) ** 2), rel=1e-4)
        assert alpha[16 - k, 20].item() == pytest.approx(opacity * math.exp(-0.5 * (k / sigma_y) ** 2), rel=1e-4)
    # Beyond the alpha threshold of 1/255 nothing is drawn.
    far = math.ceil(sigma_x * math.sqrt(2 * math.log(255 * opacity))) + 1
    assert alpha[16, 20 + far].item() == 0.0


def test_off_axis_centre_lands_at_projection():
    x, y, z = 0.07, -0.05, 0.8
    out = rasterize_reference(make_layer([[x, y, z]], [[0.006] * 3], [0.9], [[1.0, 1.0, 1.0]]), CAMERA)
    alpha = out["alpha"][0, ..., 0]
    rows, cols = torch.meshgrid(torch.arange(CAMERA.height) + 0.5, torch.arange(CAMERA.width) + 0.5, indexing="ij")
    centroid_x = (alpha * cols).sum() / alpha.sum()
    centroid_y = (alpha * rows).sum() / alpha.sum()
    assert centroid_x.item() == pytest.approx(CAMERA.fx * x / z + CAMERA.cx, abs=0.05)
    assert centroid_y.item() == pytest.approx(CAMERA.fy * y / z + CAMERA.cy, abs=0.05)


@pytest.mark.parametrize("order", [(0, 1), (1, 0)])
def test_near_gaussian_occludes_far_one_whatever_the_input_order(order):
    means = [[0.0, 0.0, 0.5], [0.0, 0.0, 1.0]]  # red near, green far
    colors = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]
    pick = list(order)
    layer = make_layer([means[i] for i in pick], [[0.05] * 3, [0.1] * 3], [1.0, 1.0], [colors[i] for i in pick])
    out = render_layers(layer, CAMERA, backend="reference")
    centre = out["color"][0, 16, 20]
    assert centre[0] > 0.99 and centre[1] < 0.01
    assert out["depth"][0, 16, 20, 0].item() == pytest.approx(0.5, abs=0.01)


def test_depth_of_single_gaussian_is_its_z():
    out = rasterize_reference(make_layer([[0.01, 0.02, 0.73]], [[0.03] * 3], [1.0], [[0.5] * 3]), CAMERA)
    covered = out["alpha"][0, ..., 0] > 0.05
    assert covered.sum() > 20
    assert torch.allclose(out["depth"][0, ..., 0][covered], torch.tensor(0.73), atol=1e-5)
    assert (out["depth"][0, ..., 0][out["alpha"][0, ..., 0] == 0] == 0).all()


def test_near_plane_culls_gaussians_behind_it():
    layer = make_layer([[0.0, 0.0, 0.005], [0.0, 0.0, -0.4]], [[0.01] * 3] * 2, [1.0, 1.0], [[1.0] * 3] * 2)
    out = rasterize_reference(layer, CAMERA)
    assert out["alpha"].abs().max() == 0
    assert (out["info"]["radii"] == 0).all()


def test_composite_matches_the_formula():
    generator = torch.Generator().manual_seed(3)
    shape = (2, 5, 6)
    layers = []
    for _ in range(3):
        alpha = torch.rand(shape + (1,), generator=generator)
        layers.append({"color": alpha * torch.rand(shape + (3,), generator=generator), "alpha": alpha,
                       "depth": torch.rand(shape + (1,), generator=generator) + 0.5})
    background = torch.rand(shape[1:] + (3,), generator=generator)
    out = composite(layers, background)
    (c0, a0, d0), (c1, a1, d1), (c2, a2, d2) = [(l["color"], l["alpha"], l["depth"]) for l in layers]
    t1, t2, t3 = 1 - a0, (1 - a0) * (1 - a1), (1 - a0) * (1 - a1) * (1 - a2)
    torch.testing.assert_close(out["color"], c0 + t1 * c1 + t2 * c2 + t3 * background)
    torch.testing.assert_close(out["alpha"], 1 - t3)
    torch.testing.assert_close(out["depth"], (a0 * d0 + t1 * a1 * d1 + t2 * a2 * d2) / (1 - t3))


@pytest.mark.parametrize("background_shape", [(3,), (5, 6, 3), (2, 5, 6, 3), None])
def test_fused_frames_are_the_composite_rounded_to_uint8(background_shape):
    generator = torch.Generator().manual_seed(4)
    alpha = torch.rand(2, 5, 6, 1, generator=generator)
    color = alpha * torch.rand(2, 5, 6, 3, generator=generator) * 1.2  # premultiplied, a little over 1 at places
    background = None if background_shape is None else torch.rand(background_shape, generator=generator)
    frames = to_frames(color, alpha, background)
    composited = composite([{"color": color, "alpha": alpha}], background)["color"]
    expected = (composited.clamp(0, 1) * 255 + 0.5).to(torch.uint8)
    assert frames.dtype == torch.uint8 and frames.shape == (2, 5, 6, 3)
    assert (frames.int() - expected.int()).abs().max() <= 1  # one level where rounding lands on .5
    assert (frames == expected).float().mean() > 0.99


def test_render_front_layer_hides_back_layer_even_when_farther():
    # The face layer is *behind* the mouth in z but listed first: layer order, not depth, decides.
    def on_pixel_centre(z):  # a centre that projects onto pixel (row 16, col 20)
        return [[0.5 * z / CAMERA.fx, 0.5 * z / CAMERA.fy, z]]

    face = make_layer(on_pixel_centre(0.9), [[0.05] * 3], [1.0], [[1.0, 0.8, 0.6]])
    mouth = make_layer(on_pixel_centre(0.5), [[0.03] * 3], [1.0], [[0.3, 0.0, 0.0]])
    background = torch.tensor([0.0, 0.0, 1.0])
    out = render_layers([face, mouth], CAMERA, background=background, backend="reference")
    torch.testing.assert_close(out["color"][0, 16, 20], torch.tensor([1.0, 0.8, 0.6]), atol=1e-2, rtol=0)
    swapped = render_layers([mouth, face], CAMERA, background=background, backend="reference")
    torch.testing.assert_close(swapped["color"][0, 16, 20], torch.tensor([0.3, 0.0, 0.0]), atol=1e-2, rtol=0)
    corner = out["color"][0, 0, 0]  # nothing covers the corner: background
    torch.testing.assert_close(corner, background, atol=1e-6, rtol=0)
    assert len(out["layers"]) == 2 and out["backend"] == "reference"


def naive_render(layer: GaussianLayer, camera: Camera) -> np.ndarray:
    """An independent per-pixel loop in float64: project, sort by z, composite front to back -> [H,W,RGBA]."""
    means = layer.means[0].double().numpy()
    quats = layer.quats[0].double().numpy()
    quats = quats / np.linalg.norm(quats, axis=1, keepdims=True)
    scales, opacities = layer.scales[0].double().numpy(), layer.opacities[0].double().numpy()
    colors = layer.colors[0].double().numpy()
    image = np.zeros((camera.height, camera.width, 4))
    splats = []
    for mean, (w, x, y, z), scale, opacity, color in zip(means, quats, scales, opacities, colors):
        if mean[2] <= camera.near_plane:
            continue
        rotation = np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
                             [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
                             [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]])
        covariance = rotation @ np.diag(scale ** 2) @ rotation.T
        # gsplat evaluates the Jacobian with x/z, y/z clamped to 1.3x the half field of view.
        limit_x = 1.3 * camera.width / (2 * camera.fx)  # holds for a centred principal point
        limit_y = 1.3 * camera.height / (2 * camera.fy)
        x_over_z = np.clip(mean[0] / mean[2], -limit_x, limit_x)
        y_over_z = np.clip(mean[1] / mean[2], -limit_y, limit_y)
        jacobian = np.array([[camera.fx / mean[2], 0, -camera.fx * x_over_z / mean[2]],
                             [0, camera.fy / mean[2], -camera.fy * y_over_z / mean[2]]])
        covariance_2d = jacobian @ covariance @ jacobian.T + 0.3 * np.eye(2)
        centre = np.array([camera.fx * mean[0] / mean[2] + camera.cx, camera.fy * mean[1] / mean[2] + camera.cy])
        splats.append((mean[2], centre, np.linalg.inv(covariance_2d), opacity, color))
    splats.sort(key=lambda splat: splat[0])
    for row in range(camera.height):
        for col in range(camera.width):
            pixel, transmittance = np.array([col + 0.5, row + 0.5]), 1.0
            for _, centre, precision, opacity, color in splats:
                delta = pixel - centre
                alpha = min(0.999, opacity * np.exp(-0.5 * delta @ precision @ delta))
                if alpha < 1 / 255:
                    continue
                if transmittance * (1 - alpha) <= 1e-4:
                    break
                image[row, col, :3] += transmittance * alpha * color
                transmittance *= 1 - alpha
            image[row, col, 3] = 1 - transmittance
    return image


def test_matches_naive_oracle_and_is_tile_size_independent():
    camera = Camera(width=20, height=16, fx=30.0, fy=30.0, cx=10.0, cy=8.0)
    layer = random_layer(1, 40, seed=11, spread=0.1, scale=(0.005, 0.05))
    expected = naive_render(layer, camera)
    for tile_size in (4, 16):
        out = rasterize_reference(layer, camera, tile_size=tile_size)
        np.testing.assert_allclose(out["color"][0].numpy(), expected[..., :3], atol=2e-5)
        np.testing.assert_allclose(out["alpha"][0, ..., 0].numpy(), expected[..., 3], atol=2e-5)


def test_gradients_reach_every_parameter():
    layer = random_layer(2, 60, seed=5)
    for name in ("means", "quats", "scales", "opacities", "colors"):
        getattr(layer, name).requires_grad_(True)
    out = render_layers(layer, CAMERA, background=torch.full((3,), 0.2), backend="reference")
    (out["color"].square().sum() + out["depth"].sum()).backward()
    for name in ("means", "quats", "scales", "opacities", "colors"):
        grad = getattr(layer, name).grad
        assert grad is not None and torch.isfinite(grad).all(), name
        assert grad.abs().sum() > 0, name
    means2d_grad = out["layers"][0]["info"]["means2d"].grad  # what densification reads
    assert means2d_grad is not None and means2d_grad.shape == (2, 60, 2) and means2d_grad.abs().sum() > 0


def test_batch_elements_render_independently():
    first, second = random_layer(1, 30, seed=1), random_layer(1, 50, seed=2)
    # Pad the first with invisible Gaussians so both fit one [2,50,...] layer.
    pad = 20
    batched = GaussianLayer(
        means=torch.cat([torch.cat([first.means, torch.full((1, pad, 3), 0.5)], 1), second.means]),
        quats=torch.cat([torch.cat([first.quats, torch.ones(1, pad, 4)], 1), second.quats]),
        scales=torch.cat([torch.cat([first.scales, torch.full((1, pad, 3), 0.01)], 1), second.scales]),
        opacities=torch.cat([torch.cat([first.opacities, torch.zeros(1, pad)], 1), second.opacities]),
        colors=torch.cat([torch.cat([first.colors, torch.ones(1, pad, 3)], 1), second.colors]))
    out = render_layers(batched, CAMERA, backend="reference")
    assert out["color"].shape == (2, 32, 40, 3) and out["alpha"].shape == (2, 32, 40, 1)
    assert out["depth"].shape == (2, 32, 40, 1)
    for index, single in enumerate((first, second)):
        alone = render_layers(single, CAMERA, backend="reference")
        torch.testing.assert_close(out["color"][index], alone["color"][0])
        torch.testing.assert_close(out["depth"][index], alone["depth"][0])


def test_tiny_scene_learns_a_target_image():
    torch.manual_seed(0)
    camera = Camera(width=16, height=16, fx=24.0, fy=24.0, cx=8.0, cy=8.0)
    target = render_layers(random_layer(1, 12, seed=21, spread=0.1, scale=(0.03, 0.06)), camera,
                    background=torch.zeros(3), backend="reference")["color"]
    start = random_layer(1, 12, seed=22, spread=0.1, scale=(0.03, 0.06))
    colors = torch.nn.Parameter(torch.logit(start.colors.clamp(0.05, 0.95)))
    means = torch.nn.Parameter(start.means.clone())
    optimizer = torch.optim.Adam([colors, means], lr=0.02)
    losses = []
    for _ in range(40):
        layer = GaussianLayer(means=means, quats=start.quats, scales=start.scales, opacities=start.opacities,
                              colors=torch.sigmoid(colors))
        rendered = render_layers(layer, camera, background=torch.zeros(3), backend="reference")["color"]
        loss = (rendered - target).abs().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.6 * losses[0]


def test_bad_inputs_are_refused_clearly():
    with pytest.raises(ValueError, match="quats"):
        GaussianLayer(means=torch.zeros(1, 4, 3), quats=torch.zeros(1, 3, 4), scales=torch.zeros(1, 4, 3),
                      opacities=torch.zeros(1, 4), colors=torch.zeros(1, 4, 3))
    with pytest.raises(ValueError, match="means"):
        GaussianLayer(means=torch.zeros(4, 3), quats=torch.zeros(4, 4), scales=torch.zeros(4, 3),
                      opacities=torch.zeros(4), colors=torch.zeros(4, 3))
    layer = random_layer(1, 5, seed=0)
    with pytest.raises(ValueError, match="unknown renderer backend"):
        render_layers(layer, CAMERA, backend="vulkan")
    with pytest.raises(RuntimeError, match="CUDA"):
        render_layers(layer, CAMERA, backend="gsplat")
    with pytest.raises(ValueError, match="background"):
        render_layers(layer, CAMERA, background=torch.zeros(8, 8, 3), backend="reference")
    with pytest.raises(ValueError, match="focal"):
        Camera(width=8, height=8, fx=0.0, fy=1.0, cx=4.0, cy=4.0)


def test_auto_backend_uses_reference_on_cpu():
    assert render_layers(random_layer(1, 5, seed=0), CAMERA)["backend"] == "reference"


def test_hand_written_blend_gradient_matches_finite_differences():
    from gaussian_renderer.reference import AlphaBlend

    generator = torch.Generator().manual_seed(0)
    # Alphas between 0.02 and 0.95 (away from the 1/255 and 0.999 kinks); one pixel of 0.93s stops
    # early (T < 1e-4), so the stop is exercised too, away from its threshold.
    log_alpha = torch.empty(2, 3, 12, dtype=torch.float64).uniform_(math.log(0.02), math.log(0.95),
                                                                    generator=generator)
    log_alpha[0, 0] = math.log(0.93)  # T after 3: 3.4e-4, after 4: 2.4e-5 -> stops at the 4th
    features = torch.rand(2, 12, 4, dtype=torch.float64, generator=generator)
    assert torch.autograd.gradcheck(AlphaBlend.apply, (log_alpha.requires_grad_(), features.requires_grad_()))


def test_projection_matches_gsplats_pytorch_implementation():
    # gsplat ships a pure-PyTorch version of its projection that runs on CPU: an independent check of the
    # conventions (Jacobian clamp, 0.3 px low-pass, conic layout, depth).
    from gsplat.cuda._torch_impl import _fully_fused_projection, _quat_scale_to_covar_preci

    from gaussian_renderer import project_gaussians

    layer = random_layer(1, 200, seed=9, spread=0.3, scale=(0.002, 0.05))
    ours = project_gaussians(layer, CAMERA)
    covariances, _ = _quat_scale_to_covar_preci(layer.quats[0], layer.scales[0], compute_preci=False)
    radii, means2d, depths, conics, _ = _fully_fused_projection(
        layer.means[0], covariances, torch.eye(4)[None], CAMERA.intrinsics()[None], CAMERA.width, CAMERA.height,
        eps2d=0.3, near_plane=CAMERA.near_plane)
    visible = (ours["radii"][0] > 0).all(-1)
    assert visible.sum() > 50 and ((radii[0] > 0).all(-1) | ~visible).all()  # ours culls a subset of theirs
    torch.testing.assert_close(ours["means2d"][0][visible], means2d[0][visible])
    torch.testing.assert_close(ours["conics"][0][visible], conics[0][visible], rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(ours["depths"][0], depths[0])


def test_tile_culling_is_exact_per_pixel_centre():
    # _reaches_tile may drop a (Gaussian, tile) pair only when no pixel centre of the tile reaches 1/255.
    from gaussian_renderer.reference import _reaches_tile

    generator = torch.Generator().manual_seed(4)
    count, tile_size = 4000, 4
    centre = torch.rand(count, 2, generator=generator) * 24 - 4
    axes = torch.rand(count, 2, generator=generator) * 3 + 0.3  # std devs in pixels, up to 10:1 elongated
    angle = torch.rand(count, generator=generator) * math.pi
    cos, sin = torch.cos(angle), torch.sin(angle)
    rotation = torch.stack([cos, -sin, sin, cos], -1).reshape(count, 2, 2)
    precision = rotation @ torch.diag_embed(1 / axes ** 2) @ rotation.transpose(1, 2)
    conic = torch.stack([precision[:, 0, 0], precision[:, 0, 1], precision[:, 1, 1]], -1)
    opacity = torch.rand(count, generator=generator) * 0.99 + 0.01
    tile_col, tile_row = torch.ones(count, dtype=torch.long), torch.ones(count, dtype=torch.long)
    kept = _reaches_tile(centre, conic, opacity, tile_col, tile_row, tile_size)
    pixels = torch.stack(torch.meshgrid(torch.arange(4) + 4.5, torch.arange(4) + 4.5, indexing="xy"), -1)
    delta = pixels.reshape(1, -1, 2) - centre[:, None, :]  # [count,16,2]
    sigma = 0.5 * torch.einsum("npi,nij,npj->np", delta, precision, delta)
    reached = (opacity[:, None] * torch.exp(-sigma) >= 1 / 255).any(-1)
    assert not (reached & ~kept).any()  # never drops a pair that a pixel needs
    assert (~kept).sum() > 0.2 * count and (kept & ~reached).sum() < 0.05 * count  # and is tight


def test_reference_info_drives_gsplats_densification_strategy():
    from gsplat.strategy import DefaultStrategy

    generator = torch.Generator().manual_seed(0)
    count, batch = 200, 2
    params = torch.nn.ParameterDict({
        "means": torch.randn(count, 3, generator=generator) * 0.05 + torch.tensor([0.0, 0.0, 0.5]),
        "quats": torch.randn(count, 4, generator=generator), "scales": torch.full((count, 3), -4.5),
        "opacities": torch.zeros(count), "colors": torch.rand(count, 3, generator=generator)})
    optimizers = {name: torch.optim.Adam([param], lr=1e-3) for name, param in params.items()}
    # A tiny growth threshold so that the first refinement must grow the set.
    strategy = DefaultStrategy(refine_start_iter=1, refine_every=2, grow_grad2d=1e-9)
    state = strategy.initialize_state(scene_scale=0.1)
    camera = Camera(width=24, height=24, fx=36.0, fy=36.0, cx=12.0, cy=12.0)
    for step in range(3):
        layer = GaussianLayer(means=params["means"].expand(batch, -1, -1),
                              quats=params["quats"].expand(batch, -1, -1),
                              scales=params["scales"].exp().expand(batch, -1, -1),
                              opacities=torch.sigmoid(params["opacities"]).expand(batch, -1),
                              colors=params["colors"].expand(batch, -1, -1))
        out = render_layers(layer, camera, backend="reference")
        info = out["layers"][0]["info"]
        strategy.step_pre_backward(params, optimizers, state, step, info)
        out["color"].mean().backward()
        for optimizer in optimizers.values():
            optimizer.step()
            optimizer.zero_grad()
        strategy.step_post_backward(params, optimizers, state, step, info, packed=info["packed"])
    assert params["means"].shape[0] > count  # gradients reached the strategy and it grew the set


def test_stacking_behind_changes_no_projection():
    from gaussian_renderer import project_gaussians, stack_in_order

    face = random_layer(2, 50, seed=31, depth=0.7)
    mouth = random_layer(2, 30, seed=32, depth=0.5, spread=0.03)
    stacked = stack_in_order([face, mouth], CAMERA.near_plane)
    ours, alone = project_gaussians(stacked, CAMERA), project_gaussians(mouth, CAMERA)
    for key in ("means2d", "conics"):
        torch.testing.assert_close(ours[key][:, 50:], alone[key], rtol=1e-4, atol=1e-5)
    assert torch.equal(ours["radii"][:, 50:], alone["radii"])
    assert (ours["depths"][:, 50:].amin(1) > ours["depths"][:, :50].amax(1)).all()  # all behind the face


def test_one_pass_over_stacked_layers_is_the_layer_composite():
    from gaussian_renderer import render_stacked

    # The mouth is in front of the face in z but listed behind it: the order of the list must win.
    face = random_layer(2, 300, seed=41, depth=0.6)
    mouth = random_layer(2, 120, seed=42, depth=0.5, spread=0.04)
    mouth.means[0, :3, 2] = 0.005  # in front of the near plane: culled in both renders
    background = torch.rand(CAMERA.height, CAMERA.width, 3, generator=torch.Generator().manual_seed(4))
    layered = render_layers([face, mouth], CAMERA, background=background, backend="reference")
    single = render_stacked([face, mouth], CAMERA, background=background, backend="reference")
    assert single["backend"] == "reference" and "depth" not in single
    for key in ("color", "alpha"):
        difference = (single[key] - layered[key]).abs()
        # Equal except where the face alone nearly stops the light (transmittance ~1e-4): there the early
        # stop of one pass and of two differ by at most that remaining light.
        assert difference.max() < 2e-3 and difference.mean() < 2e-5, (key, difference.max(), difference.mean())
    swapped = render_layers([mouth, face], CAMERA, background=background, backend="reference")
    assert (swapped["color"] - single["color"]).abs().max() > 0.1  # the order is what the test can see
