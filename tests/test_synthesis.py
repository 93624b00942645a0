"""Synthesis without trained models: the video writer, grids, audio muxing, the live session's chunking,
audio path and latency bookkeeping, and the all-or-nothing output set — driven by small stand-ins for the
brain, body and feature source that follow docs/ARCHITECTURE.md and spend known times on a fake clock, so
every timing and latency the session reports can be checked to the microsecond against a hand count.
The end-to-end runs with real tiny checkpoints are in test_synthesis_cli.py and test_live.py.
"""
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from data_utils.media import iter_video_frames, write_wav
from synthesis.pipeline import OfflineReport, SynthesisOutputs, synthesize
from synthesis.session import ListenerSession, replay, replay_audio, simulate_live_clock
from synthesis.video import VideoError, VideoWriter, grid_shape, tile_grid
from utils.flame import AUDIO_DIM, FLAME_DIM, FPS, SPEAKER_EXP_DIM
from utils.media import MediaError, probe_audio, probe_video

BRAIN_S = 0.010  # fake seconds the stand-in brain spends per emitted chunk (or flushed tail)
RENDER_S_PER_FRAME = 0.001
FEATURES_S = 0.004  # per chunk of features the stand-in feature source computes
RATE = 16000
SAMPLES_PER_FRAME = RATE // FPS  # 640


def read_video_frames(path):
    """All frames of a video, uint8 [T,H,W,3]."""
    return np.stack(list(iter_video_frames(path)))


def write_sine_wav(path, seconds, rate=16000):
    t = np.arange(int(rate * seconds)) / rate
    write_wav(path, 0.1 * np.sin(2 * np.pi * 440 * t), rate)


class FakeClock:
    """Seconds that pass only when a stand-in spends them or the replay sleeps."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += max(0.0, seconds)


def expected_motion(seed, num_samples, num_frames):
    """The stand-in policy's motion: per sample, frames drawn in order from one generator."""
    return np.stack([np.random.default_rng([seed, k]).normal(size=(num_frames, FLAME_DIM))
                     for k in range(num_samples)]).astype(np.float32)


class StandInStream:
    """Emits whole chunks once their speaker frames were pushed; records what it was fed."""

    def __init__(self, policy, num_samples, seed, options):
        self.policy, self.options = policy, options
        self.generators = [np.random.default_rng([seed, k]) for k in range(num_samples)]
        self.pending = 0
        self.audio, self.exp = [], []  # everything pushed

    def push(self, audio, exp):
        assert len(audio) == len(exp)
        self.audio.append(np.array(audio))
        self.exp.append(np.array(exp))
        self.pending += len(audio)
        ready = self.pending - self.pending % self.policy.chunk_frames
        self.pending -= ready
        return self._emit(ready, ready // self.policy.chunk_frames)

    def flush(self):
        ready, self.pending = self.pending, 0
        return self._emit(ready, int(ready > 0))

    def _emit(self, count, steps):
        if self.policy.clock is not None:
            self.policy.clock.now += steps * self.policy.brain_s
        return np.stack([g.normal(size=(count, FLAME_DIM)) for g in self.generators]).astype(np.float32)


class StandInPolicy:
    fps = FPS
    chunk_frames = 8
    attitudes = ["positive", "neutral", "negative"]

    def __init__(self, clock=None, objective="diffusion", brain_s=BRAIN_S):
        self.clock, self.brain_s = clock, brain_s
        self.cfg = SimpleNamespace(model=SimpleNamespace(objective=objective),
                                   diffusion=SimpleNamespace(drop_speaker_exp=0.1, drop_both=0.1))
        self.streams = []

    def generate(self, speaker_audio, speaker_exp, *, num_samples, seed, **options):
        return expected_motion(seed, num_samples, len(speaker_audio))

    def stream(self, *, num_samples=1, seed=0, steps=None, attitude=None, intensity=None, **options):
        if attitude is not None and attitude not in self.attitudes:
            raise ValueError(f"unknown attitude {attitude!r}; this brain knows {', '.join(self.attitudes)}")
        self.streams.append(StandInStream(self, num_samples, seed,
                                          {"attitude": attitude, "intensity": intensity, **options}))
        return self.streams[-1]


class StandInBody:
    """Each frame is a flat colour set by the first expression value, so frames can be matched to motion."""
    height, width, fps = 32, 48, FPS
    device = torch.device("cpu")

    def __init__(self, clock=None):
        self.clock = clock

    def render_frames(self, flame, translation=None):
        if self.clock is not None:
            self.clock.now += RENDER_S_PER_FRAME * len(flame)
        level = (flame[:, 0].clamp(-2, 2) * 60 + 128).to(torch.uint8)  # [B]
        return level[:, None, None, None].expand(-1, self.height, self.width, 3).contiguous()


class StandInFeatureStream:
    """Like CausalWav2Vec's stream: chunk c (frames 8c..8c+7) once 5120 (c + 1) + 80 samples are in; frame
    k's features are the mean of its 640 samples (in every column), so tests can see which audio went where."""

    def __init__(self, source):
        self.source, self.samples, self.emitted = source, np.zeros(0, np.float32), 0

    def push(self, samples):
        self.samples = np.concatenate([self.samples, samples])
        out = [np.zeros((0, AUDIO_DIM), np.float32)]
        while len(self.samples) >= 8 * SAMPLES_PER_FRAME * (self.emitted // 8 + 1) + 80:
            out.append(self._features(self.emitted + 8))
        return np.concatenate(out)

    def flush(self, num_frames=None):
        total = self.source.frames_in(len(self.samples)) if num_frames is None else num_frames
        return self._features(total) if total > self.emitted else np.zeros((0, AUDIO_DIM), np.float32)

    def _features(self, stop):
        if self.source.clock is not None:
            self.source.clock.now += FEATURES_S
        padded = np.concatenate([self.samples, np.zeros(stop * SAMPLES_PER_FRAME, np.float32)])
        means = padded[:stop * SAMPLES_PER_FRAME].reshape(stop, SAMPLES_PER_FRAME).mean(1)[self.emitted:]
        self.emitted = stop
        return np.repeat(means[:, None], AUDIO_DIM, axis=1).astype(np.float32)


class StandInFeatureSource:
    sample_rate = RATE

    def __init__(self, clock=None):
        self.clock = clock

    def frames_in(self, num_samples):
        return num_samples * FPS // RATE

    def stream(self):
        return StandInFeatureStream(self)

    def extract(self, samples, num_frames=None):
        stream = self.stream()
        return np.concatenate([stream.push(samples), stream.flush(num_frames)])[:num_frames]


def speaker(num_frames, seed=0):
    generator = np.random.default_rng(seed)
    return (generator.normal(size=(num_frames, AUDIO_DIM)).astype(np.float32),
            generator.normal(size=(num_frames, SPEAKER_EXP_DIM)).astype(np.float32))


def ramp_audio(num_frames):
    """Waveform whose frame k has mean k / 1000 (so the stand-in features of frame k are k / 1000)."""
    return np.repeat(np.arange(num_frames, dtype=np.float32) / 1000, SAMPLES_PER_FRAME)


def live(clock=None, **session_options):
    """A session on stand-ins sharing ``clock``; returns it and its policy."""
    policy = StandInPolicy(clock)
    session = ListenerSession(policy, StandInBody(clock), audio_features=StandInFeatureSource(clock),
                              clock=clock or FakeClock(), **session_options)
    return session, policy


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
    assert simulate_live_clock(np.array([0.01, 0.01, 0.01]), arrival) == pytest.approx([0.33, 0.65, 0.97])
    # 0.5 s per chunk cannot keep up with 0.32 s chunks: the backlog grows
    assert simulate_live_clock(np.array([0.5, 0.5, 0.5]), arrival) == pytest.approx([0.82, 1.32, 1.82])


def test_session_emits_whole_chunks_then_the_rest_on_flush_and_times_each_stage():
    clock = FakeClock()
    policy = StandInPolicy(clock)
    session = ListenerSession(policy, StandInBody(clock), seed=0, clock=clock)
    audio, exp = speaker(21)
    sizes = [len(session.push(audio[a:b], exp[a:b])) for a, b in [(0, 5), (5, 13), (13, 21)]]
    rest = session.flush()
    assert sizes == [0, 8, 8] and rest.shape == (5, 32, 48, 3) and rest.dtype == np.uint8
    np.testing.assert_array_equal(session.motion, expected_motion(0, 1, 21)[0])
    timings = session.timings
    assert [(t.first_frame, t.frames_in, t.frames_out) for t in timings] == [(0, 5, 0), (0, 8, 8), (8, 8, 8),
                                                                            (16, 0, 5)]
    assert [t.brain_s for t in timings] == pytest.approx([0, BRAIN_S, BRAIN_S, BRAIN_S])
    assert [t.render_s for t in timings] == pytest.approx([0, 8e-3, 8e-3, 5e-3])
    assert [t.features_s for t in timings] == [0, 0, 0, 0]
    assert timings[-1].ready_at == pytest.approx(clock.now)
    np.testing.assert_array_equal(np.concatenate(policy.streams[0].exp), exp)
    with pytest.raises(RuntimeError, match="flushed"):
        session.push(audio[:8], exp[:8])


def test_session_refuses_bad_chunks_naming_the_problem():
    session = ListenerSession(StandInPolicy(), StandInBody())
    audio, exp = speaker(8)
    with pytest.raises(ValueError, match=r"audio chunk: expected shape \[T,768\]"):
        session.push(audio[:, :700], exp)
    with pytest.raises(ValueError, match="same frames"):
        session.push(audio, exp[:7])
    with pytest.raises(ValueError, match="expects the speaker's expression"):
        session.push(audio)
    with pytest.raises(RuntimeError, match="audio_features"):
        session.push_audio(np.zeros(640, np.float32))
    exp[3, 4] = np.nan
    with pytest.raises(ValueError, match="expression chunk: 1 NaN"):
        session.push(audio, exp)
    audio_only = ListenerSession(StandInPolicy(), StandInBody(), with_speaker_exp=False)
    with pytest.raises(ValueError, match="started without the speaker's expression"):
        audio_only.push(audio, exp)


def test_replay_latency_is_from_a_chunks_first_frame_on_the_real_clock():
    clock = FakeClock()
    session = ListenerSession(StandInPolicy(clock), StandInBody(clock), clock=clock)
    audio, exp = speaker(30)
    batches = []
    report = replay(session, audio, exp, batches.append, realtime=True, sleep=clock.sleep)
    assert [len(b) for b in batches] == [8, 8, 8, 6] and report.num_frames == 30
    # chunk c is complete at (c+1) * 0.32 s and ready BRAIN_S + 8 ms later; it began at c * 0.32 s.
    # The last 6 frames (from 0.96 s) are complete at 1.2 s and ready 10 + 6 ms later.
    assert report.latency == pytest.approx([0.32 + 0.018] * 3 + [1.2 + 0.016 - 0.96])
    assert report.wall_s == pytest.approx(1.216) and report.sustained_fps == pytest.approx(30 / 1.216)
    summary = report.summary()
    assert summary["brain_p50_ms"] == pytest.approx(10) and summary["render_max_ms"] == pytest.approx(8)
    assert summary["latency_max_ms"] == pytest.approx(338)
    assert "first audio sample of a chunk" in report.format()


def test_fast_replay_simulates_the_live_clock_from_measured_compute():
    clock = FakeClock()
    session = ListenerSession(StandInPolicy(clock), StandInBody(clock), clock=clock)
    audio, exp = speaker(30)
    fast = replay(session, audio, exp)
    assert fast.wall_s == pytest.approx(4 * BRAIN_S + 0.030)  # no sleeping: compute only
    assert fast.latency == pytest.approx([0.338, 0.338, 0.338, 0.256])  # the real clock's numbers

    clock = FakeClock()
    session = ListenerSession(StandInPolicy(clock, brain_s=0.49), StandInBody(clock), clock=clock)
    slow = replay(session, audio, exp)
    # ~0.5 s of compute per 0.32 s chunk: each chunk queues behind the previous one
    chunk_s, tail_s = 0.49 + 0.008, 0.49 + 0.006
    finish = 0.32 + np.array([chunk_s, 2 * chunk_s, 3 * chunk_s, 3 * chunk_s + tail_s])
    assert slow.latency == pytest.approx(finish - [0, 0.32, 0.64, 0.96])


def test_live_audio_chunk_latency_counts_features_lookahead_and_the_audio_block():
    clock = FakeClock()
    session, policy = live(clock, with_speaker_exp=False)
    samples = ramp_audio(40)
    report = replay_audio(session, samples, realtime=True, sleep=clock.sleep)
    assert report.num_frames == 40 and len(report.latency) == 5
    # chunk c needs 5120 (c+1) + 80 samples: the 10 ms block ending at 0.32 (c+1) + 0.01 s carries them;
    # then features 4 ms, brain 10 ms, render 8 ms -> 0.352 s after the chunk's first sample
    assert report.latency[:4] == pytest.approx([0.32 + 0.01 + FEATURES_S + BRAIN_S + 0.008] * 4)
    # the last chunk's look-ahead is past the audio's end: it comes with the flush at 1.6 s
    assert report.latency[4] == pytest.approx(1.6 + FEATURES_S + BRAIN_S + 0.008 - 1.28)
    summary = report.summary()
    assert [summary[f"{stage}_p50_ms"] for stage in ("features", "brain", "render")] == pytest.approx([4, 10, 8])
    # the brain got frame k's features (k / 1000) and no expression: the audio-only branch
    stream = policy.streams[0]
    np.testing.assert_allclose(np.concatenate(stream.audio)[:, 0], np.arange(40) / 1000, atol=1e-6)
    assert not np.concatenate(stream.exp).any() and stream.options["guidance_speaker_exp"] == 0.0


def test_warm_up_runs_brain_body_and_features_with_the_sessions_options_and_leaves_the_session_as_new():
    clock = FakeClock()
    session, policy = live(clock, with_speaker_exp=False, attitude="positive", guidance_audio=2.5)
    warm_s = session.warm_up()
    # two chunks through a throwaway brain stream with the session's own options and the feature source; one rendered
    warm_stream = policy.streams[-1]
    assert warm_stream is not policy.streams[0] and sum(map(len, warm_stream.audio)) == 16
    assert warm_stream.options == policy.streams[0].options
    assert warm_s == pytest.approx(2 * (BRAIN_S + FEATURES_S) + 8 * RENDER_S_PER_FRAME)
    assert session.frames_emitted == 0 and session.timings == [] and not policy.streams[0].audio

    fresh, _ = live(FakeClock(), with_speaker_exp=False, attitude="positive", guidance_audio=2.5)
    samples = ramp_audio(24)
    np.testing.assert_array_equal(replay_audio(session, samples).latency, replay_audio(fresh, samples).latency)
    np.testing.assert_array_equal(session.motion, fresh.motion)


def test_live_audio_with_expression_waits_for_both_and_emits_one_frame_per_expression_frame():
    clock = FakeClock()
    session, policy = live(clock)
    pushed, push_audio = [], session.push_audio  # (clock, expression frames received) at every push_audio

    def recording_push_audio(samples, exp):
        pushed.append((clock.now, session.exp_frames_received + len(exp)))
        return push_audio(samples, exp)

    session.push_audio = recording_push_audio
    _, exp = speaker(37)
    samples = ramp_audio(40)[:-100]  # the audio covers 39 whole frames, the expression 37
    frames = []
    replay_audio(session, samples, exp, frames.append, block_seconds=0.013, realtime=True, sleep=clock.sleep)
    assert sum(map(len, frames)) == 37 == len(session.motion)
    stream = policy.streams[0]
    np.testing.assert_array_equal(np.concatenate(stream.exp), exp)  # every expression frame, in order, once
    np.testing.assert_allclose(np.concatenate(stream.audio)[:, 0], np.arange(37) / 1000, atol=1e-6)
    assert "guidance_speaker_exp" not in stream.options  # the checkpoint's default
    # expression frame k goes in once it exists, at (k + 1) / 25 s, with the first block after that
    block = round(0.013 * RATE)
    arrivals = [min(len(samples), (i + 1) * block) / RATE for i in range(len(pushed))]
    assert [count for _, count in pushed[:-1]] == [min(37, int(t * FPS + 1e-9)) for t in arrivals[:-1]]
    assert all(now >= t for (now, _), t in zip(pushed, arrivals)) and pushed[-1][1] == 37

    longer, policy = live()  # expression past the audio's end: the feature source fills in (here: silence)
    replay_audio(longer, ramp_audio(35), exp)
    assert len(longer.motion) == 37
    np.testing.assert_allclose(np.concatenate(policy.streams[0].audio)[:, 0],
                               np.r_[np.arange(35), np.zeros(2)] / 1000, atol=1e-6)

    audio_only, _ = live(with_speaker_exp=False)
    assert len(replay_audio(audio_only, samples).timings) and len(audio_only.motion) == 39  # the audio's frames


def test_live_audio_refusals():
    session, _ = live(with_speaker_exp=False)
    with pytest.raises(ValueError, match="started without the speaker's expression"):
        session.push_audio(np.zeros(160, np.float32), np.zeros((1, SPEAKER_EXP_DIM), np.float32))
    with pytest.raises(ValueError, match="expression guidance must be 0"):
        live(with_speaker_exp=False, guidance_speaker_exp=2.0)
    with pytest.raises(ValueError, match="regression model"):
        ListenerSession(StandInPolicy(objective="regression"), StandInBody(), with_speaker_exp=False)


def test_attitude_and_intensity_reach_the_policy_and_unknown_names_are_refused():
    session, policy = live(attitude="negative", intensity=1.5)
    assert policy.streams[0].options["attitude"] == "negative" and policy.streams[0].options["intensity"] == 1.5
    with pytest.raises(ValueError, match="positive, neutral, negative"):
        live(attitude="sceptical")


def test_attitude_and_history_guidance_reach_the_brain_and_unset_ones_stay_the_checkpoints(tmp_path):
    audio, exp = speaker(9)
    policy = StandInPolicy()
    synthesize(policy, StandInBody(), audio, exp, tmp_path / "asked.mp4", attitude="positive",
               guidance_attitude=2.5, guidance_history=1.5, progress=False)
    asked = policy.streams[-1].options
    assert asked["guidance_attitude"] == 2.5 and asked["guidance_history"] == 1.5
    synthesize(policy, StandInBody(), audio, exp, tmp_path / "default.mp4", progress=False)
    unset = policy.streams[-1].options
    assert "guidance_attitude" not in unset and "guidance_history" not in unset  # the checkpoint's defaults

def test_realtime_replay_keeps_the_speakers_clock():
    session = ListenerSession(StandInPolicy(), StandInBody())
    audio, exp = speaker(16)  # two chunks: 0.64 s of speech
    report = replay(session, audio, exp, realtime=True)
    assert report.realtime and report.wall_s >= 16 / FPS
    assert report.sustained_fps <= FPS + 0.5  # paced by the speaker, not by the machine
    assert (report.latency >= 8 / FPS).all() and report.latency.max() < 8 / FPS + 0.3


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
    np.testing.assert_array_equal(motion, expected_motion(4, 3, 27))
    grid = probe_video(outputs.grid)
    assert (grid.num_frames, grid.height, grid.width) == (27, 32, 3 * 48)
    # each sample's video shows its own motion: the stand-in body encodes exp 0 as brightness
    decoded = read_video_frames(outputs.videos[1])[:, 16, 24, 0].astype(int)
    expected = np.clip(motion[1, :, 0], -2, 2) * 60 + 128
    assert np.abs(decoded - expected.astype(np.uint8)).max() < 8


def test_streamed_output_has_every_frame_and_one_motion(tmp_path):
    audio, exp = speaker(19)
    write_sine_wav(tmp_path / "speaker.wav", seconds=19 / FPS)
    for realtime in (False, True):
        policy = StandInPolicy()
        outputs, report = synthesize(policy, StandInBody(), audio, exp, tmp_path / "live.mp4",
                                     wav=tmp_path / "speaker.wav", stream=True, realtime=realtime, progress=False)
        info = probe_video(outputs.videos[0])
        assert info.num_frames == 19 and info.has_audio
        assert np.load(outputs.motion).shape == (19, FLAME_DIM)
        assert report.num_frames == 19 and report.realtime == realtime
        # the options check's stream, the session's, and on the real clock a warm-up stream before them, so
        # the first live chunk pays no graph capture or compilation
        assert len(policy.streams) == 2 + realtime


def test_offline_and_streamed_from_the_waveform_use_the_feature_source(tmp_path, capsys):
    samples = ramp_audio(30)
    write_sine_wav(tmp_path / "speaker.wav", seconds=30 / FPS)
    policy = StandInPolicy()
    outputs, report = synthesize(policy, StandInBody(), samples, None, tmp_path / "offline.mp4",
                                 audio_features=StandInFeatureSource(), wav=tmp_path / "speaker.wav")
    assert report.num_frames == 30 and probe_video(outputs.videos[0]).num_frames == 30
    offline = policy.streams[-1]
    np.testing.assert_allclose(np.concatenate(offline.audio)[:, 0], np.arange(30) / 1000, atol=1e-6)
    assert offline.options["guidance_speaker_exp"] == 0.0  # no expression: the audio-only branch
    assert "brain" in capsys.readouterr().err  # the brain step's progress bar
    outputs, report = synthesize(policy, StandInBody(), samples, None, tmp_path / "live.mp4",
                                 audio_features=StandInFeatureSource(), wav=tmp_path / "speaker.wav", stream=True,
                                 progress=False)
    info = probe_video(outputs.videos[0])
    assert info.num_frames == 30 and info.has_audio and np.load(outputs.motion).shape == (30, FLAME_DIM)
    assert len(report.encode_s) == len(report.timings) == 4  # one written batch per push that returned frames
    np.testing.assert_array_equal(np.load(outputs.motion), np.load(tmp_path / "offline.npy"))


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
