"""``riskrail optimize`` end to end on PyPortfolioOpt's stock prices: JSON, exit codes, bounds, plot."""

from __future__ import annotations

import csv
import json

import pytest
from optdata import STOCKS

from engine.cli import main

PRICES = str(STOCKS)


def run_json(capsys, *argv):
    code = main(["optimize", "--prices", PRICES, "--format", "json", *argv])
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out)


def test_default_methods_give_weights_performance_and_consensus(capsys):
    doc = run_json(capsys)
    assert list(doc["methods"]) == ["max_sharpe", "min_volatility", "risk_parity", "hrp"]
    for block in [*doc["methods"].values(), doc["consensus"]]:
        assert set(block["weights"]) == set(doc["assets"]) and len(doc["assets"]) == 20
        assert sum(block["weights"].values()) == pytest.approx(1.0, abs=1e-9)
        assert min(block["weights"].values()) >= 0.0
        assert set(block["performance"]) == {"expected_return", "volatility", "sharpe"}
    assert doc["consensus"]["agreement"]["mean_pairwise_l1"] > 0
    assert doc["inputs"]["rows"] == 7126 and doc["inputs"]["bounds"] is None


def test_max_sharpe_reproduces_pypfopt_with_its_estimators(capsys):
    doc = run_json(capsys, "--method", "max_sharpe", "--expected-returns", "cagr", "--covariance", "sample",
                   "--risk-free", "0.02")
    assert "consensus" not in doc  # a single method
    perf = doc["methods"]["max_sharpe"]["performance"]
    # PyPortfolioOpt 1.6.0, mean_historical_return + sample_cov, max_sharpe(risk_free_rate=0.02):
    assert perf["sharpe"] == pytest.approx(1.2847714127003214, rel=1e-6)
    assert perf["volatility"] == pytest.approx(0.22165566922402963, rel=1e-6)
    assert doc["methods"]["max_sharpe"]["weights"]["MA"] == pytest.approx(0.35348735, abs=2e-6)


def test_bounds_csv_with_default_row_is_applied(tmp_path, capsys):
    f = tmp_path / "bounds.csv"
    f.write_text("asset,min,max\n*,0.01,0.10\nMA,0.05,0.08\n")
    doc = run_json(capsys, "--bounds", str(f), "--method", "max_sharpe", "--method", "min_volatility")
    for block in doc["methods"].values():
        w = block["weights"]
        assert all(0.01 - 1e-12 <= x <= 0.10 + 1e-12 for x in w.values())
        assert 0.05 - 1e-12 <= w["MA"] <= 0.08 + 1e-12
    assert doc["inputs"]["bounds"]["MA"] == [0.05, 0.08]


def test_bounds_yaml_is_applied(tmp_path, capsys):
    f = tmp_path / "bounds.yaml"
    f.write_text("AMZN: {min: 0.2, max: 0.3}\nGOOG: {max: 0.0}\n")
    doc = run_json(capsys, "--bounds", str(f), "--method", "risk_parity")
    w = doc["methods"]["risk_parity"]["weights"]
    assert 0.2 - 1e-12 <= w["AMZN"] <= 0.3 + 1e-12
    assert w["GOOG"] == 0.0


@pytest.mark.parametrize(
    ("content", "suffix", "message"),
    [
        ("asset,min,max\nNOPE,0,1\n", ".csv", "unknown asset(s) NOPE"),
        ("name,lo,hi\n", ".csv", "header asset,min,max"),
        ("asset,min,max\nMA,low,0.2\n", ".csv", "must be numbers"),
        ("asset,min,max\n*,0.1,1\n", ".csv", "minimum weights sum to 2 > 1"),
        ("MA: [0, 1]\n", ".yaml", "expected a mapping with min and max"),
    ],
)
def test_bad_bounds_exit_1_with_a_clear_message(tmp_path, capsys, content, suffix, message):
    f = tmp_path / f"bounds{suffix}"
    f.write_text(content)
    code = main(["optimize", "--prices", PRICES, "--bounds", str(f)])
    _, err = capsys.readouterr()
    assert code == 1
    assert message in err
    assert "Traceback" not in err


def test_unreadable_prices_exit_1(tmp_path, capsys):
    assert main(["optimize", "--prices", str(tmp_path / "missing.csv")]) == 1
    assert "cannot read prices" in capsys.readouterr().err
    bad = tmp_path / "bad.csv"
    bad.write_text("date,A,B\n2020-01-01,1,2\n2020-01-02,1.1,abc\n2020-01-03,1.2,2.2\n")
    assert main(["optimize", "--prices", str(bad)]) == 1
    assert "bad.csv:3: column 'B': 'abc' is not a number" in capsys.readouterr().err


def test_infeasible_request_exits_1_without_traceback(capsys):
    code = main(["optimize", "--prices", PRICES, "--method", "efficient_return", "--target-return", "5"])
    err = capsys.readouterr().err
    assert code == 1 and "unreachable" in err and "Traceback" not in err
    assert main(["optimize", "--prices", PRICES, "--method", "efficient_risk"]) == 1
    assert "target volatility" in capsys.readouterr().err


def test_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["optimize", "--prices", PRICES, "--method", "magic"])
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        main(["optimize"])
    assert exc.value.code == 2


def test_old_spellings_are_refused_naming_the_one_to_use(capsys):
    for argv, new in ((["--method", "max-sharpe"], "'max_sharpe'"), (["--method", "max-quadratic-utility"], "'max_quadratic_utility'"),
                      (["--covariance", "ledoit-wolf"], "'ledoit_wolf'"), (["--format", "table"], "'text'")):
        with pytest.raises(SystemExit) as exc:
            main(["optimize", "--prices", PRICES, *argv])
        err = capsys.readouterr().err
        assert exc.value.code == 2 and f"is now spelled {new}" in err, err


def test_table_output_lists_assets_methods_and_agreement(capsys):
    assert main(["optimize", "--prices", PRICES, "--method", "hrp", "--method", "min_volatility"]) == 0
    out = capsys.readouterr().out
    assert "hrp" in out and "min_volatility" in out and "consensus (mean)" in out and "SBUX" in out


def test_plot_is_a_valid_png(tmp_path, capsys):
    png = tmp_path / "frontier.png"
    run_json(capsys, "--method", "max_sharpe", "--method", "min_volatility", "--plot", str(png),
             "--bounds", str(_bounds(tmp_path)))
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 10_000  # something was drawn


def _bounds(tmp_path):
    f = tmp_path / "b.csv"
    f.write_text("asset,min,max\n*,0,0.2\n")
    return f


def _strategy_prices(tmp_path):
    """Give six stocks the desk's strategy names (rows where all six have a price)."""
    names = ["arbitrage", "trend_following", "market_making", "htf", "news_driven", "statistical_arbitrage"]
    with open(PRICES, newline="") as fh:
        rows = list(csv.reader(fh))
    cols = [rows[0].index(t) for t in ("AAPL", "WMT", "T", "XOM", "PFE", "SBUX")]
    out = tmp_path / "strategies.csv"
    with out.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["date", *names])
        for r in rows[1:]:
            if all(r[c] for c in cols):
                w.writerow([r[0], *(r[c] for c in cols)])
    return out


def _strategies_dir(tmp_path):
    folder = tmp_path / "strategies"
    folder.mkdir()
    bands = {"arbitrage": (0.25, 0.15, 0.35), "trend_following": (0.20, 0.10, 0.30),
             "market_making": (0.15, 0.05, 0.25), "htf": (0.15, 0.05, 0.25),
             "news_driven": (0.15, 0.05, 0.25), "statistical_arbitrage": (0.10, 0.05, 0.20)}
    for name, (t, lo, hi) in bands.items():
        (folder / f"{name}.yaml").write_text(
            f"name: {name}\nallocation: {{target: {t}, min: {lo}, max: {hi}, rebalance_threshold: 0.05}}\n"
            "defaults: {stop_loss: 0.01, take_profit: 0.02}\n"
        )
    return folder


def test_strategy_bands_drive_weights_and_recommendations(tmp_path, capsys):
    config = pytest.importorskip("engine.config", reason="the strategy loader engine.config is not available yet")
    if not hasattr(config, "load_strategies"):
        pytest.skip("engine.config.load_strategies is not available yet")
    folder = _strategies_dir(tmp_path)
    try:
        config.load_strategies(str(folder))
    except Exception as exc:  # the minimal files above may lack fields the loader will require
        pytest.skip(f"minimal strategy files are not accepted by the loader: {exc}")
    doc = run_json(capsys, "--prices", str(_strategy_prices(tmp_path)), "--strategies", str(folder))
    assert set(doc["assets"]) == {"arbitrage", "trend_following", "market_making", "htf", "news_driven",
                                  "statistical_arbitrage"}
    w = doc["consensus"]["weights"]
    assert 0.15 - 1e-9 <= w["arbitrage"] <= 0.35 + 1e-9
    assert 0.05 - 1e-9 <= w["statistical_arbitrage"] <= 0.20 + 1e-9
    recs = doc["recommendations"]
    by = {s["name"]: s for s in recs["strategies"]}
    assert by["arbitrage"]["current"] == 0.25
    assert by["arbitrage"]["target"] == pytest.approx(w["arbitrage"])
    assert all(s["action"] in ("increase", "decrease", "hold") for s in recs["strategies"])
    assert sum(recs["after"].values()) == pytest.approx(1.0)
    assert set(recs["impact"]) == {"before", "after", "risk_contributions_before", "risk_contributions_after"}


def test_invalid_strategy_files_exit_1(tmp_path, capsys):
    config = pytest.importorskip("engine.config", reason="the strategy loader engine.config is not available yet")
    if not hasattr(config, "load_strategies"):
        pytest.skip("engine.config.load_strategies is not available yet")
    folder = tmp_path / "strategies"
    folder.mkdir()
    (folder / "broken.yaml").write_text("name: broken\nallocation: {target: 2.0}\n")
    code = main(["optimize", "--prices", str(_strategy_prices(tmp_path)), "--strategies", str(folder)])
    assert code == 1
    assert "Traceback" not in capsys.readouterr().err


def test_gzipped_prices_are_read(capsys):
    gz = STOCKS.parent / "skfolio_sp500_dataset.csv.gz"
    assert main(["optimize", "--prices", str(gz), "--format", "json", "--method", "min_volatility"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["inputs"]["rows"] == 8313 and len(doc["assets"]) == 20
