"""BodyModel: rigid head pose about the pivot, static torso, neck blend, deformation shapes, checkpoints, PLY."""
from pathlib import Path

import numpy as np
import pytest
import torch

from gaussian_renderer import Camera, quat_to_rotmat
from scene.body import BodyModel, BodyModelConfig, load_body
from scene.deform import DeformConfig, FlameDeformNet
from scene.gaussian_sets import GaussianInitConfig, init_mouth_set, make_gaussian_set
from scene.ply import SH_C0, write_gaussians_ply
from scene.render import main as render_main
from scene.rotation import (axis_angle_split, axis_angle_to_matrix, axis_angle_to_quat, quat_multiply,
                            rotate_about_axis)
from utils.checkpoint import CheckpointError, save_checkpoint
from utils.flame import DEFORMATION_DIM, FLAME_DIM, GLOBAL_ROT, JAW

PIVOT = torch.tensor([0.01, 0.02, 0.5])


def tiny_body(seed=0, *, perturb_deformation=True) -> BodyModel:
    """A 24x24 body built by hand: head Gaussians above the pivot, torso Gaussians well below the neck."""
    generator = torch.Generator().manual_seed(seed)
    head = torch.randn(40, 3, generator=generator) * 0.04 + torch.tensor([0.0, -0.06, 0.0])
    torso = torch.rand(20, 3, generator=generator) * torch.tensor([0.2, 0.05, 0.05]) + torch.tensor([-0.1, 0.15, 0.0])
    on_jaw = torch.cat([(head[:, 1] > -0.06).float(), torch.ones(20)])  # the lower head, and (ignored) the torso
    face = make_gaussian_set(torch.cat([head, torso]), torch.rand(60, 3, generator=generator), 0.01, 0.7, on_jaw)
    mouth = make_gaussian_set(torch.randn(8, 3, generator=generator) * 0.01, torch.rand(8, 3, generator=generator),
                              0.005, 0.7)
    cfg = BodyModelConfig(deform=DeformConfig(plane_resolution=8, plane_channels=4, code_width=8, hidden=16,
                                              hidden_layers=1))
    body = BodyModel(cfg, camera=Camera(width=24, height=24, fx=30.0, fy=30.0, cx=12.0, cy=12.0), fps=25,
                     background=torch.rand(24, 24, 3, generator=generator), mean_translation=PIVOT,
                     gaussians={"face": face, "mouth": mouth})
    if perturb_deformation:  # a non-trivial deformation, so the tests see offsets that are not zero
        with torch.no_grad():
            for parameter in [*body.deform.head.parameters(), *body.mouth_deform.head.parameters()]:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.05)
    return body


def read_gaussians_ply(path) -> dict[str, np.ndarray]:
    """An independent reader of the binary 3DGS PLY that scene.ply writes (header parsed, columns by name)."""
    data = Path(path).read_bytes()
    end = data.find(b"end_header\n")
    assert data.startswith(b"ply\n") and end > 0
    header = data[:end].decode("ascii").splitlines()
    assert "format binary_little_endian 1.0" in header
    count = next(int(line.split()[2]) for line in header if line.startswith("element vertex"))
    names = [line.split()[2] for line in header if line.startswith("property float")]
    table = np.frombuffer(data[end + len(b"end_header\n"):], dtype="<f4").reshape(count, len(names))
    column = {name: table[:, i] for i, name in enumerate(names)}

    def stack(*keys):
        return np.stack([column[k] for k in keys], axis=1)

    return {"means": stack("x", "y", "z"), "log_scales": stack("scale_0", "scale_1", "scale_2"),
            "quats": stack("rot_0", "rot_1", "rot_2", "rot_3"), "opacity_logits": column["opacity"],
            "colors": 0.5 + SH_C0 * stack("f_dc_0", "f_dc_1", "f_dc_2")}


def random_flame(batch, seed=1):
    flame = torch.randn(batch, FLAME_DIM, generator=torch.Generator().manual_seed(seed)) * 0.3
    return flame


def posed_means(body, flame, translation=None):
    layers, _ = body.pose(flame, translation)
    return torch.cat([layer.means for layer in layers], dim=1)  # [B,N,3]


def test_rotation_helpers_invert_and_agree():
    axis_angle = torch.tensor([[0.3, -0.2, 0.5], [0.0, 0.0, 0.0]])
    matrix = axis_angle_to_matrix(axis_angle)
    eye = torch.eye(3).expand(2, 3, 3)
    torch.testing.assert_close(matrix @ matrix.transpose(-1, -2), eye, atol=1e-6, rtol=0)
    torch.testing.assert_close(axis_angle_to_matrix(-axis_angle) @ matrix, eye, atol=1e-6, rtol=0)
    axis, angle = axis_angle_split(axis_angle)
    torch.testing.assert_close(quat_to_rotmat(axis_angle_to_quat(axis, angle)), matrix, atol=1e-6, rtol=0)
    other = torch.tensor([0.7, 0.1, -0.4, 0.2])
    torch.testing.assert_close(quat_to_rotmat(quat_multiply(axis_angle_to_quat(axis, angle), other)),
                               matrix @ quat_to_rotmat(other), atol=1e-6, rtol=0)


def test_global_rotation_is_rigid_about_pivot_and_leaves_torso():
    body = tiny_body()
    flame = random_flame(1)
    turned = flame.clone()
    turned[:, GLOBAL_ROT] = torch.tensor([0.1, 0.35, -0.05])
    weight = body.rigid_weight(torch.cat([body.gaussians[n]["means"] for n in ("face", "mouth")]))[:, 0]
    head, torso = weight == 1, weight == 0
    assert head.sum() >= 40 and torso.sum() == 20  # the hand-built sets sit where the test expects
    still, moved = posed_means(body, flame)[0], posed_means(body, turned)[0]
    rotation = axis_angle_to_matrix(turned[0, GLOBAL_ROT]) @ axis_angle_to_matrix(flame[0, GLOBAL_ROT]).T
    expected = (still[head] - PIVOT) @ rotation.T + PIVOT  # rigid about the pivot, deformation included
    torch.testing.assert_close(moved[head], expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(moved[torso], still[torso])  # the shoulders do not turn
    # Orientation turns with the head too: R_posed = R_global @ R_canonical-with-offsets.
    quats = lambda f: torch.cat([layer.quats for layer in body.pose(f)[0]], dim=1)[0]  # noqa: E731
    torch.testing.assert_close(quat_to_rotmat(quats(turned)[head]),
                               rotation @ quat_to_rotmat(quats(flame)[head]), atol=1e-5, rtol=0)


def test_neck_blend_is_continuous_between_head_and_torso():
    body = tiny_body(perturb_deformation=False)
    neck = body.cfg.neck
    heights = torch.linspace(neck.blend_start - 0.02, neck.blend_end + 0.02, 200)
    line = torch.stack([torch.zeros_like(heights), heights, torch.full_like(heights, 0.03)], dim=1)
    weight = body.rigid_weight(line)[:, 0]
    assert weight[0] == 1 and weight[-1] == 0 and (weight.diff() <= 0).all()
    flame = torch.zeros(1, FLAME_DIM)
    flame[0, GLOBAL_ROT] = torch.tensor([0.0, 0.35, 0.0])
    axis, angle = axis_angle_split(flame[:, GLOBAL_ROT])
    displacement = rotate_about_axis(line, axis, angle * weight[:, None]) - line  # what pose() applies
    step = (displacement[1:] - displacement[:-1]).norm(dim=1)
    spacing = heights[1] - heights[0]
    assert step.max() < 10 * spacing * angle.item()  # no jump anywhere along the neck: no seam


def test_deformation_shapes_and_identity_start():
    net = FlameDeformNet(DeformConfig(plane_resolution=8, plane_channels=4, code_width=8, hidden=16))
    means = torch.randn(30, 3) * 0.1
    offsets = net.offsets(net.spatial(means), torch.randn(3, DEFORMATION_DIM))
    assert {k: tuple(v.shape) for k, v in offsets.items()} == {"means": (3, 30, 3), "quats": (3, 30, 4),
                                                                "scales": (3, 30, 3)}
    assert all(v.abs().max() == 0 for v in offsets.values())  # a fresh network does not move anything
    with pytest.raises(ValueError, match=r"deformation code must be \[B,53\]"):
        net.offsets(net.spatial(means), torch.randn(3, 56))


def test_expression_and_jaw_move_the_head_not_the_torso():
    body = tiny_body()
    flame = random_flame(1)
    opened = flame.clone()
    opened[:, JAW.start] += 0.3
    weight = body.rigid_weight(torch.cat([body.gaussians[n]["means"] for n in ("face", "mouth")]))[:, 0]
    change = (posed_means(body, opened) - posed_means(body, flame))[0].norm(dim=1)
    assert change[weight == 1].max() > 1e-4 and change[weight == 0].max() == 0


def test_jaw_turns_its_share_of_each_gaussian_about_the_pivot():
    body = tiny_body(perturb_deformation=False)  # no learned offsets: the jaw rotation alone
    flame = torch.zeros(2, FLAME_DIM)
    flame[1, JAW] = torch.tensor([0.3, 0.05, 0.0])
    means = torch.cat([body.gaussians[n]["means"] for n in ("face", "mouth")]).detach()
    share = torch.sigmoid(torch.cat([body.gaussians[n]["jaw"] for n in ("face", "mouth")])).detach()
    weight = body.rigid_weight(means)[:, 0]
    rest, opened = posed_means(body, flame)[0], posed_means(body, flame)[1]
    on_jaw, off_jaw = (share > 0.99) & (weight == 1), share < 0.01
    assert on_jaw.sum() > 5 and off_jaw.sum() > 5
    rotation = axis_angle_to_matrix(flame[1, JAW])
    pivot = body.jaw_pivot.detach()
    torch.testing.assert_close(opened[on_jaw], (rest[on_jaw] - PIVOT - pivot) @ rotation.T + pivot + PIVOT,
                               atol=1e-4, rtol=0)  # rigid about the pivot (at mean translation, no head turn)
    torch.testing.assert_close(opened[off_jaw], rest[off_jaw])
    torso = weight == 0
    assert torso.sum() == 20 and (share[torso] > 0.99).all()  # torso Gaussians with a jaw share ...
    torch.testing.assert_close(opened[torso], rest[torso])  # ... still do not follow the jaw
    body.cfg.jaw.enabled = False
    torch.testing.assert_close(posed_means(body, flame)[1], rest)


def test_appearance_offsets_follow_the_code_and_switch_off():
    body = tiny_body()
    flame = random_flame(2)
    layers, offsets = body.pose(flame)
    opacities = torch.cat([layer.opacities for layer in layers], dim=1)  # [B,N]
    assert offsets["opacities"].shape == opacities.shape and offsets["colors"].shape[-1] == 3
    assert (opacities[0] - opacities[1]).abs().max() > 1e-4  # two expressions, two appearances
    static = BodyModel(BodyModelConfig(deform=body.cfg.deform, appearance=False), camera=body.camera, fps=25,
                       background=body.background, mean_translation=PIVOT,
                       gaussians={name: body.gaussians[name] for name in ("face", "mouth")})
    plain = torch.cat([layer.opacities for layer in static.pose(flame)[0]], dim=1)
    logits = torch.cat([body.gaussians[n]["opacities"] for n in ("face", "mouth")])
    torch.testing.assert_close(plain, torch.sigmoid(logits).expand(2, -1))


def test_fast_render_path_is_the_two_layer_composite():
    # render_frames draws both layers in one rasteriser pass (stacked); forward composites two passes.
    body = tiny_body()
    body.eval()
    flame = random_flame(4)
    flame[:, JAW] = torch.tensor([0.3, 0.0, 0.0])  # the mouth opens: both layers show
    with torch.no_grad():
        reference = body(flame)["color"].clamp(0, 1)
        fast = body.render_frames(flame).float() / 255
    difference = (fast - reference).abs()
    assert difference.max() <= 0.5 / 255 + 2e-3 and difference.mean() < 0.5 / 255  # uint8 rounding (+ early stop)


def test_frozen_body_caches_canonical_features_without_changing_output():
    body = tiny_body()
    flame = random_flame(3)
    training_color = body(flame)["color"].detach()
    body.eval()
    with torch.no_grad():
        first = body(flame)["color"]
        assert body._frozen_canonical is not None
        second = body(flame)["color"]
    torch.testing.assert_close(first, training_color)
    torch.testing.assert_close(second, training_color)
    body.train()
    assert body._frozen_canonical is None


def test_render_frames_shapes_and_bad_inputs():
    body = tiny_body()
    flame = random_flame(2)
    frames = body.render_frames(flame)
    assert frames.dtype == torch.uint8 and frames.shape == (2, 24, 24, 3)
    out = body(flame, PIVOT.expand(2, 3) + 0.01)
    assert out["color"].shape == (2, 24, 24, 3) and out["alpha"].shape == (2, 24, 24, 1)
    assert out["depth"].shape == (2, 24, 24, 1) and out["alpha"].max() > 0.5
    with pytest.raises(ValueError, match=r"flame must be \[B,56\]"):
        body.render_frames(flame[:, :50])
    with pytest.raises(ValueError, match=r"translation must be \[B,3\]"):
        body.render_frames(flame, torch.zeros(3, 3))


def test_checkpoint_round_trip_and_refusing_a_brain(tmp_path):
    body = tiny_body()
    save_checkpoint({**body.to_payload(), "step": 3}, tmp_path / "model" / "body.pth", kind="body")
    loaded = load_body(tmp_path / "model")
    flame = random_flame(2)
    # The plate is stored as uint8, so colours agree to within half a grey level.
    torch.testing.assert_close(loaded(flame)["color"], body(flame)["color"], atol=2.5e-3, rtol=0)
    save_checkpoint({"config": {}, "step": 0}, tmp_path / "brain.pth", kind="brain")
    with pytest.raises(CheckpointError, match="brain checkpoint, but a body checkpoint was expected"):
        load_body(tmp_path / "brain.pth")
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_body(tmp_path / "missing")
    earlier = {key: value for key, value in body.to_payload().items() if key not in ("mouth_deform", "jaw_pivot")}
    save_checkpoint({**earlier, "model_config": {}, "step": 0}, tmp_path / "old" / "body.pth", kind="body")
    with pytest.raises(CheckpointError, match="earlier layout"):
        load_body(tmp_path / "old")


def test_a_body_saved_before_the_two_part_mouth_set_loads_with_its_own_mouth_box(tmp_path):
    body = tiny_body()
    payload = body.to_payload()
    init = payload["config"]["model"]["init"]
    for key in ("jaw_mouth_center", "jaw_mouth_radii", "jaw_mouth_fraction"):  # keys that layout lacked
        del init[key]
    init["mouth_center"] = [0.0, -0.012, -0.065]  # its default then: the mouth deformation's box centre
    save_checkpoint({**payload, "step": 0}, tmp_path / "model" / "body.pth", kind="body")
    loaded = load_body(tmp_path / "model")
    assert loaded.mouth_deform.triplane.centre.tolist() == pytest.approx([0.0, -0.012, -0.065])
    flame = random_flame(2)
    body.mouth_deform.triplane.centre.copy_(torch.tensor([0.0, -0.012, -0.065]))
    torch.testing.assert_close(loaded(flame)["color"], body(flame)["color"], atol=2.5e-3, rtol=0)


def test_a_body_saved_before_the_blended_appearance_loads_with_logit_offsets(tmp_path):
    body = tiny_body()
    earlier = BodyModel(BodyModelConfig(deform=body.cfg.deform, appearance_blend=False), camera=body.camera, fps=25,
                        background=body.background, mean_translation=PIVOT,
                        gaussians={name: body.gaussians[name] for name in ("face", "mouth")})
    with torch.no_grad():
        for parameter in [*earlier.deform.head.parameters(), *earlier.mouth_deform.head.parameters()]:
            parameter.normal_(0, 0.05)
    payload = earlier.to_payload()
    del payload["config"]["model"]["appearance_blend"]  # the key that layout lacked
    save_checkpoint({**payload, "step": 0}, tmp_path / "model" / "body.pth", kind="body")
    loaded = load_body(tmp_path / "model")
    assert not loaded.cfg.appearance_blend and loaded.deform.appearance_basis is None
    flame = random_flame(2)
    torch.testing.assert_close(loaded(flame)["color"], earlier(flame)["color"], atol=2.5e-3, rtol=0)


def test_blended_colour_starts_at_the_canonical_colour_and_moves_towards_the_target():
    body = tiny_body(perturb_deformation=False)
    flame = random_flame(2)
    canonical = torch.cat([torch.sigmoid(body.gaussians[n]["colors"]) for n in ("face", "mouth")])
    colours = torch.cat([layer.colors for layer in body.pose(flame)[0]], dim=1)  # [B,N,3]
    torch.testing.assert_close(colours, canonical.expand_as(colours))  # identity at the start
    with torch.no_grad():  # the code-linear basis alone: a share and a target that follow the code
        body.deform.appearance_basis.normal_(0, 0.5)
    layers, offsets = body.pose(flame)
    colours = torch.cat([layer.colors for layer in layers], dim=1)
    share = torch.tanh(body.canonical()["weight"] * offsets["colour_share"])
    expected = (canonical + share * (torch.sigmoid(offsets["colors"]) - canonical)).clamp(0, 1)
    torch.testing.assert_close(colours, expected)
    assert (colours[0] - colours[1]).abs().max() > 1e-2  # two expressions, two colours


def test_mouth_set_has_a_skull_part_and_a_jaw_part_above_the_lips_seam():
    cfg = GaussianInitConfig(mouth_count=400)
    mouth = init_mouth_set(cfg, np.random.default_rng(0))
    share = torch.sigmoid(mouth["jaw"]).detach()
    on_jaw = share > 0.5
    assert int(on_jaw.sum()) == round(cfg.mouth_count * cfg.jaw_mouth_fraction)
    assert torch.all((share > 0.999) | (share < 0.001))
    y = mouth["means"][:, 1].detach()
    # y grows downwards: the lower teeth and tongue start above the seam, where the jaw turns them into the
    # opening; the skull's part reaches below it, where the lower lip goes.
    assert float(y[on_jaw].max()) <= cfg.lip_seam_y + 1e-6 < float(y[~on_jaw].max())
    assert float(y[on_jaw].mean()) < float(y[~on_jaw].mean())


def test_ply_round_trip_canonical_and_posed(tmp_path):
    body = tiny_body()
    canonical = {k: v.numpy() for k, v in body.export_gaussians().items()}
    write_gaussians_ply(tmp_path / "head.ply", **canonical)
    back = read_gaussians_ply(tmp_path / "head.ply")
    for key, value in canonical.items():
        np.testing.assert_allclose(back[key], value, atol=1e-6, rtol=0)
    header = (tmp_path / "head.ply").read_bytes()[:600].decode("ascii", errors="replace")
    assert "element vertex 68" in header and "property float f_dc_0" in header and "property float rot_3" in header
    posed = body.export_gaussians(random_flame(1)[0])
    torch.testing.assert_close(posed["means"], posed_means(body, random_flame(1))[0])


def test_render_cli_writes_frames_and_refuses_bad_flame(tmp_path, capsys):
    body = tiny_body()
    save_checkpoint({**body.to_payload(), "step": 0}, tmp_path / "model" / "body.pth", kind="body")
    np.save(tmp_path / "flame.npy", random_flame(3).numpy())
    assert render_main(["-m", str(tmp_path / "model"), "--flame", str(tmp_path / "flame.npy"),
                        "--out", str(tmp_path / "frames"), "--device", "cpu"]) == 0
    assert sorted(p.name for p in (tmp_path / "frames").iterdir()) == ["000000.png", "000001.png", "000002.png"]
    assert render_main(["-m", str(tmp_path / "model"), "--ply", str(tmp_path / "p.ply"), "--flame",
                        str(tmp_path / "flame.npy"), "--frame", "2", "--device", "cpu"]) == 0
    assert read_gaussians_ply(tmp_path / "p.ply")["means"].shape == (68, 3)
    np.save(tmp_path / "bad.npy", np.zeros((3, 50), np.float32))
    assert render_main(["-m", str(tmp_path / "model"), "--flame", str(tmp_path / "bad.npy"),
                        "--out", str(tmp_path / "bad_frames"), "--device", "cpu"]) == 2
    assert "bad.npy: expected shape [T,56]" in capsys.readouterr().err
    assert not (tmp_path / "bad_frames").exists()


def test_render_cli_takes_one_sample_of_a_multi_sample_file(tmp_path, capsys):
    """``brain.sample --num_samples K`` writes [K,T,56]; ``--sample k`` renders exactly sample k."""
    body = tiny_body()
    model = tmp_path / "model"
    save_checkpoint({**body.to_payload(), "step": 0}, model / "body.pth", kind="body")
    samples = random_flame(3 * 2).numpy().reshape(3, 2, FLAME_DIM)  # K=3 samples of 2 frames
    np.save(tmp_path / "samples.npy", samples)
    np.save(tmp_path / "one.npy", samples[1])
    common = ["-m", str(model), "--device", "cpu"]
    assert render_main(common + ["--flame", str(tmp_path / "samples.npy"), "--sample", "1",
                                 "--out", str(tmp_path / "k1")]) == 0
    assert render_main(common + ["--flame", str(tmp_path / "one.npy"), "--out", str(tmp_path / "direct")]) == 0
    for name in ("000000.png", "000001.png"):
        assert (tmp_path / "k1" / name).read_bytes() == (tmp_path / "direct" / name).read_bytes()
    capsys.readouterr()
    refusals = [(["--flame", str(tmp_path / "samples.npy")], "holds 3 samples [3, 2, 56]"),
                (["--flame", str(tmp_path / "samples.npy"), "--sample", "3"], "--sample 3 is outside"),
                (["--flame", str(tmp_path / "one.npy"), "--sample", "0"], "needs a [K,T,56] file of samples")]
    for extra, message in refusals:
        assert render_main(common + extra + ["--out", str(tmp_path / "refused")]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "refused").exists()
