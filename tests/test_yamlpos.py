"""Reading flow YAML: libyaml scans and parses, podium's composer bounds it and keeps the
positions; what a flow means and where an error points are the same as PyYAML's own reading.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.sdk import yamlpos

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "flows").glob("*.yaml"))


def test_libyaml_is_what_reads_flows() -> None:
    assert yamlpos._CParser is not None, (
        "PyYAML was built without libyaml: reinstall it from its wheel (pip install "
        "--force-reinstall pyyaml) or install libyaml-dev before building it"
    )


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_libyaml_and_python_read_an_example_flow_alike(path: Path) -> None:
    """Values and every recorded position, for each flow shipped in flows/."""
    text = path.read_text(encoding="utf-8")
    fast_value, fast_positions = yamlpos._parse(yamlpos._CLoader, text)
    slow_value, slow_positions = yamlpos._parse(yamlpos._Loader, text)
    assert fast_value == slow_value
    assert fast_positions._marks == slow_positions._marks


def test_yaml_1_2_core_scalars_through_libyaml() -> None:
    """Kestra reads flows as YAML 1.2 (Jackson): `off`/`yes` are text, 14:19 is text,
    0o17 and 0x1F are integers, a date stays as written."""
    value, positions = yamlpos.load(
        "a: off\nb: yes\nc: 14:19:00\nd: 0o17\ne: 0x1F\nf: 2024-01-31\ng: true\nh: 1.5e3\n"
        "i: .inf\nj: ~\n"
    )
    assert value == {
        "a": "off",
        "b": "yes",
        "c": "14:19:00",
        "d": 15,
        "e": 31,
        "f": "2024-01-31",
        "g": True,
        "h": 1500.0,
        "i": float("inf"),
        "j": None,
    }
    assert positions.of(("e",)) == (5, 4)


def test_a_syntax_error_keeps_podiums_plain_words() -> None:
    """libyaml words errors its own way; the text is read again in Python so that the
    message is the one podium documents."""
    with pytest.raises(yamlpos.YamlProblem) as caught:
        yamlpos.load("id: f\ntasks:\n\t- id: a\n")
    assert caught.value.message == "invalid YAML: a tab: YAML indents with spaces only"
    assert (caught.value.line, caught.value.column) == (3, 1)


def test_deep_nesting_is_an_error_at_its_place_with_libyaml() -> None:
    text = "a: " + "[" * 150 + "]" * 150 + "\n"
    with pytest.raises(yamlpos.YamlProblem) as caught:
        yamlpos.load(text)
    assert caught.value.message == "invalid YAML: nested more than 100 levels deep"
    assert (caught.value.line, caught.value.column) == (1, 103)  # the 101st level


def test_an_alias_bomb_is_refused_with_libyaml() -> None:
    lines = ['a0: &a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 7)]
    with pytest.raises(yamlpos.YamlProblem) as caught:
        yamlpos.load("\n".join(lines) + "\n")
    assert "aliases expand to more than 100000 values" in caught.value.message


def test_a_large_flow_keeps_the_position_of_its_last_task() -> None:
    """bench/flow_size.py's shape: thousands of tasks; the last one's place is exact."""
    tasks = "".join(
        f"  - id: t{i}\n    type: io.kestra.plugin.core.log.Log\n    message: m {i}\n"
        for i in range(3000)
    )
    value, positions = yamlpos.load("id: big\nnamespace: n\ntasks:\n" + tasks)
    assert len(value["tasks"]) == 3000
    assert value["tasks"][-1] == {
        "id": "t2999",
        "type": "io.kestra.plugin.core.log.Log",
        "message": "m 2999",
    }
    assert positions.of(("tasks", 2999, "message")) == (3 + 3 * 2999 + 3, 14)
