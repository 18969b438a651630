"""Kestra's FlowGraph of a flow (daemon/api/flow_graph.py), `GET /executions/{id}/graph` and
`GET /flows/{namespace}/{id}/graph` (daemon/api/graph_service.py).

The flows and the figures (nodes, edges, clusters, the relation of chosen edges) are those
of Kestra's FlowGraphTest (core/src/test/java/io/kestra/core/models/hierarchies), its
flows from core/src/test/resources/flows/valids with podium's task types; the JSON is that
of Kestra's hierarchy models, as kestrapy's FlowGraph parses it.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from kestrapy.models.flow_graph import FlowGraph

from daemon.api.flow_graph import Walker
from daemon.api.flow_graph_model import for_execution, graph_json
from daemon.api.graph_service import WrittenTasks, declarations
from daemon.flows.definition import Flow
from daemon.flows.loader import load_flow
from tests.api_helpers import call, serving
from tests.harness import Harness

RETURN = "io.kestra.plugin.core.debug.Return"
LOG = "io.kestra.plugin.core.log.Log"


def ret(task_id: str) -> str:
    return f"{{id: {task_id}, type: {RETURN}, format: '{{{{ task.id }}}}'}}"


SIMPLE = "id: return\nnamespace: io.kestra.tests\ntasks:\n" + "".join(
    f"  - {ret(task)}\n" for task in ("date", "task-id", "task-type")
)

SEQUENTIAL = f"""
id: sequential
namespace: io.kestra.tests
tasks:
  - id: 1-seq
    type: io.kestra.plugin.core.flow.Sequential
    tasks:
      - {ret("1-1")}
      - {ret("1-2")}
      - id: 1-3_seq
        type: io.kestra.plugin.core.flow.Sequential
        tasks:
          - {ret("1-3-1")}
          - id: 1-3-2_seq
            type: io.kestra.plugin.core.flow.Sequential
            tasks:
              - {ret("1-3-2-1")}
              - {ret("1-3-2-2_end")}
          - {ret("1-3-3_end")}
      - {ret("1-4_end")}
  - {ret("2_end")}
"""

ERRORS = f"""
id: errors
namespace: io.kestra.tests
tasks:
  - id: failed
    type: io.kestra.plugin.core.execution.Fail
errors:
  - {{id: t2, type: {LOG}, message: failed}}
  - id: t3
    type: io.kestra.plugin.core.flow.Parallel
    tasks:
      - id: t3-t1
        type: io.kestra.plugin.core.flow.Parallel
        tasks:
          - id: t3-t1-t1
            type: io.kestra.plugin.core.flow.Parallel
            tasks:
              - id: t3-t1-t1-t1
                type: io.kestra.plugin.core.flow.Parallel
                tasks:
                  - {{id: t3-t1-t1-t1-last, type: {LOG}, message: last}}
"""

PARALLEL = (
    "id: parallel\nnamespace: io.kestra.tests\ntasks:\n  - id: parent\n"
    "    type: io.kestra.plugin.core.flow.Parallel\n    tasks:\n"
    + "".join(f"      - {ret(f't{i}')}\n" for i in range(1, 7))
    + f"  - {ret('last')}\n"
)

SWITCH = f"""
id: switch
namespace: io.kestra.tests
inputs:
  - id: string
    type: STRING
tasks:
  - id: parent-seq
    type: io.kestra.plugin.core.flow.Switch
    value: "{{{{ inputs.string }}}}"
    cases:
      FIRST:
        - {ret("t1")}
      SECOND:
        - {ret("t2")}
        - {ret("t2_sub")}
      THIRD:
        - id: t3
          type: io.kestra.plugin.core.flow.Sequential
          tasks:
            - {{id: failed, type: io.kestra.plugin.core.execution.Fail}}
          errors:
            - {ret("error-t1")}
    defaults:
      - {ret("default")}
triggers:
  - id: schedule
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "0 * * * *"
"""

DAG = f"""
id: dag
namespace: io.kestra.tests
tasks:
  - id: dag
    type: io.kestra.plugin.core.flow.Dag
    tasks:
      - task: {{id: task1, type: {LOG}, message: "1"}}
      - task: {{id: task2, type: {LOG}, message: "2"}}
        dependsOn: [task1]
      - task: {{id: task3, type: {LOG}, message: "3"}}
        dependsOn: [task2]
      - task: {{id: task4, type: {LOG}, message: "4"}}
        dependsOn: [task2]
      - task: {{id: task5, type: {LOG}, message: "5"}}
        dependsOn: [task4, task3]
      - task: {{id: task6, type: {LOG}, message: "6"}}
        dependsOn: [task2]
"""

FINALLY_HANDLERS = f"""
    errors:
      - {ret("e1")}
      - {ret("e2")}
    finally:
      - {ret("a1")}
      - {ret("a2")}
"""

IF = f"""
        type: io.kestra.plugin.core.flow.If
        condition: "{{{{ inputs.failed == false }}}}"
        then:
          - {ret("ok")}
        else:
          - {{id: ko, type: io.kestra.plugin.core.execution.Fail}}
"""

FINALLY_SEQUENTIAL_ERROR = (
    """
id: finally-sequential-error
namespace: io.kestra.tests
inputs:
  - id: failed
    type: BOOLEAN
    defaults: false
tasks:
  - id: seq
    type: io.kestra.plugin.core.flow.Sequential
    tasks:
      - id: if"""
    + IF
    + FINALLY_HANDLERS
)

FINALLY_DAG = (
    f"""
id: finally-dag
namespace: io.kestra.tests
inputs:
  - id: failed
    type: BOOLEAN
    defaults: false
tasks:
  - id: dag
    type: io.kestra.plugin.core.flow.Dag
    tasks:
      - task: {{id: t1, type: {LOG}, message: t1}}
      - task: {{id: t2, type: {LOG}, message: t2}}
        dependsOn: [t1]
      - dependsOn: [t2]
        task:
          id: t3"""
    + IF.replace("\n        ", "\n          ")
    + FINALLY_HANDLERS
)

AFTER_EXECUTION = f"""
id: after-execution
namespace: io.kestra.tests
tasks:
  - {{id: mytask, type: {LOG}, message: hello}}
afterExecution:
  - id: end
    type: io.kestra.plugin.core.output.OutputValues
    values:
      state: "{{{{ execution.state }}}}"
"""

FOREACH_NESTED = f"""
id: foreach-nested
namespace: io.kestra.tests
tasks:
  - id: each0
    type: io.kestra.plugin.core.flow.ForEach
    values: ["l1", "l2"]
    tasks:
      - id: each1
        type: io.kestra.plugin.core.flow.ForEach
        concurrencyLimit: 0
        values: ["d1", "d2", "d3"]
        tasks:
          - {ret("p1")}
          - {ret("p2")}
  - {ret("test")}
"""

FOREACH_NON_CONCURRENT = f"""
id: foreach-non-concurrent
namespace: io.kestra.tests
tasks:
  - id: for_each
    type: io.kestra.plugin.core.flow.ForEach
    values: ["value 1", "value 2", "value 3"]
    tasks:
      - {{id: log, type: {LOG}, message: "{{{{ taskrun.value }}}}"}}
      - {{id: shell, type: {LOG}, message: 2nd task}}
"""

TRIGGER_FLOW_LISTENER = f"""
id: trigger-flow-listener
namespace: io.kestra.tests
tasks:
  - {ret("only")}
triggers:
  - id: listen-flow
    type: io.kestra.plugin.core.trigger.Flow
    conditions:
      - type: io.kestra.plugin.core.condition.ExecutionFlow
        namespace: io.kestra.tests
        flowId: trigger-flow
"""

TASK_FLOW = """
id: task-flow
namespace: io.kestra.tests
inputs:
  - id: string
    type: STRING
tasks:
  - id: launch
    type: io.kestra.plugin.core.flow.Subflow
    namespace: io.kestra.tests
    flowId: switch
    inputs:
      string: "{{ inputs.string }}"
triggers:
  - id: schedule
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "0 * * * *"
"""


def static_graph(source: str) -> dict[str, Any]:
    flow = load_flow(source, "flow.yaml")
    graph = Walker().flow(flow, [{"id": t.id} for t in flow.triggers], {})
    return graph_json(graph, for_execution(lambda spec: {"id": spec.id}))


def counts(graph: dict[str, Any]) -> tuple[int, int, int]:
    return len(graph["nodes"]), len(graph["edges"]), len(graph["clusters"])


def edge(graph: dict[str, Any], source: str, target: str = ".*") -> dict[str, Any]:
    """Kestra's FlowGraphTest.edge: the first edge whose ends match (whole uids)."""
    return next(
        e
        for e in graph["edges"]
        if re.fullmatch(source, e["source"]) and re.fullmatch(target, e["target"])
    )


def cluster(graph: dict[str, Any], uid: str) -> dict[str, Any]:
    return next(c for c in graph["clusters"] if re.fullmatch(uid, c["cluster"]["uid"]))


def relation(graph: dict[str, Any], source: str, target: str = ".*") -> str | None:
    return edge(graph, source, target)["relation"].get("relationType")


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        pytest.param(SIMPLE, (5, 4, 0), id="simple"),
        pytest.param(SEQUENTIAL, (19, 18, 3), id="sequentialNested"),
        pytest.param(ERRORS, (17, 17, 4), id="errors"),
        pytest.param(PARALLEL, (12, 16, 1), id="parallel"),
        pytest.param(SWITCH, (17, 20, 3), id="choice"),
        pytest.param(FOREACH_NESTED, (11, 10, 2), id="forEach"),
        pytest.param(FINALLY_SEQUENTIAL_ERROR, (15, 16, 2), id="finallySequentialError"),
        pytest.param(FINALLY_DAG, (17, 18, 2), id="finallyDag"),
        pytest.param(AFTER_EXECUTION, (5, 4, 0), id="afterExecutionSequential"),
        pytest.param(TRIGGER_FLOW_LISTENER, (6, 5, 1), id="trigger"),
        pytest.param(TASK_FLOW, (6, 5, 1), id="subflow"),
    ],
)
def test_a_flow_has_the_nodes_edges_and_clusters_of_kestras_graph(
    source: str, expected: tuple[int, int, int]
) -> None:
    """FlowGraphTest: the same numbers of nodes, edges and clusters for the same flows."""
    assert counts(static_graph(source)) == expected


def test_nested_sequentials_link_each_task_to_the_next() -> None:
    """FlowGraphTest.sequentialNested."""
    graph = static_graph(SEQUENTIAL)
    assert re.fullmatch(".*1-3-2-2_end", edge(graph, ".*1-3-2-1")["target"])
    assert relation(graph, ".*1-3-2-1") == "SEQUENTIAL"
    assert re.fullmatch(".*1-1", edge(graph, ".*1-seq")["target"])
    assert re.fullmatch(".*1-3-2-1", edge(graph, ".*1-3-2_seq")["target"])
    assert [c["parents"] for c in graph["clusters"]] == [
        [],
        ["cluster_root.1-seq"],
        ["cluster_root.1-seq", "cluster_root.1-seq.1-3_seq"],
    ]


def test_errors_start_from_the_root_as_error_relations() -> None:
    """FlowGraphTest.errors: the flow's errors leave its root as ERROR edges; the first
    task's edge has no relation; error tasks carry branchType ERROR."""
    graph = static_graph(ERRORS)
    start = next(n["uid"] for n in graph["nodes"] if n["type"].endswith("GraphClusterRoot"))
    assert relation(graph, re.escape(start), ".*t2") == "ERROR"
    assert relation(graph, re.escape(start), ".*failed") is None
    t2 = next(n for n in graph["nodes"] if n["uid"] == "root.t2")
    assert (t2["branchType"], t2["relationType"]) == ("ERROR", "ERROR")


def test_parallel_tasks_each_lead_to_the_end_of_their_cluster() -> None:
    """FlowGraphTest.parallel."""
    graph = static_graph(PARALLEL)
    assert relation(graph, ".*parent", ".*t2") == "PARALLEL"
    assert relation(graph, ".*parent", ".*t6") == "PARALLEL"
    end = cluster(graph, r"cluster_root\.parent")["end"]
    assert re.fullmatch(r".*parent\.t1", edge(graph, ".*t1", re.escape(end))["source"])
    assert re.fullmatch(r".*parent\.t4", edge(graph, ".*t4", re.escape(end))["source"])


def test_a_switch_is_a_choice_between_its_cases_and_defaults() -> None:
    """FlowGraphTest.choice: each case leaves the Switch as a CHOICE edge carrying its key;
    the tasks of a case follow one another; the flow's trigger is a cluster of its own."""
    graph = static_graph(SWITCH)
    assert relation(graph, ".*parent-seq", r".*parent-seq\.[^.]*") == "CHOICE"
    assert edge(graph, ".*parent-seq", r".*parent-seq\.t3\.[^.]*")["relation"]["value"] == "THIRD"
    assert edge(graph, ".*parent-seq", r".*parent-seq\.t1")["relation"] == {
        "relationType": "CHOICE",
        "value": "FIRST",
    }
    assert edge(graph, ".*parent-seq", r".*parent-seq\.default")["relation"]["value"] == "defaults"
    assert relation(graph, ".*t2", ".*t2_sub") == "SEQUENTIAL"
    trigger = next(n for n in graph["nodes"] if n["type"].endswith("GraphTrigger"))
    assert trigger["uid"] == "root.Triggers.schedule"
    assert trigger["triggerDeclaration"] == {"id": "schedule"}


def test_a_dag_links_each_task_from_those_it_depends_on() -> None:
    """FlowGraphTest.dag (Kestra's GraphUtils.fillGraphDag): PARALLEL edges from what a
    task depends on, the tasks none depends on leading to the cluster's end."""
    graph = static_graph(DAG)
    # root, end, the Dag's root, end and node, its 6 tasks; 12 edges by fillGraphDag (the
    # stored dag.yaml of Kestra has 5 tasks: its test's figures are for a later version)
    assert counts(graph) == (11, 12, 1)
    assert relation(graph, "root.root.*", ".*dag.root.*") is None
    assert relation(graph, "root.dag", ".*dag.task1.*") == "PARALLEL"
    assert relation(graph, ".*dag.task2.*", ".*dag.task4.*") == "PARALLEL"
    assert relation(graph, ".*dag.task2.*", ".*dag.task6.*") == "PARALLEL"
    assert relation(graph, ".*dag.task6", ".*dag.end.*") is None
    assert relation(graph, ".*dag.task5", ".*dag.end.*") is None
    assert {e["source"] for e in graph["edges"] if re.fullmatch(".*task5", e["target"])} == {
        "root.dag.task3",
        "root.dag.task4",
    }


def test_finally_and_errors_of_a_flowable_follow_kestra() -> None:
    """FlowGraphTest.finallySequentialError and finallyDag."""
    graph = static_graph(FINALLY_SEQUENTIAL_ERROR)
    assert relation(graph, ".*seq.e1", ".*seq.e2") == "ERROR"
    assert relation(graph, ".*seq.e2", ".*seq.finally.*") is None
    assert relation(graph, ".*seq.finally.*", ".*seq.a1") == "SEQUENTIAL"
    assert relation(graph, ".*seq.a1", ".*seq.a2") == "FINALLY"
    assert relation(graph, ".*seq.a2", ".*seq.end.*") is None
    dag = static_graph(FINALLY_DAG)
    assert relation(dag, ".*dag.e1", ".*dag.e2") == "ERROR"
    assert relation(dag, ".*dag.e2", ".*dag.finally.*") is None
    assert relation(dag, ".*dag.t3.end..*", ".*dag.finally.*") is None
    assert relation(dag, ".*dag.finally.*", ".*dag.a1") == "DYNAMIC"
    assert relation(dag, ".*dag.a1", ".*dag.a2") == "DYNAMIC"
    assert relation(dag, ".*dag.a2", ".*dag.end.*") is None


def test_after_execution_tasks_come_last() -> None:
    """FlowGraphTest.afterExecutionSequential."""
    graph = static_graph(AFTER_EXECUTION)
    edge(graph, "root.root.*", "root.mytask.*")
    edge(graph, "root.mytask.*", "root.after-execution.*")
    edge(graph, "root.after-execution.*", "root.end.*")


def test_a_foreach_is_dynamic() -> None:
    """FlowGraphTest.forEach."""
    graph = static_graph(FOREACH_NESTED)
    start = cluster(graph, ".*each1")["start"]
    assert relation(graph, ".*each0", re.escape(start)) == "DYNAMIC"
    assert relation(graph, ".*each1", ".*p1") == "DYNAMIC"


# -- through the API, with an execution -------------------------------------------------------


@pytest.fixture
async def api(h: Harness) -> AsyncIterator[str]:
    async with serving(h) as url:
        yield url


async def execution_graph(h: Harness, api: str, source: str, **params: Any) -> dict[str, Any]:
    done = await h.run(source, params.pop("inputs", {}))
    await h.store.flush()
    url = f"{api}/api/v1/main/executions/{done.id}/graph"
    status, doc, _ = await call("GET", url, params=params.get("subflows", []))
    assert status == 200, doc
    return dict(doc)


async def test_the_graph_of_an_execution_carries_its_task_runs(h: Harness, api: str) -> None:
    """FlowGraphTest.parallelWithExecution, and forExecution: a node's task is reduced to
    Kestra's TaskForExecution."""
    graph = await execution_graph(h, api, PARALLEL)
    assert counts(graph) == (12, 16, 1)
    t1 = next(n for n in graph["nodes"] if n.get("task", {}).get("id") == "t1")
    assert t1["taskRun"]["taskId"] == "t1" and t1["taskRun"]["state"]["current"] == "SUCCESS"
    assert t1["task"] == {"id": "t1", "type": RETURN}
    parent = cluster(graph, r"cluster_root\.parent")["cluster"]
    assert parent["taskNode"]["task"]["tasks"] == [
        {"id": f"t{i}", "type": RETURN} for i in range(1, 7)
    ]


async def test_each_iteration_of_a_foreach_is_a_node_of_its_own(h: Harness, api: str) -> None:
    """FlowGraphTest.forEachWithExecution: one node per task run, its uid ending with the
    run's value, the edge between two runs carrying the second's value."""
    graph = await execution_graph(h, api, FOREACH_NON_CONCURRENT)
    assert counts(graph) == (11, 12, 1)
    assert edge(graph, ".*log_value 1", ".*log_value 2")["relation"]["value"] == "value 2"
    assert edge(graph, ".*log_value 2", ".*log_value 3")["relation"]["value"] == "value 3"
    log = next(n for n in graph["nodes"] if n["uid"].endswith("log_value 2"))
    assert log["values"] == ["value 2"] and log["taskRun"]["value"] == "value 2"


async def test_a_subflow_is_expanded_into_its_graph(h: Harness, api: str) -> None:
    """FlowGraphTest.subflow: `subflows=root.launch` puts the subflow's graph (its trigger
    too) in place of the Subflow task's node."""
    await h.flow(SWITCH)
    graph = await execution_graph(h, api, TASK_FLOW, inputs={"string": "FIRST"})
    assert counts(graph) == (6, 5, 1)
    expanded = await execution_graph(
        h, api, TASK_FLOW, inputs={"string": "SECOND"}, subflows=[("subflows", "root.launch")]
    )
    assert counts(expanded) == (23, 26, 5)
    launch = cluster(expanded, r"cluster_root\.launch")["cluster"]
    assert launch["type"] == "io.kestra.core.models.hierarchies.SubflowGraphCluster"
    assert launch["taskNode"]["type"] == "io.kestra.core.models.hierarchies.SubflowGraphTask"
    assert launch["taskNode"]["task"]["subflowId"] == {
        "namespace": "io.kestra.tests",
        "flowId": "switch",
    }
    uids = {n["uid"]: n for n in expanded["nodes"]}
    assert uids["root.launch.parent-seq"]["relationType"] == "CHOICE"
    assert "root.Triggers.schedule" in uids and "root.launch.Triggers.schedule" in uids


async def test_a_subflow_whose_ids_are_expressions_expands_to_the_flow_it_ran(
    h: Harness, api: str
) -> None:
    """FlowGraphTest.dynamicIdSubflow: on an execution, the subflow is the one its task run
    started; without a run to tell, Kestra's 422."""
    await h.flow(SWITCH)
    dynamic = TASK_FLOW.replace("flowId: switch", 'flowId: "{{ inputs.string }}"').replace(
        '      string: "{{ inputs.string }}"', '      string: "FIRST"'
    )
    graph = await execution_graph(
        h, api, dynamic, inputs={"string": "switch"}, subflows=[("subflows", "root.launch")]
    )
    assert counts(graph) == (23, 26, 5)


async def test_graph_of_unknown_things_is_404_or_422(h: Harness, api: str) -> None:
    """Kestra returns null for an unknown execution (404); an unknown subflow is its
    NoSuchElementException (404); a subflow whose ids did not render yet, 422."""
    missing = await call("GET", f"{api}/api/v1/executions/nope/graph")
    assert missing[0] == 404
    lost = await h.run(TASK_FLOW.replace("id: task-flow", "id: lost"), {"string": "x"})
    await h.store.flush()
    url = f"{api}/api/v1/executions/{lost.id}/graph"
    status, doc, _ = await call("GET", url, params={"subflows": "root.launch"})
    assert status == 404 and "Unable to find subflow io.kestra.tests.switch" in doc["message"]
    status, doc, _ = await call("GET", url, params={"subflows": "root.unknown"})
    assert status == 200 and counts(doc) == (6, 5, 1)  # nothing of that uid to expand
    dynamic = TASK_FLOW.replace("flowId: switch", 'flowId: "{{ inputs.string }}"')
    unreached = dynamic.replace("id: task-flow", "id: unreached").replace(
        "tasks:\n", "tasks:\n  - id: stop\n    type: io.kestra.plugin.core.execution.Fail\n", 1
    )
    failed = await h.run(unreached, {"string": "switch"})
    await h.store.flush()
    url = f"{api}/api/v1/executions/{failed.id}/graph"
    status, doc, _ = await call("GET", url, params={"subflows": "root.launch"})
    assert status == 422 and "dynamic values" in doc["message"], doc


def test_other_flowables_draw_as_their_kestra_tasks_tree() -> None:
    """The tasksTree of Kestra's ForEachItem (its `_split`, `_items`, `_merge` tasks in
    sequence), Approval (a CHOICE of wait, approve and deny), EachParallel (DYNAMIC, side
    by side) and Loop (DYNAMIC, in sequence)."""
    graph = static_graph(f"""
id: others
namespace: ns
tasks:
  - id: batches
    type: io.kestra.plugin.core.flow.ForEachItem
    items: "kestra:///ns/items.txt"
    namespace: ns
    flowId: child
  - id: review
    type: io.kestra.plugin.core.flow.Approval
    onWait:
      - {ret("asked")}
    onApprove:
      - {ret("yes")}
    onDeny:
      - {ret("no")}
  - id: each
    type: io.kestra.plugin.core.flow.EachParallel
    value: ["a", "b"]
    tasks:
      - {ret("e1")}
      - {ret("e2")}
  - id: loop
    type: io.kestra.plugin.core.flow.Loop
    values: [1, 2]
    tasks:
      - {ret("l1")}
      - {ret("l2")}
""")
    steps = [
        e["target"]
        for e in graph["edges"]
        if e["source"].startswith("root.batches") and e["target"].startswith("root.batches.")
    ]
    assert [t for t in steps if not t.startswith("root.batches.end-")] == [
        "root.batches.batches_split",
        "root.batches.batches_items",
        "root.batches.batches_merge",
    ]
    items = next(n for n in graph["nodes"] if n["uid"] == "root.batches.batches_items")
    assert items["task"]["type"] == "io.kestra.plugin.core.flow.ForEachItem$ForEachItemExecutable"
    assert {
        (e["target"].rsplit(".", 1)[-1], e["relation"]["value"])
        for e in graph["edges"]
        if e["source"] == "root.review"
    } == {("asked", "wait"), ("yes", "approve"), ("no", "deny")}
    assert relation(graph, "root.review", ".*yes") == "CHOICE"
    assert cluster(graph, r"cluster_root\.each")["cluster"]["relationType"] == "DYNAMIC"
    assert relation(graph, "root.each", ".*e2") == "DYNAMIC"  # beside e1, not after it
    assert relation(graph, ".*loop.l1", ".*loop.l2") == "DYNAMIC"


# -- a flow's graph, its tasks whole (GET /flows/{namespace}/{id}/graph) ----------------------
# Kestra's GraphUtils (core/src/main/java/io/kestra/core/utils/GraphUtils.java,
# hierarchies/GraphCluster.java) as FlowControllerTest.graph checks it. Markers carry
# random ids, as Kestra's: `named` calls `root-<id>` `_root` (and so on) to compare edges.

H = "io.kestra.core.models.hierarchies."
_MARKER = re.compile(r"(root|end|finally|after-execution)-[0-9A-Za-z]{22}")


def log(task_id: str, indent: int = 2) -> str:
    pad = " " * indent
    return f"{pad}- id: {task_id}\n{pad}  type: {LOG}\n{pad}  message: {task_id}\n"


def flow(body: str, flow_id: str = "g", namespace: str = "company.team") -> Flow:
    return load_flow(f"id: {flow_id}\nnamespace: {namespace}\n{body}")


def named(value: Any) -> Any:
    """The graph's JSON with each marker's random id replaced by its kind: `root._root`."""
    if isinstance(value, str):
        return _MARKER.sub(lambda m: "_" + m.group(1), value)
    if isinstance(value, list):
        return [named(v) for v in value]
    if isinstance(value, dict):
        return {k: named(v) for k, v in value.items()}
    return value


def graph(source: Flow) -> dict[str, Any]:
    """The flow's graph, each task as written (WrittenTasks), as kestrapy's FlowGraph reads it."""
    written = WrittenTasks()
    written.add(source)
    found = graph_json(Walker().flow(source, declarations(source), {}), written)
    FlowGraph.model_validate(found)
    return dict(named(found))


def edges(found: dict[str, Any]) -> set[tuple[str, str, str | None, str | None]]:
    return {
        (e["source"], e["target"], e["relation"].get("relationType"), e["relation"].get("value"))
        for e in found["edges"]
    }


def node(found: dict[str, Any], uid: str) -> dict[str, Any]:
    return next(n for n in found["nodes"] if n["uid"] == uid)


def test_tasks_in_turn_between_the_start_and_the_end() -> None:
    """GraphUtils.sequential on the flow: the first task from the start (no relation), the
    next ones SEQUENTIAL, the last to the end (no finally, no afterExecution: removed)."""
    found = graph(flow("tasks:\n" + log("a") + log("b")))
    assert edges(found) == {
        ("root._root", "root.a", None, None),
        ("root.a", "root.b", "SEQUENTIAL", None),
        ("root.b", "root._end", None, None),
    }
    a = node(found, "root.a")
    assert a["type"] == H + "GraphTask"
    assert a["task"] == {"id": "a", "type": LOG, "message": "a"}
    assert a["relationType"] == "SEQUENTIAL"
    assert {n["type"] for n in found["nodes"]} == {
        H + "GraphTask",
        H + "GraphClusterRoot",
        H + "GraphClusterEnd",
    }
    assert found["clusters"] == []


def test_triggers_are_a_cluster_that_leads_to_the_start() -> None:
    """GraphUtils.triggers: a `Triggers` cluster, each trigger from its start to its end,
    the cluster's end to the flow's start."""
    found = graph(
        flow(
            "tasks:\n" + log("a") + "triggers:\n  - id: nightly\n"
            "    type: io.kestra.plugin.core.trigger.Schedule\n    cron: '0 2 * * *'\n"
        )
    )
    assert {
        ("root.Triggers._root", "root.Triggers.nightly", None, None),
        ("root.Triggers.nightly", "root.Triggers._end", None, None),
        ("root.Triggers._end", "root._root", None, None),
    } <= edges(found)
    trigger = node(found, "root.Triggers.nightly")
    assert trigger["type"] == H + "GraphTrigger"
    assert trigger["triggerDeclaration"]["cron"] == "0 2 * * *"
    [cluster] = found["clusters"]
    assert (cluster["cluster"]["uid"], cluster["cluster"]["type"]) == (
        "cluster_root.Triggers",
        H + "GraphCluster",
    )
    assert (cluster["start"], cluster["end"], cluster["parents"]) == (
        "root.Triggers._root",
        "root.Triggers._end",
        [],
    )


def test_a_parallel_task_is_a_cluster_of_side_by_side_children() -> None:
    """Parallel.tasksTree: a PARALLEL cluster, its task node after its start, every child
    from the task node and to the cluster's end."""
    body = (
        "tasks:\n  - id: par\n    type: io.kestra.plugin.core.flow.Parallel\n    tasks:\n"
        + log("p1", 6)
        + log("p2", 6)
        + log("after")
    )
    found = graph(flow(body))
    assert {
        ("root._root", "root.par._root", None, None),
        ("root.par._root", "root.par", None, None),
        ("root.par", "root.par.p1", "PARALLEL", None),
        ("root.par", "root.par.p2", "PARALLEL", None),
        ("root.par.p1", "root.par._end", None, None),
        ("root.par.p2", "root.par._end", None, None),
        ("root.par._end", "root.after", "SEQUENTIAL", None),
    } <= edges(found)
    [cluster] = found["clusters"]
    assert cluster["cluster"]["uid"] == "cluster_root.par"
    assert cluster["cluster"]["relationType"] == "PARALLEL"
    assert cluster["cluster"]["taskNode"]["uid"] == "root.par"
    assert set(cluster["nodes"]) == {
        "root.par._root",
        "root.par._end",
        "root.par",
        "root.par.p1",
        "root.par.p2",
    }


def test_if_and_switch_branches_are_choices_named_by_their_branch() -> None:
    """If.tasksTree and Switch.tasksTree: CHOICE clusters; the first task of each branch
    carries the branch's name (then, else, a case key, defaults)."""
    body = (
        "tasks:\n  - id: cond\n    type: io.kestra.plugin.core.flow.If\n"
        "    condition: '{{ true }}'\n    then:\n"
        + log("t1", 6)
        + log("t2", 6)
        + "    else:\n"
        + log("e1", 6)
        + "  - id: pick\n    type: io.kestra.plugin.core.flow.Switch\n    value: x\n"
        "    cases:\n      x:\n" + log("x1", 8) + "    defaults:\n" + log("d1", 6)
    )
    found = graph(flow(body))
    assert {
        ("root.cond", "root.cond.t1", "CHOICE", "then"),
        ("root.cond.t1", "root.cond.t2", "SEQUENTIAL", "then"),
        ("root.cond", "root.cond.e1", "CHOICE", "else"),
        ("root.cond.t2", "root.cond._end", None, None),
        ("root.pick", "root.pick.x1", "CHOICE", "x"),
        ("root.pick", "root.pick.d1", "CHOICE", "defaults"),
    } <= edges(found)


def test_dag_entries_are_linked_by_their_depends_on() -> None:
    """GraphUtils.fillGraphDag: entries without dependsOn from the task node, the others
    from what they depend on; those nothing depends on to the end."""
    body = (
        "tasks:\n  - id: dag\n    type: io.kestra.plugin.core.flow.Dag\n    tasks:\n"
        f"      - task:\n          id: a\n          type: {LOG}\n          message: a\n"
        f"      - task:\n          id: b\n          type: {LOG}\n          message: b\n"
        "        dependsOn: [a]\n"
        f"      - task:\n          id: c\n          type: {LOG}\n          message: c\n"
    )
    found = graph(flow(body))
    dag = {e for e in edges(found) if e[0].startswith("root.dag") or e[1].startswith("root.dag")}
    assert dag >= {
        ("root.dag", "root.dag.a", "PARALLEL", None),
        ("root.dag.a", "root.dag.b", "PARALLEL", None),
        ("root.dag", "root.dag.c", "PARALLEL", None),
        ("root.dag.b", "root.dag._end", None, None),
        ("root.dag.c", "root.dag._end", None, None),
    }
    assert ("root.dag.a", "root.dag._end", None, None) not in dag
    assert found["clusters"][0]["cluster"]["relationType"] == "DYNAMIC"


def test_errors_finally_and_after_execution_are_branches_of_their_own() -> None:
    """fillAlternativePaths: errors from the start (ERROR), finally after the tasks and the
    errors, afterExecution after finally; each node says its branch type. As fillGraph
    does, only errors carry their relation from the first task on: the first task of any
    other branch takes the cluster's (none for the flow itself)."""
    body = (
        "tasks:\n"
        + log("a")
        + "errors:\n"
        + log("e1")
        + log("e2")
        + "finally:\n"
        + log("f1")
        + "afterExecution:\n"
        + log("x1")
    )
    found = graph(flow(body))
    assert edges(found) == {
        ("root._root", "root.a", None, None),
        ("root.a", "root._finally", None, None),
        ("root._root", "root.e1", "ERROR", None),
        ("root.e1", "root.e2", "ERROR", None),
        ("root.e2", "root._finally", None, None),
        ("root._finally", "root.f1", None, None),
        ("root.f1", "root._after-execution", None, None),
        ("root._after-execution", "root.x1", None, None),
        ("root.x1", "root._end", None, None),
    }
    assert node(found, "root.e1")["branchType"] == "ERROR"
    assert node(found, "root.f1")["branchType"] == "FINALLY"
    assert node(found, "root.x1")["branchType"] == "AFTER_EXECUTION"
    assert "branchType" not in node(found, "root.a")


def test_nested_clusters_name_their_parents() -> None:
    """FlowGraph.of: each cluster lists the clusters it is inside, outermost first."""
    body = (
        "tasks:\n  - id: outer\n    type: io.kestra.plugin.core.flow.Sequential\n    tasks:\n"
        "      - id: inner\n        type: io.kestra.plugin.core.flow.Parallel\n        tasks:\n"
        + log("leaf", 10)
    )
    found = graph(flow(body))
    by_uid = {c["cluster"]["uid"]: c for c in found["clusters"]}
    assert by_uid["cluster_root.outer"]["parents"] == []
    assert by_uid["cluster_root.outer.inner"]["parents"] == ["cluster_root.outer"]
    assert "cluster_root.outer.inner" in by_uid["cluster_root.outer"]["nodes"]
    assert ("root.outer", "root.outer.inner._root", "SEQUENTIAL", None) in edges(found)


async def test_a_flows_graph_expands_a_subflow_into_the_flow_it_starts(
    h: Harness, api: str
) -> None:
    """FlowControllerTest.graph with `subflows`: the SubflowGraphTask named becomes a
    SubflowGraphCluster holding the subflow's own graph, its tasks whole; an unknown
    subflow is Kestra's 404 (NoSuchElementException)."""
    await h.flow("id: child\nnamespace: company.team\ntasks:\n" + log("c1") + log("c2"))
    await h.flow(
        "id: parent\nnamespace: company.team\ntasks:\n  - id: sub\n"
        "    type: io.kestra.plugin.core.flow.Subflow\n"
        "    namespace: company.team\n    flowId: child\n" + log("after")
    )
    url = f"{api}/api/v1/flows/company.team/parent/graph"
    status, closed, _ = await call("GET", url)
    assert status == 200, closed
    assert node(closed, "root.sub")["type"] == H + "SubflowGraphTask"
    assert closed["clusters"] == []
    status, doc, _ = await call("GET", url, params={"subflows": "root.sub"})
    assert status == 200, doc
    FlowGraph.model_validate(doc)
    opened = named(doc)
    [cluster] = opened["clusters"]
    assert cluster["cluster"]["type"] == H + "SubflowGraphCluster"
    assert cluster["cluster"]["taskNode"]["uid"] == "root.sub"
    assert {
        ("root._root", "root.sub._root", None, None),
        ("root.sub", "root.sub.c1", "SEQUENTIAL", None),
        ("root.sub.c1", "root.sub.c2", "SEQUENTIAL", None),
        ("root.sub.c2", "root.sub._end", None, None),
        ("root.sub._end", "root.after", "SEQUENTIAL", None),
    } <= edges(opened)
    assert node(opened, "root.sub.c1")["task"]["message"] == "c1"
    assert node(opened, "root.after")["task"]["message"] == "after"
    await h.flow(
        "id: orphan\nnamespace: company.team\ntasks:\n  - id: sub\n"
        "    type: io.kestra.plugin.core.flow.Subflow\n"
        "    namespace: company.team\n    flowId: missing\n"
    )
    status, doc, _ = await call(
        "GET", f"{api}/api/v1/flows/company.team/orphan/graph", params={"subflows": "root.sub"}
    )
    assert status == 404 and "Unable to find subflow company.team.missing" in doc["message"]
