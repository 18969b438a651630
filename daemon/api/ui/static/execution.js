// An execution's page: live from GET /api/v1/executions/{id}/follow (every change as it
// happens, `id: end` with the last one), with Gantt, Logs, Outputs, Metrics, Topology and
// Overview tabs and the Kill / Restart / Replay actions.
import { TERMINATED, api, badge, elapsed, enc, fill, h, human, labelChips, tabs, toast, when } from "./podium.js";
import { renderGantt } from "./gantt.js";
import { followLogs } from "./logs.js";
import { renderMetrics } from "./metrics.js";
import { renderOutputs } from "./outputs.js";
import { drawGraph, taskStates } from "./topology.js";

const executionId = document.body.dataset.execution;
const base = `/api/v1/executions/${enc(executionId)}`;
let execution = null;
let graph = null;
let shown = "gantt";
let ticker = null;
let follow = null;
let logs = null;

const el = (id) => document.getElementById(id);

function summary() {
  const e = execution;
  const flowHref = `/ui/flows/${enc(e.namespace)}/${enc(e.flowId)}`;
  el("execution-state").replaceChildren(badge(e.state.current));
  fill(el("execution-summary"),
    h("dt", {}, "Flow"), h("dd", {}, h("a", { href: flowHref }, `${e.namespace}.${e.flowId}`),
      h("span", { class: "muted" }, ` revision ${e.flowRevision}`)),
    h("dt", {}, "Started"), h("dd", {}, when(e.state.startDate)),
    h("dt", {}, "Duration"), h("dd", { id: "execution-duration" }, human(elapsed(e.state))),
    h("dt", {}, "Labels"), h("dd", {}, labelChips(e.labels)),
    e.trigger ? [h("dt", {}, "Trigger"), h("dd", {}, `${e.trigger.id} (${e.trigger.type})`)] : null,
    e.parentId ? [h("dt", {}, "Parent"), h("dd", {}, h("a", { href: `/ui/executions/${enc(e.parentId)}` }, e.parentId))] : null,
    e.error ? [h("dt", {}, "Error"), h("dd", { class: "error-text" }, e.error)] : null);
}

function actions() {
  const state = execution.state.current;
  const ended = TERMINATED.has(state);
  el("kill-button").hidden = ended || state === "KILLING";
  el("restart-button").hidden = !["FAILED", "KILLED"].includes(state);
  el("replay-group").hidden = !ended;
  const select = el("replay-from");
  const chosen = select.value;
  select.replaceChildren(h("option", { value: "" }, "from the start"),
    ...(execution.taskRunList || []).map((r) => h("option", { value: r.id },
      `from ${r.taskId}${r.value !== null && r.value !== undefined ? ` [${r.value}]` : ""}`)));
  select.value = chosen;
}

function overview() {
  const e = execution;
  const rows = Object.entries(e.inputs || {});
  fill(el("overview"),
    h("h3", {}, "Inputs"),
    rows.length ? h("div", { class: "table-wrap" }, h("table", {}, h("tbody", {}, rows.map(([k, v]) =>
      h("tr", {}, h("td", { class: "mono" }, k), h("td", { class: "mono" }, JSON.stringify(v)))))))
      : h("p", { class: "muted" }, "No inputs."),
    h("h3", {}, "State history"),
    h("ol", { class: "history" }, e.state.histories.map((entry) =>
      h("li", {}, badge(entry.state), " ", when(entry.date)))));
}

async function topology() {
  const target = document.querySelector('[data-panel="topology"] .topology');
  if (!graph) {
    try {
      graph = await api(`/ui/api/flows/${enc(execution.namespace)}/${enc(execution.flowId)}/graph?revision=${execution.flowRevision}`);
    } catch (error) {
      target.replaceChildren(h("p", { class: "error-text" }, error.message));
      return;
    }
  }
  drawGraph(target, graph, taskStates(execution));
}

function render() {
  if (!execution) return;
  summary();
  actions();
  if (shown === "gantt") renderGantt(el("gantt"), execution);
  else if (shown === "outputs") renderOutputs(el("outputs"), execution);
  else if (shown === "metrics") renderMetrics(el("metrics"), execution);
  else if (shown === "topology") topology();
  else if (shown === "overview") overview();
  clearInterval(ticker);
  if (!TERMINATED.has(execution.state.current)) {
    // Running bars and the duration grow with the clock between two events.
    ticker = setInterval(() => {
      if (shown === "gantt") renderGantt(el("gantt"), execution);
      el("execution-duration").textContent = human(elapsed(execution.state));
    }, 500);
  }
}

function followExecution() {
  follow = new EventSource(`${base}/follow`);
  follow.addEventListener("message", (event) => {
    execution = JSON.parse(event.data);
    if (event.lastEventId === "end") follow.close();
    render();
  });
}

async function act(button, call) {
  button.disabled = true;
  try {
    await call();
  } catch (error) {
    toast(error.message, "error");
  } finally {
    button.disabled = false;
  }
}

el("kill-button").addEventListener("click", (event) => act(event.currentTarget, async () => {
  await api(`${base}/kill`, { method: "DELETE" });
  toast("Kill requested");
}));

el("restart-button").addEventListener("click", (event) => act(event.currentTarget, async () => {
  execution = await api(`${base}/restart`, { method: "POST" });
  render();
  if (follow) follow.close();
  followExecution();
  logs.reopen();
  toast("Restarted");
}));

el("replay-button").addEventListener("click", (event) => act(event.currentTarget, async () => {
  const from = el("replay-from").value;
  const copy = await api(`${base}/replay${from ? `?taskRunId=${enc(from)}` : ""}`, { method: "POST" });
  location.assign(`/ui/executions/${enc(copy.id)}`);
}));

async function main() {
  try {
    execution = await api(base);
  } catch (error) {
    el("execution-summary").replaceChildren(h("p", { class: "error-text" }, error.message));
    return;
  }
  logs = followLogs(executionId, el("logs"), el("log-level"), el("log-task"));
  tabs((name) => { shown = name; render(); }, "gantt");
  if (TERMINATED.has(execution.state.current)) return;
  followExecution();
}

main();
