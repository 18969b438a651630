"""The Labels task (io.kestra.plugin.core.execution.Labels) as Kestra's RuntimeLabelsTest
runs its test flows: `labels` is a dynamic Object there, so what a flow writes loads and
is judged when the task runs; a nested value becomes its JSON (Kestra PR #18064), an empty
label fails the task (PR #11273), a `system.` label is refused (Labels.java)."""

from __future__ import annotations

from daemon.sdk.state import State
from tests.harness import Harness, problems, task_states


def labels_of(ex_labels: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in ex_labels.items() if k != "system.correlationId"}


async def test_update_with_nested_value_in_list(h: Harness) -> None:
    """RuntimeLabelsTest.shouldUpdateWithNestedValueInList
    (valids/labels-update-nested-value-list.yml)."""
    ex = await h.run("""
        id: labels-update-nested-value-list
        namespace: io.kestra.tests

        tasks:
          - id: list_form_nested_value
            type: io.kestra.plugin.core.execution.Labels
            labels:
              - key: stage
                value:
                  name: done
        """)
    assert ex.state.current == State.SUCCESS, ex.error
    assert len(ex.task_runs) == 1
    assert ex.labels == {"system.correlationId": ex.id, "stage": '{"name":"done"}'}
    assert (await h.stored(ex))["labels"] == [
        {"key": "system.correlationId", "value": ex.id},
        {"key": "stage", "value": '{"name":"done"}'},
    ]


async def test_update_with_nested_value_in_map(h: Harness) -> None:
    """RuntimeLabelsTest.shouldUpdateWithNestedValueInMap
    (valids/labels-update-nested-value-map.yml)."""
    ex = await h.run("""
        id: labels-update-nested-value-map
        namespace: io.kestra.tests

        tasks:
          - id: list_form_nested_value
            type: io.kestra.plugin.core.execution.Labels
            labels:
              stage:
                name: done
        """)
    assert ex.state.current == State.SUCCESS, ex.error
    assert len(ex.task_runs) == 1
    assert ex.labels == {"system.correlationId": ex.id, "stage": '{"name":"done"}'}


async def test_a_nested_value_is_rendered_before_it_becomes_json(h: Harness) -> None:
    """Labels.renderValue renders the nested map, then writes it as JSON; a list too."""
    ex = await h.run("""
        id: f
        namespace: ns
        tasks:
          - id: labels
            type: io.kestra.plugin.core.execution.Labels
            labels:
              stage:
                name: "{{ flow.id }}"
                tries: 2
              tags: [a, "{{ 1 + 1 }}"]
        """)
    assert ex.state.current == State.SUCCESS, ex.error
    assert labels_of(ex.labels) == {"stage": '{"name":"f","tries":2}', "tags": '["a","2"]'}


async def test_update_ignores_empty(h: Harness) -> None:
    """RuntimeLabelsTest.updateIgnoresEmpty (valids/labels-update-task-empty.yml): the flow
    loads; its first Labels task fails when it runs, so the execution is FAILED after one
    task run and keeps only its correlation id."""
    ex = await h.run("""
        id: labels-update-task-empty
        namespace: io.kestra.tests

        tasks:
          - id: from-string
            type: io.kestra.plugin.core.execution.Labels
            labels: "{ \\"fromStringKey\\": \\"\\", \\"\\": \\"value2\\" }"
          - id: from-list
            type: io.kestra.plugin.core.execution.Labels
            labels:
              - key: "fromListKey"
                value: ""
              - key: ""
                value: "value2"
        """)
    assert ex.state.current == State.FAILED
    assert task_states(ex) == {"from-string": "FAILED"}
    assert [a.current for a in ex.task_runs[0].attempts] == [State.FAILED]
    assert ex.labels == {"system.correlationId": ex.id}
    assert "empty labels are not allowed: fromStringKey, " in (ex.error or ""), ex.error


async def test_an_empty_value_in_the_list_form_fails_the_task(h: Harness) -> None:
    ex = await h.run("""
        id: f
        namespace: ns
        tasks:
          - id: from-list
            type: io.kestra.plugin.core.execution.Labels
            labels:
              - key: kept
                value: "{{ '' }}"
        """)
    assert ex.state.current == State.FAILED
    assert "empty labels are not allowed: kept" in (ex.error or ""), ex.error


async def test_a_system_label_is_refused_when_the_task_runs(h: Harness) -> None:
    """Labels.java: "System labels can only be set by Kestra itself"."""
    ex = await h.run("""
        id: f
        namespace: ns
        tasks:
          - id: labels
            type: io.kestra.plugin.core.execution.Labels
            labels:
              system.readOnly: "true"
        """)
    assert ex.state.current == State.FAILED
    assert ex.error == (
        "task 'labels': System labels can only be set by Kestra itself, "
        "offending label: system.readOnly=true"
    )
    assert "system.readOnly" not in ex.labels


async def test_a_later_key_wins_in_the_list_form(h: Harness) -> None:
    """Labels.java merges a list's duplicate keys keeping the second (toMap's merger)."""
    ex = await h.run("""
        id: f
        namespace: ns
        tasks:
          - id: labels
            type: io.kestra.plugin.core.execution.Labels
            labels:
              - {key: env, value: dev}
              - {key: env, value: prod}
        """)
    assert labels_of(ex.labels) == {"env": "prod"}


async def test_an_expression_that_is_not_a_label_map_fails_the_task(h: Harness) -> None:
    """A string form must render a JSON map: text that is not fails the task when it runs."""
    ex = await h.run("""
        id: f
        namespace: ns
        tasks:
          - id: labels
            type: io.kestra.plugin.core.execution.Labels
            labels: "{{ 'not json' }}"
        """)
    assert ex.state.current == State.FAILED
    assert "invalid property after rendering: labels" in (ex.error or ""), ex.error


def test_a_label_list_item_that_is_not_a_mapping_is_refused_at_load() -> None:
    found = problems("""
        id: f
        namespace: ns
        tasks:
          - id: labels
            type: io.kestra.plugin.core.execution.Labels
            labels:
              - just-a-string
        """)
    assert len(found) == 1 and "tasks[0].labels" in found[0], found
    assert "each label in a list must be a mapping with 'key' and 'value'" in found[0], found


def test_labels_that_are_a_number_are_refused_at_load() -> None:
    found = problems("""
        id: f
        namespace: ns
        tasks:
          - id: labels
            type: io.kestra.plugin.core.execution.Labels
            labels: 5
        """)
    assert len(found) == 1 and "tasks[0].labels" in found[0], found
