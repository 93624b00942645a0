"""Synthesis without trained models: the video writer, grids, audio muxing, the live session's chunking and
latency bookkeeping, and the all-or-nothing output set — driven by small stand-ins for the brain and body
that follow docs/ARCHITECTURE.md. The end-to-end runs with real tiny checkpoints are in test_synthesis_cli.py.
"""
import numpy as np
import pytest
import torch

from data_utils.media import write_wav
from synthesis.pipeline import OfflineReport, SynthesisOutputs, synthesize
from synthesis.session import ListenerSession, replay, simulate_live_clock
from synthesis.video import VideoError, VideoWriter, grid_shape, read_video_frames, tile_grid
from utils.flame import AUDIO_DIM, FLAME_DIM, FPS, SPEAKER_EXP_DIM
from utils.media import MediaError, probe_audio, probe_video


def write_sine_wav(path, seconds, rate=16000):
    t = np.arange(int(rate * seconds)) / rate
    write_wav(path, 0.1 * np.sin(2 * np.pi * 440 * t), rate)


class StandInStream:
    """Emits listener frames in whole chunks, each one only after its speaker frames were pushed."""

    def __init__(self, policy, seed):
        self.policy = policy
        self.generator = np.random.default_rng(seed)
        self.pending = 0
        self.speaker_frames_seen = 0
        self.frames_emitted = 0

    def push(self, audio, exp):
        self.speaker_frames_seen += len(audio)
        self.pending += len(audio)
        ready = self.pending - self.pending % self.policy.chunk_frames
        self.pending -= ready
        return self._emit(ready)

    def flush(self):
        ready, self.pending = self.pending, 0
        return self._emit(ready)

    def _emit(self, count):
        self.frames_emitted += count
        assert self.frames_emitted <= self.speaker_frames_seen
        return self.generator.normal(size=(1, count, FLAME_DIM)).astype(np.float32)


class StandInPolicy:
    fps = FPS
    chunk_frames = 8

    def __init__(self):
        self.streams = []

    def generate(self, speaker_audio, speaker_exp, *, num_samples, seed, **options):
        generator = np.random.default_rng(seed)
        return generator.normal(size=(num_samples, len(speaker_audio), FLAME_DIM)).astype(np.float32)

    def stream(self, *, num_samples, seed, steps, **options):
        self.streams.append(StandInStream(self, seed))
        return self.streams[-1]


class StandInBody:
    """Each frame is a flat colour set by the first expression value, so frames can be matched to motion."""
    height, width, fps = 32, 48, FPS
    device = torch.device("cpu")

    def render_frames(self, flame, translation=None):
        level = (flame[:, 0].clamp(-2, 2) * 60 + 128).to(torch.uint8)  # [B]
        return level[:, None, None, None].expand(-1, self.height, self.width, 3).contiguous()


def speaker(num_frames, seed=0):
    generator = np.random.default_rng(seed)
    return (generator.normal(size=(num_frames, AUDIO_DIM)).astype(np.float32),
            generator.normal(size=(num_frames, SPEAKER_EXP_DIM)).astype(np.float32))


def test_writer_encodes_h264_with_exact_frame_count_and_pads_odd_sizes(tmp_path):
    frames = np.random.default_rng(0).integers(0, 255, size=(23, 31, 45, 3), dtype=np.uint8)
    with VideoWriter(tmp_path / "v.mp4", width=45, height=31) as video:
        video.write(frames[:10])
        video.write(frames[10:])
    info = probe_video(tmp_path / "v.mp4")
    assert (info.num_frames, info.fps, info.video_codec, info.pixel_format) == (23, 25.0, "h264", "yuv420p")
    assert (info.height, info.width) == (32, 46)  # padded to even sides for yuv420p
    assert info.duration_s == pytest.approx(23 / 25, abs=0.02)
    assert not info.has_audio


def test_writer_keeps_the_picture(tmp_path):
    frames = np.zeros((5, 32, 32, 3), np.uint8)
    frames[:, :, 16:] = 200  # right half bright
    with VideoWriter(tmp_path / "v.mp4", width=32, height=32, crf=10) as video:
        video.write(frames)
    decoded = read_video_frames(tmp_path / "v.mp4")
    assert decoded.shape == frames.shape
    assert np.abs(decoded.astype(int) - frames).mean() < 4


def test_writer_muxes_audio_cut_to_the_video_length(tmp_path):
    write_sine_wav(tmp_path / "speaker.wav", seconds=3.0)
    with VideoWriter(tmp_path / "v.mp4", width=32, height=32, audio_path=tmp_path / "speaker.wav",
                     num_frames=20) as video:
        video.write(np.zeros((20, 32, 32, 3), np.uint8))
    info = probe_video(tmp_path / "v.mp4")
    assert info.has_audio and info.audio_codec == "aac" and info.num_frames == 20
    assert probe_audio(tmp_path / "v.mp4") == pytest.approx(0.8, abs=0.1)  # container cut to the video


def test_writer_refuses_wrong_frames_and_reports_ffmpeg_failures(tmp_path):
    with pytest.raises(ValueError, match=r"uint8 frames \[B,32,32,3\]"):
        with VideoWriter(tmp_path / "v.mp4", width=32, height=32) as video:
            video.write(np.zeros((2, 32, 30, 3), np.uint8))
    (tmp_path / "bad.wav").write_text("not audio")
    with pytest.raises(VideoError, match="bad.wav"):
        with VideoWriter(tmp_path / "w.mp4", width=32, height=32, audio_path=tmp_path / "bad.wav") as video:
            video.write(np.zeros((2, 32, 32, 3), np.uint8))
    with pytest.raises(MediaError, match="no readable audio stream"):
        probe_audio(tmp_path / "bad.wav")


@pytest.mark.parametrize("count, shape", [(1, (1, 1)), (3, (1, 3)), (4, (1, 4)), (5, (2, 3)), (9, (3, 3))])
def test_grid_shape(count, shape):
    assert grid_shape(count) == shape


def test_tile_grid_places_videos_left_to_right_then_down():
    videos = np.stack([np.full((2, 4, 6, 3), 10 * (k + 1), np.uint8) for k in range(5)])  # [K=5,B,H,W,3]
    grid = tile_grid(videos)
    assert grid.shape == (2, 8, 18, 3)
    assert grid[0, 0, 0, 0] == 10 and grid[1, 0, 6, 0] == 20 and grid[0, 0, 12, 0] == 30
    assert grid[0, 4, 0, 0] == 40 and grid[0, 4, 6, 0] == 50 and grid[0, 4, 12, 0] == 0  # empty cell black


def test_simulated_live_clock_queues_slow_chunks():
    arrival = np.array([0.32, 0.64, 0.96])
    assert simulate_live_clock(np.array([0.01, 0.01, 0.01]), arrival) == pytest.approx([0.01] * 3)
    # 0.5 s per chunk cannot keep up with 0.32 s chunks: the backlog grows
    assert simulate_live_clock(np.array([0.5, 0.5, 0.5]), arrival) == pytest.approx([0.5, 0.68, 0.86])


def test_session_emits_whole_chunks_then_the_rest_on_flush():
    policy, body = StandInPolicy(), StandInBody()
    session = ListenerSession(policy, body, seed=0)
    audio, exp = speaker(21)
    sizes = [len(session.push(audio[a:b], exp[a:b])) for a, b in [(0, 5), (5, 13), (13, 21)]]
    rest = session.flush()
    assert sizes == [0, 8, 8] and rest.shape == (5, 32, 48, 3) and rest.dtype == np.uint8
    assert session.motion.shape == (21, FLAME_DIM)
    assert [t.frames_out for t in session.timings] == [0, 8, 8, 5]
    with pytest.raises(RuntimeError, match="flushed"):
        session.push(audio[:8], exp[:8])


def test_session_refuses_bad_chunks_naming_the_problem():
    session = ListenerSession(StandInPolicy(), StandInBody())
    audio, exp = speaker(8)
    with pytest.raises(ValueError, match=r"audio chunk: expected shape \[T,768\]"):
        session.push(audio[:, :700], exp)
    with pytest.raises(ValueError, match="same frames"):
        session.push(audio, exp[:7])
    exp[3, 4] = np.nan
    with pytest.raises(ValueError, match="expression chunk: 1 NaN"):
        session.push(audio, exp)


def test_replay_writes_every_frame_as_it_is_ready():
    policy, body = StandInPolicy(), StandInBody()
    session = ListenerSession(policy, body, seed=1)
    audio, exp = speaker(30)
    batches = []
    report = replay(session, audio, exp, batches.append)
    assert [len(b) for b in batches] == [8, 8, 8, 6]
    assert report.num_frames == 30 and len(report.live_latency) == 5  # 4 pushes + flush
    assert policy.streams[0].speaker_frames_seen == 30
    summary = report.summary()
    assert summary["compute_max_ms"] >= summary["compute_p50_ms"] > 0
    assert summary["end_to_end_max_ms"] >= 1000 * 8 / FPS
    assert "sustained" in report.format()


def test_realtime_replay_keeps_the_speakers_clock():
    session = ListenerSession(StandInPolicy(), StandInBody())
    audio, exp = speaker(16)  # two chunks: 0.64 s of speech
    report = replay(session, audio, exp, realtime=True)
    assert report.realtime and report.wall_s >= 16 / FPS
    assert report.sustained_fps <= FPS + 0.5  # paced by the speaker, not by the machine
    assert (report.live_latency >= 0).all() and report.live_latency.max() < 0.3


def test_offline_outputs_all_samples_grid_motion_and_plot(tmp_path):
    audio, exp = speaker(27)
    outputs, report = synthesize(StandInPolicy(), StandInBody(), audio, exp, tmp_path / "out" / "clip.mp4",
                                 num_samples=3, seed=4, render_batch=10, progress=False)
    assert [p.name for p in outputs.all_paths()] == ["clip_s0.mp4", "clip_s1.mp4", "clip_s2.mp4",
                                                     "clip_grid.mp4", "clip.npy", "clip.png"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(p.name for p in outputs.all_paths())
    assert isinstance(report, OfflineReport) and report.num_frames == 27
    motion = np.load(outputs.motion)
    assert motion.shape == (3, 27, FLAME_DIM)
    np.testing.assert_array_equal(motion, StandInPolicy().generate(audio, exp, num_samples=3, seed=4))
    grid = probe_video(outputs.grid)
    assert (grid.num_frames, grid.height, grid.width) == (27, 32, 3 * 48)
    # each sample's video shows its own motion: the stand-in body encodes exp 0 as brightness
    decoded = read_video_frames(outputs.videos[1])[:, 16, 24, 0].astype(int)
    expected = np.clip(motion[1, :, 0], -2, 2) * 60 + 128
    assert np.abs(decoded - expected.astype(np.uint8)).max() < 8


def test_streamed_output_has_every_frame_and_one_motion(tmp_path):
    audio, exp = speaker(19)
    write_sine_wav(tmp_path / "speaker.wav", seconds=19 / FPS)
    outputs, report = synthesize(StandInPolicy(), StandInBody(), audio, exp, tmp_path / "live.mp4",
                                 wav=tmp_path / "speaker.wav", stream=True, progress=False)
    info = probe_video(outputs.videos[0])
    assert info.num_frames == 19 and info.has_audio
    assert np.load(outputs.motion).shape == (19, FLAME_DIM)
    assert report.num_frames == 19


def test_a_failure_midway_leaves_no_output(tmp_path):
    class FailingBody(StandInBody):
        calls = 0

        def render_frames(self, flame, translation=None):
            FailingBody.calls += 1
            if FailingBody.calls == 3:
                raise RuntimeError("out of memory in the middle of the clip")
            return super().render_frames(flame)

    audio, exp = speaker(40)
    with pytest.raises(RuntimeError, match="out of memory"):
        synthesize(StandInPolicy(), FailingBody(), audio, exp, tmp_path / "clip.mp4", num_samples=2,
                   render_batch=8, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_output_names_and_refusals(tmp_path):
    single = SynthesisOutputs.for_output(tmp_path / "a.mp4", 1)
    assert [p.name for p in single.all_paths()] == ["a.mp4", "a.npy", "a.png"]
    with pytest.raises(ValueError, match=r"\.mp4"):
        SynthesisOutputs.for_output(tmp_path / "a.avi", 1)
    audio, exp = speaker(8)
    with pytest.raises(ValueError, match="one live listener"):
        synthesize(StandInPolicy(), StandInBody(), audio, exp, tmp_path / "a.mp4", num_samples=2, stream=True)
