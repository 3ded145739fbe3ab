"""The pure parts of bench/serverbench/: wrk/ab parsing, the median merge, the SVG writer."""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import xml.etree.ElementTree as ET
from types import ModuleType

import pytest

PACKAGE = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
    "bench",
    "serverbench",
)


def _load_package() -> None:
    """Import bench/serverbench as ``serverbench``, the name bench/bench.py gives it."""
    if "serverbench" in sys.modules:
        return
    spec = importlib.util.spec_from_file_location(
        "serverbench",
        os.path.join(PACKAGE, "__init__.py"),
        submodule_search_locations=[PACKAGE],
    )
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # the submodules' relative imports look it up
    spec.loader.exec_module(mod)


def _module(name: str) -> ModuleType:
    _load_package()
    return importlib.import_module(f"serverbench.{name}")


cli = _module("cli")
loadgen = _module("loadgen")
report = _module("report")
results = _module("results")
scenarios = _module("scenarios")
servers = _module("servers")

WRK_OK = """\
Running 1s test @ http://127.0.0.1:37673/
  1 threads and 10 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   600.50us  759.24us   9.22ms   91.60%
    Req/Sec     8.94k     2.16k   12.02k    80.00%
  Latency Distribution
     50%  387.00us
     75%  671.00us
     90%    1.20ms
     99%    3.82ms
  8908 requests in 1.00s, 1.31MB read
Requests/sec:   8903.54
Transfer/sec:      1.31MB
"""

WRK_ERRORS = """\
Running 2s test @ http://127.0.0.1:40001/
  1 threads and 100 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.02s   412.33ms   1.99s    61.00%
    Req/Sec   120.50     40.10   200.00     70.00%
  Latency Distribution
     50%    1.01s
     75%    1.40s
     90%    1.80s
     99%    1.98s
  241 requests in 2.01s, 35.00KB read
  Socket errors: connect 0, read 12, write 1, timeout 3
  Non-2xx or 3xx responses: 5
Requests/sec:    119.90
Transfer/sec:     17.41KB
"""

AB_OK = """\
This is ApacheBench, Version 2.3 <$Revision$>
Benchmarking 127.0.0.1 (be patient).....done


Server Software:        gunicorn
Server Hostname:        127.0.0.1
Server Port:            34785

Document Path:          /
Document Length:        11 bytes

Concurrency Level:      10
Time taken for tests:   1.000 seconds
Complete requests:      2685
Failed requests:        0
Keep-Alive requests:    0
Total transferred:      403039 bytes
HTML transferred:       29546 bytes
Requests per second:    2684.29 [#/sec] (mean)
Time per request:       3.725 [ms] (mean)
Time per request:       0.373 [ms] (mean, across all concurrent requests)
Transfer rate:          393.49 [Kbytes/sec] received

Connection Times (ms)
              min  mean[+/-sd] median   max
Connect:        0    0   0.2      0       6
Total:          1    4   1.6      3      28

Percentage of the requests served within a certain time (ms)
  50%      3
  66%      4
  90%      5
  99%     10
 100%     28 (longest request)
"""


def test_duration_units() -> None:
    assert loadgen.duration_ms("387.00us") == pytest.approx(0.387)
    assert loadgen.duration_ms("1.20ms") == pytest.approx(1.2)
    assert loadgen.duration_ms("1.99s") == pytest.approx(1990.0)
    assert loadgen.duration_ms("1.00m") == pytest.approx(60000.0)
    assert loadgen.duration_ms("n/a") is None


def test_parse_wrk_clean_run() -> None:
    r = loadgen.parse_wrk(WRK_OK)
    assert r["rps"] == pytest.approx(8903.54)
    assert r["requests"] == 8908
    assert r["p50_ms"] == pytest.approx(0.387)
    assert r["p90_ms"] == pytest.approx(1.2)
    assert r["p99_ms"] == pytest.approx(3.82)
    assert r["avg_ms"] == pytest.approx(0.6005)
    assert r["max_ms"] == pytest.approx(9.22)
    assert r["errors"] == 0


def test_parse_wrk_counts_socket_errors_and_non_2xx() -> None:
    r = loadgen.parse_wrk(WRK_ERRORS)
    assert (r["err_connect"], r["err_read"], r["err_write"], r["err_timeout"]) == (
        0,
        12,
        1,
        3,
    )
    assert r["non_2xx"] == 5
    assert r["errors"] == 21
    assert r["p99_ms"] == pytest.approx(1980.0)
    assert r["requests"] == 241


def test_parse_wrk_garbage_gives_nones() -> None:
    r = loadgen.parse_wrk("unable to connect to 127.0.0.1:1 Connection refused\n")
    assert r["rps"] is None and r["requests"] is None and r["p99_ms"] is None


def test_parse_ab() -> None:
    r = loadgen.parse_ab(AB_OK)
    assert r["rps"] == pytest.approx(2684.29)
    assert r["requests"] == 2685
    assert r["failed"] == 0 and r["non_2xx"] == 0 and r["errors"] == 0
    assert r["keepalive_requests"] == 0
    assert r["time_s"] == pytest.approx(1.0)
    assert r["avg_ms"] == pytest.approx(3.725)
    assert (r["p50_ms"], r["p90_ms"], r["p99_ms"], r["max_ms"]) == (3, 5, 10, 28)


def test_parse_ab_failures_and_gave_up() -> None:
    failing = AB_OK.replace("Failed requests:        0", "Failed requests:        7")
    failing = failing.replace(
        "Keep-Alive requests:    0",
        "Non-2xx responses:      4\nKeep-Alive requests:    0",
    )
    r = loadgen.parse_ab(failing)
    assert r["failed"] == 7 and r["non_2xx"] == 4 and r["errors"] == 11
    gave_up = loadgen.parse_ab("apr_socket_recv: Connection reset by peer (104)\n")
    assert gave_up["requests"] is None and gave_up["errors"] is None


def test_median_merge_ignores_none_and_unions_keys() -> None:
    rounds = [
        {"ka.rps": 100.0, "ka.p99_ms": 5.0},
        {"ka.rps": 300.0, "ka.p99_ms": None, "served.c10": 10.0},
        {"ka.rps": 200.0, "ka.p99_ms": 7.0},
    ]
    merged = results.median_merge(rounds)
    assert merged == {"ka.rps": 200.0, "ka.p99_ms": 6.0, "served.c10": 10.0}
    assert results.median_merge([{"x": None}]) == {"x": None}


def test_summarize_and_table_from_runs() -> None:
    def run(rps: float, served: int) -> dict[str, object]:
        return {
            "server": "s",
            "scenario": "hello",
            "workers": 2,
            "passes": {"ka": {"rps": rps, "errors": 0, "cpu_us_per_req": 50.0}},
            "served": {"c10": {"served": served, "connections": 10}},
            "mem": {"tree_pss_mb": 30.0, "procs": []},
        }

    runs = [run(10.0, 10), run(30.0, 2), run(20.0, 10), {**run(0, 0), "error": "boom"}]
    s = results.summarize(runs)
    assert s["rounds_ok"] == 3 and s["errors_seen"] == ["boom"]
    assert s["metrics"]["ka.rps"] == 20.0
    assert s["metrics"]["served.c10"] == 10.0
    row = report.table_row(s)
    assert row[:4] == ["s", "hello", "2", "20"]
    assert "10/10" in row[report.TABLE_HEADER.index("conns served c10 / c100")]
    assert row[-1] == "100%"  # (30 - 10) / 20


def test_merge_results_later_file_wins() -> None:
    a = {
        "runs": {"x/hello": [{"v": 1}], "y/hello": [{"v": 2}]},
        "meta": {"skipped": {"z": "gone"}},
    }
    b = {"runs": {"x/hello": [{"v": 3}], "z": [{"v": 4}]}}
    m = results.merge_results([a, b])
    assert m["runs"]["x/hello"] == [{"v": 3}]
    assert m["runs"]["y/hello"] == [{"v": 2}]
    assert m["skipped"] == {}  # z ran in b


def test_svg_is_well_formed_and_has_one_bar_per_value() -> None:
    svg = report.render_svg(
        't <&> "q"',
        [
            ("a & b\nserved 2/10", [1000.0, 50.0]),
            ("c", [None, 12.5]),
            ("d", [0.0, 0.0]),
        ],
        [report.Series("rps", "#123456"), report.Series("µs/req", "#654321", nd=1)],
    )
    root = ET.fromstring(svg)
    ns = "{http://www.w3.org/2000/svg}"
    assert root.tag == f"{ns}svg"
    bars = [r for r in root.iter(f"{ns}rect") if r.find(f"{ns}title") is not None]
    assert len(bars) == 5  # one value is None: drawn as "n/a", not a bar
    texts = [t.text for t in root.iter(f"{ns}text")]
    assert "n/a" in texts and "a & b" in texts and "served 2/10" in texts
    assert 't <&> "q"' in texts


def test_svg_with_no_groups_is_still_valid() -> None:
    ET.fromstring(report.render_svg("empty", [], [report.Series("rps", "#000")]))


def test_alt_python_rows_run_the_second_interpreter() -> None:
    srv = {s.name: s for s in servers.servers()}
    plain = cli.parse_args([])
    assert srv["ours-alt"].available(plain) == "no --alt-python given"
    assert srv["ours-preload-alt"].available(plain) == "no --alt-python given"
    args = cli.parse_args(["--alt-python", "/opt/py313/bin/python"])
    ab = next(sc for sc in scenarios.SCENARIOS if sc.name == "ab")
    ctx = servers.Ctx(port=8123, workers=10, scenario=ab, tmpdir="/tmp", args=args)
    alt = srv["ours-preload-alt"].argv(ctx)
    assert alt[:3] == ["/opt/py313/bin/python", "-m", "starman"]
    assert "--preload-app" in alt and "127.0.0.1:8123" in alt
    assert srv["ours-preload"].argv(ctx)[0] == args.ours_python
    assert srv["ours-alt"].argv(ctx)[0] == "/opt/py313/bin/python"
