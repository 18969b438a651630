// Draws a topology laid out by the server (/ui/api/flows/{ns}/{id}/graph) as SVG.
// `states` (taskId -> state) colours the boxes of an execution's tasks.
import { s, shortType } from "./podium.js";

const CHAR = 7.2;

function fit(text, width) {
  const room = Math.max(4, Math.floor((width - 20) / CHAR));
  return text.length > room ? `${text.slice(0, room - 1)}…` : text;
}

function path(points) {
  return points.map(([x, y], i) => `${i ? "L" : "M"}${x},${y}`).join(" ");
}

export function drawGraph(container, graph, states = {}) {
  const margin = 16;
  const width = graph.width + 2 * margin;
  const height = graph.height + 2 * margin;
  const svg = s("svg", {
    class: "graph", width, height, viewBox: `${-margin} ${-margin} ${width} ${height}`,
    role: "img", "aria-label": "Topology",
  });
  svg.append(s("defs", {}, s("marker", {
    id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7,
    orient: "auto-start-reverse",
  }, s("path", { d: "M0,0 L10,5 L0,10 z", class: "arrow" }))));
  const groups = graph.nodes.filter((n) => n.kind === "group");
  const boxes = graph.nodes.filter((n) => n.kind !== "group");
  for (const node of groups) svg.append(box(node, states));
  for (const lane of graph.lanes) {
    svg.append(s("g", { class: `lane lane-${lane.kind}` },
      s("rect", { x: lane.x - 4, y: lane.y - 2, width: lane.w + 8, height: lane.h + 6, rx: 6 }),
      s("text", { x: lane.x + 2, y: lane.y + 12 }, lane.label)));
  }
  for (const edge of graph.edges) {
    svg.append(s("path", {
      class: `edge edge-${edge.kind}`, d: path(edge.points), "marker-end": "url(#arrow)",
      "data-from": edge.from, "data-to": edge.to,
    }));
  }
  for (const node of boxes) svg.append(box(node, states));
  container.replaceChildren(svg);
}

function box(node, states) {
  const state = node.kind === "trigger" ? null : states[node.id];
  const classes = ["node", `node-${node.kind}`];
  if (state) classes.push(`state-${state.toLowerCase()}`);
  if (node.disabled) classes.push("disabled");
  const group = s("g", { class: classes.join(" "), "data-id": node.id, "data-state": state || "" },
    s("title", {}, `${node.label} (${node.type})${state ? ` ${state}` : ""}`),
    s("rect", { x: node.x, y: node.y, width: node.w, height: node.h, rx: 6 }));
  if (node.kind === "group") {
    group.append(s("text", { x: node.x + 10, y: node.y + 19, class: "label" },
      fit(node.label, node.w / 2), s("tspan", { class: "type" }, `  ${shortType(node.type)}`)));
  } else {
    group.append(
      s("text", { x: node.x + 10, y: node.y + 20, class: "label" }, fit(node.label, node.w)),
      s("text", { x: node.x + 10, y: node.y + 37, class: "type" },
        fit(`${node.kind === "trigger" ? "⚡ " : ""}${shortType(node.type)}`, node.w)));
  }
  return group;
}

// The state shown for a task: a running or failed run outweighs the others (ForEach
// iterations, retries after a restart), else the latest run's.
const WEIGHT = { RUNNING: 6, KILLING: 6, RETRYING: 5, FAILED: 4, KILLED: 3, WARNING: 2, PAUSED: 2 };

export function taskStates(execution) {
  const states = {};
  for (const run of execution.taskRunList || []) {
    const state = run.state.current;
    const seen = states[run.taskId];
    if (!seen || (WEIGHT[state] || 0) >= (WEIGHT[seen] || 0)) states[run.taskId] = state;
  }
  return states;
}
