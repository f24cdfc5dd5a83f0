"""The OpenMetrics parser: exact on real exporter text, strict on malformed input."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collectors.metrics import grid_stage
from collectors.metrics.openmetrics import _parse_labels_escaped, parse_labels, parse_lines
from collectors.metrics.series import SeriesContext, wants_family
from core.errors import InputError
from tests.builders import describe_series
from tests.conftest import FIXTURES


def _parse(text: str, **kw):  # type: ignore[no-untyped-def]
    return parse_lines(text.splitlines(keepends=True), "t.om", lambda name: True, **kw)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('a="1",b="two words"', {"a": "1", "b": "two words"}),
        (r'msg="say \"hi\"",path="C:\\x",nl="a\nb"', {"msg": 'say "hi"', "path": "C:\\x", "nl": "a\nb"}),
        ('err_msg="GPU stopped processing",x="}"', {"err_msg": "GPU stopped processing", "x": "}"}),
        ("", {}),
    ],
    ids=["plain values", "escaped quote backslash and newline", "spaces and braces inside values", "empty set"],
)
def test_label_sets_are_parsed_with_openmetrics_escapes(text: str, expected: dict[str, str]) -> None:
    assert parse_labels(text, "t.om", 1) == expected


_LABEL_TEXT = st.text(alphabet='ab_9=",\\ n-x', max_size=24) | st.lists(
    st.tuples(st.sampled_from(["a", "_b", "c9", " d", "9e", "f-g"]), st.text(alphabet='xy ,="\\n}', max_size=5)),
    max_size=4,
).map(lambda pairs: ",".join(f'{k}="{v}"' for k, v in pairs) + ("," if len(pairs) == 2 else ""))


@given(_LABEL_TEXT)
@settings(max_examples=400, deadline=None)
def test_the_plain_label_fast_path_accepts_and_rejects_exactly_what_the_character_parser_does(text: str) -> None:
    def outcome(parse):  # type: ignore[no-untyped-def]
        try:
            return parse(text, "t.om", 1)
        except InputError as exc:
            return ("error", str(exc))

    assert outcome(parse_labels) == outcome(_parse_labels_escaped)


def test_seconds_and_milliseconds_timestamps_are_both_understood() -> None:
    out = _parse('m{a="1"} 1 1793577607\nm{a="1"} 2 1793577667.5\nm{a="1"} 3 1793577727000\n# EOF\n')
    assert list(out.ts_ms) == [1793577607000, 1793577667500, 1793577727000]
    assert list(out.value) == [1.0, 2.0, 3.0]


def test_dcgm_blank_sentinels_are_dropped_uncounted_and_nan_or_inf_counted_as_invalid() -> None:
    """The parser keeps every value; staging decides (collectors/stage.valid_values): a DCGM family's blank
    means "no data", anything else out of range is counted."""
    text = "9223372036854775794 140737488355328 NaN +Inf -1 5"
    values = np.array([float(x) for x in text.split()])
    out = _parse("".join(f"m {x} {1793577607 + i}\n" for i, x in enumerate(text.split())) + "# EOF\n")
    assert np.array_equal(np.array(out.value), values, equal_nan=True)
    counter, gauge = "DCGM_FI_DEV_ECC_SBE_VOL_TOTAL", "DCGM_FI_DEV_GPU_UTIL"
    for family in (counter, gauge):
        valid, invalid = grid_stage.valid_values(pa.array([family]), np.zeros(len(values), np.int32), values)
        assert valid.tolist() == [False, False, False, False, False, True]
        assert invalid == {family: 3}  # NaN, +Inf, -1
    valid, invalid = grid_stage.valid_values(pa.array(["vllm:request_success_total"]), np.zeros(6, np.int32), values)
    assert valid.tolist() == [False, True, False, False, False, True]  # a blank is a number outside DCGM
    assert invalid == {"vllm:request_success_total": 4}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('m{a="1" 5 1793577607\n# EOF\n', "t.om:1: unclosed '{'"),
        ('m{a="1} 5 1793577607\n# EOF\n', "t.om:1: unterminated label value"),
        ("m 5 soon\n# EOF\n", "t.om:1: timestamp 'soon' is not a number"),
        ("m 5\n# EOF\n", "t.om:1: sample has no timestamp"),
        ("m 5 1793577607\n", "t.om:1: ends without '# EOF'"),
        ("m 5 1793577607\n# EOF\nm 6 1793577608\n", "t.om:3: content after '# EOF'"),
    ],
    ids=["unclosed brace", "unterminated string", "bad timestamp", "missing timestamp", "no EOF", "data after EOF"],
)
def test_malformed_input_raises_with_file_and_line(text: str, message: str) -> None:
    with pytest.raises(InputError) as info:
        _parse(text)
    assert message in str(info.value)


def test_a_plain_dcgm_scrape_parses_with_a_given_timestamp() -> None:
    text = (FIXTURES / "dcgm-exporter_4.8.2_k8s_h100.prom").read_text()
    out = parse_lines(text.splitlines(), "dcgm.prom", wants_family, default_ts_ms=1, require_eof=False)
    series = out.table.pairs()
    names = {name for name, _ in series}
    assert names >= {"DCGM_FI_PROF_GR_ENGINE_ACTIVE", "DCGM_FI_DEV_GPU_UTIL", "DCGM_FI_DEV_POWER_USAGE"}
    temps = {
        labels["UUID"]: v
        for (name, labels), v in zip((series[i] for i in out.sid), out.value, strict=False)
        if name == "DCGM_FI_DEV_GPU_TEMP"
    }
    assert temps == {"GPU-1a2b3c4d-0000-1111-2222-333344445555": 58.0, "GPU-5e6f7a8b-9999-8888-7777-666655554444": 29.0}


def test_only_running_and_pending_phases_and_gpu_requests_are_kept_from_kube_state_metrics() -> None:
    text = (FIXTURES / "kube-state-metrics_v2.x_gpu_excerpt.prom").read_text()
    out = parse_lines(text.splitlines(), "ksm.prom", wants_family, default_ts_ms=1, require_eof=False)
    rows = describe_series(out.table.pairs(), SeriesContext("c1", "plain"))
    phases = {r["phase"] for r in rows if r["family"] == "kube_pod_status_phase"}
    resources = {r["resource"] for r in rows if r["family"] == "kube_pod_container_resource_requests"}
    assert {labels["phase"] for name, labels in out.table.pairs() if name == "kube_pod_status_phase"} > {
        "Running",
        "Pending",
    }
    assert phases == {"Running", "Pending"}  # Pending: who waits for GPUs (docs/queues.md)
    assert resources == {"nvidia_com_gpu", "nvidia_com_mig_3g_40gb", "nvidia_com_gpu_shared"}


def _samples(s):  # type: ignore[no-untyped-def]
    return (s.table.pairs(), list(s.sid), list(s.ts_ms), [repr(v) for v in s.value])  # repr: NaN equals NaN


def test_the_fast_path_returns_exactly_what_the_strict_parser_returns(sim_files, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from collectors.metrics import openmetrics_fast

    tricky = tmp_path / "tricky.om"
    tricky.write_text(
        '# HELP x with "quotes" and } braces\n'
        'DCGM_FI_DEV_GPU_TEMP{UUID="GPU-1",Hostname="n1",modelName="NVIDIA H100 80GB HBM3",msg="a \\"b\\" }"} 41 1793577607\n'
        'DCGM_FI_DEV_GPU_TEMP{UUID="GPU-1",Hostname="n1",modelName="NVIDIA H100 80GB HBM3",msg="a \\"b\\" }"} NaN 1793577907\n'
        'DCGM_FI_DEV_POWER_USAGE{UUID="GPU-1",Hostname="n1"} 9223372036854775794 1793577607\n'
        'DCGM_FI_DEV_POWER_USAGE{UUID="GPU-1",Hostname="n1"} +Inf 1793577907.5\n'
        "kube_node_info 1 1793577607000\n"
        "# EOF\n"
    )
    for path in [*sim_files, tricky]:
        fast = openmetrics_fast.parse_file(path, wants_family)
        assert fast is not None, path
        with open(path, encoding="utf-8") as fh:
            strict = parse_lines(fh, str(path), wants_family)
        assert _samples(fast) == _samples(strict), path.name


SLOW_PATH = {
    "a line without timestamp": 'x_total 1 2\nDCGM_FI_DEV_GPU_TEMP{a="1"} 3\n# EOF\n',
    "content after EOF": 'DCGM_FI_DEV_GPU_TEMP{a="1"} 3 4\n# EOF\nDCGM_FI_DEV_GPU_TEMP{a="1"} 3 5\n',
    "no EOF": 'DCGM_FI_DEV_GPU_TEMP{a="1"} 3 4\n',
    "a bad value": 'DCGM_FI_DEV_GPU_TEMP{a="1"} hot 4\n# EOF\n',
    "a malformed label set": "DCGM_FI_DEV_GPU_TEMP{a=1} 3 4\n# EOF\n",
}


@pytest.mark.parametrize("case", list(SLOW_PATH), ids=list(SLOW_PATH))
def test_anything_unexpected_leaves_the_file_to_the_strict_parser(case: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from collectors.metrics import openmetrics_fast

    path = tmp_path / "x.om"
    path.write_text(SLOW_PATH[case])
    assert openmetrics_fast.parse_file(path, wants_family) is None


@pytest.mark.parametrize("block_kb", [16, 64])
def test_the_fast_path_reads_block_by_block_and_still_returns_what_the_strict_parser_returns(
    block_kb: int,
    sim_files,
    monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
) -> None:
    """A file many blocks long: series first seen in a later block, a family across blocks, `# EOF` in the last."""
    import pyarrow.csv as pacsv

    from collectors.metrics import openmetrics_fast

    monkeypatch.setattr(openmetrics_fast, "_READ", pacsv.ReadOptions(column_names=["line"], block_size=block_kb << 10))
    for path in sim_files:
        assert path.stat().st_size > 2 * (block_kb << 10), path  # read in several blocks
        fast = openmetrics_fast.parse_file(path, wants_family)
        assert fast is not None, path
        with open(path, encoding="utf-8") as fh:
            strict = parse_lines(fh, str(path), wants_family)
        assert _samples(fast) == _samples(strict), path.name


def test_content_after_eof_in_an_earlier_block_leaves_the_file_to_the_strict_parser(
    tmp_path,
    monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
) -> None:
    import pyarrow.csv as pacsv

    from collectors.metrics import openmetrics_fast

    monkeypatch.setattr(openmetrics_fast, "_READ", pacsv.ReadOptions(column_names=["line"], block_size=4096))

    def line(t: int) -> str:
        return f'DCGM_FI_DEV_GPU_TEMP{{UUID="GPU-1",Hostname="n1"}} 41 {t}\n'

    path = tmp_path / "x.om"
    path.write_text("".join(line(1793577607 + i) for i in range(200)) + "# EOF\n" + line(1793577607) * 200)
    assert openmetrics_fast.parse_file(path, wants_family) is None
    path.write_text("".join(line(1793577607 + i) for i in range(400)) + "# EOF\n")
    assert len(openmetrics_fast.parse_file(path, wants_family).sid) == 400  # type: ignore[union-attr]
