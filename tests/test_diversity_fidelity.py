"""benchmarks/diversity_fidelity.py --from_metrics: the picture and table from evaluations already run."""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import diversity_fidelity  # noqa: E402


def _ratios(fd, frdiv):
    return {"fd_exp": fd, "pfd_exp": fd, "frdiv": frdiv, "sid_exp": 1.0, "amp_ratio": frdiv}


def test_from_metrics_draws_every_method_but_the_oracle_rows(tmp_path):
    metrics = {"ground_truth": {"ratio_to_oracle": _ratios(0.0, 1.0)}, "oracle": {"ratio_to_oracle": _ratios(1, 1)},
               "oracle[shuffled]": {"ratio_to_oracle": _ratios(8.0, 1.0)},
               "diffusion": {"ratio_to_oracle": _ratios(5.125, 0.39)},
               "diffusion[sampler=ddim,eta=1]": {"ratio_to_oracle": _ratios(4.5, 0.53)}, "mean": {"fd_exp": 1.0}}
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "metrics.json").write_text(json.dumps(metrics))
    assert diversity_fidelity.main(["--from_metrics", str(tmp_path / "eval" / "metrics.json"),
                                    "--out", str(tmp_path / "out")]) == 0
    table = (tmp_path / "out" / "diversity_fidelity.md").read_text().splitlines()
    assert table[0] == ("| sampling | fd_exp / oracle | pfd_exp / oracle | frdiv / oracle | sid_exp / oracle "
                        "| amp_ratio / oracle |")
    assert table[2:] == ["| diffusion | 5.125 | 5.125 | 0.390 | 1.000 | 0.390 |",
                         "| diffusion[sampler=ddim,eta=1] | 4.500 | 4.500 | 0.530 | 1.000 | 0.530 |"]
    assert (tmp_path / "out" / "diversity_fidelity.png").stat().st_size > 10_000
    # Several evaluations: each method labelled with its evaluation folder.
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "metrics.json").write_text(json.dumps({"mean": {"ratio_to_oracle": _ratios(7.7, 0.0)}}))
    assert diversity_fidelity.main(["--from_metrics", str(tmp_path / "eval" / "metrics.json"),
                                    str(tmp_path / "other" / "metrics.json"), "--out", str(tmp_path / "both")]) == 0
    points = json.loads((tmp_path / "both" / "diversity_fidelity.json").read_text())
    assert sorted(points) == ["diffusion @ eval", "diffusion[sampler=ddim,eta=1] @ eval", "mean @ other"]


def test_refusals_name_the_problem_and_write_nothing(tmp_path, capsys):
    assert diversity_fidelity.main(["--out", str(tmp_path / "out")]) == 2
    assert "--from_metrics" in capsys.readouterr().err and not (tmp_path / "out").exists()
    (tmp_path / "metrics.json").write_text(json.dumps({"diffusion": {"fd_exp": 1.0}}))
    assert diversity_fidelity.main(["--from_metrics", str(tmp_path / "metrics.json"), "--out", str(tmp_path / "o")]) == 2
    assert "no method has ratio_to_oracle" in capsys.readouterr().err and not (tmp_path / "o").exists()
