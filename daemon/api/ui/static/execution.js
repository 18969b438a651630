// An execution's page: live from GET /api/v1/executions/{id}/follow (every change as it
// happens, `id: end` with the last one), with Gantt, Logs, Outputs, Metrics, Topology and
// Overview tabs; Resume (with the Pause task's onResume form) or Review (an Approval's
// inputs and comment, then Approve or Deny), Kill, Restart and Replay (each confirmed
// first), and labels edited once it has ended.
import { TERMINATED, ApiError, api, badge, confirmAction, elapsed, enc, fill, h, human, labelChips, tabs, toast, when } from "./podium.js";
import { renderGantt } from "./gantt.js";
import { followLogs } from "./logs.js";
import { renderMetrics } from "./metrics.js";
import { renderOutputs, setupExpression } from "./outputs.js";
import { field, formData, showRefusal } from "./rundialog.js";
import { drawGraph, taskStates } from "./topology.js";

const executionId = document.body.dataset.execution;
const base = `/api/v1/executions/${enc(executionId)}`;
let execution = null;
let graph = null;
let shown = "gantt";
let ticker = null;
let follow = null;
let logs = null;
let waitingPoll = null;

const el = (id) => document.getElementById(id);

function summary() {
  const e = execution;
  const flowHref = `/ui/flows/${enc(e.namespace)}/${enc(e.flowId)}`;
  const replayOf = e.parent && e.parent.replayOf;
  el("execution-state").replaceChildren(badge(e.state.current));
  fill(el("execution-summary"),
    h("dt", {}, "Flow"), h("dd", {}, h("a", { href: flowHref }, `${e.namespace}.${e.flowId}`),
      h("span", { class: "muted" }, ` revision ${e.flowRevision}`)),
    h("dt", {}, "Started"), h("dd", {}, when(e.state.startDate)),
    h("dt", {}, "Duration"), h("dd", { id: "execution-duration" }, human(elapsed(e.state))),
    h("dt", {}, "Labels"), h("dd", { id: "execution-labels" }, labelChips(e.labels)),
    replayOf ? [h("dt", {}, "Replay of"), h("dd", { id: "replay-of" }, h("a", { href: `/ui/executions/${enc(replayOf)}` }, replayOf))] : null,
    e.trigger ? [h("dt", {}, "Trigger"), h("dd", {}, `${e.trigger.id} (${e.trigger.type})`)] : null,
    e.parentId ? [h("dt", {}, "Parent"), h("dd", {}, h("a", { href: `/ui/executions/${enc(e.parentId)}` }, e.parentId))] : null,
    e.error ? [h("dt", {}, "Error"), h("dd", { class: "error-text" }, e.error)] : null);
}

function actions() {
  const state = execution.state.current;
  const ended = TERMINATED.has(state);
  el("resume-button").hidden = state !== "PAUSED";
  if (state === "PAUSED") waitingTask().then(({ task }) => {
    el("resume-button").textContent = task && task.type === APPROVAL ? "Review" : "Resume";
  }, () => {});
  el("kill-button").hidden = ended || state === "KILLING";
  el("restart-button").hidden = !["FAILED", "KILLED"].includes(state);
  el("replay-group").hidden = !ended;
  el("labels-button").hidden = !ended;
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

function gantt() {
  renderGantt(el("gantt"), execution, { legend: el("gantt-legend"), executionId });
}

// A cluster's task run held back because no live node serves its worker group: nothing
// changes in the execution meanwhile, so the page asks the task queue every few seconds.
async function waiting() {
  const box = el("execution-waiting");
  let found = [];
  if (execution && !TERMINATED.has(execution.state.current)) {
    try {
      found = (await api("/api/v1/workers/waiting")).results.filter((w) => w.executionId === executionId);
    } catch {
      found = [];  // an older daemon, or the database out of reach: nothing to say
    }
  } else {
    clearInterval(waitingPoll);
    waitingPoll = null;
  }
  box.hidden = found.length === 0;
  fill(box, found.map((w) => h("div", {}, "Task ", h("span", { class: "mono" }, w.taskId),
    ` waits for a node of worker group `, h("span", { class: "mono" }, w.workerGroup),
    " since ", when(w.since))));
}

function render() {
  if (!execution) return;
  summary();
  if (!waitingPoll && !TERMINATED.has(execution.state.current)) {
    waiting();
    waitingPoll = setInterval(waiting, 3000);
  }
  actions();
  if (shown === "gantt") gantt();
  else if (shown === "outputs") renderOutputs(el("outputs"), execution);
  else if (shown === "metrics") renderMetrics(el("metrics"), execution);
  else if (shown === "topology") topology();
  else if (shown === "overview") overview();
  clearInterval(ticker);
  if (!TERMINATED.has(execution.state.current)) {
    // Running bars and the duration grow with the clock between two events.
    ticker = setInterval(() => {
      if (shown === "gantt") gantt();
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

el("kill-button").addEventListener("click", async (event) => {
  const button = event.currentTarget;
  if (!await confirmAction("Kill this execution?", "Its running tasks are stopped and it ends KILLED.", "Kill", true)) return;
  act(button, async () => {
    await api(`${base}/kill`, { method: "DELETE" });
    toast("Kill requested");
  });
});

el("restart-button").addEventListener("click", async (event) => {
  const button = event.currentTarget;
  if (!await confirmAction("Restart this execution?", "Its failed task runs run again; the tasks that succeeded keep their outputs.", "Restart")) return;
  act(button, async () => {
    execution = await api(`${base}/restart`, { method: "POST" });
    render();
    if (follow) follow.close();
    followExecution();
    logs.reopen();
    toast("Restarted");
  });
});

el("replay-button").addEventListener("click", async (event) => {
  const button = event.currentTarget;
  const select = el("replay-from");
  const from = select.value;
  const where = from ? select.selectedOptions[0].textContent : "from the start";
  if (!await confirmAction("Replay this execution?", `A new execution of the same flow revision and inputs runs ${where}.`, "Replay")) return;
  act(button, async () => {
    const copy = await api(`${base}/replay${from ? `?taskRunId=${enc(from)}` : ""}`, { method: "POST" });
    location.assign(`/ui/executions/${enc(copy.id)}`);
  });
});

// -- resume -----------------------------------------------------------------------------

function findTask(tasks, id) {
  for (const task of tasks || []) {
    if (!task || typeof task !== "object") continue;
    if (task.id === id) return task;
    for (const value of Object.values(task)) {
      const lists = Array.isArray(value) ? [value] : value && typeof value === "object" ? Object.values(value) : [];
      for (const list of lists) {
        if (!Array.isArray(list)) continue;
        const found = findTask(list, id);
        if (found) return found;
      }
    }
  }
  return null;
}

const APPROVAL = "io.kestra.plugin.core.flow.Approval";
let flowOfRevision = null;

// The first paused task run and its task in the flow as it was (fetched once).
async function waitingTask() {
  const paused = (execution.taskRunList || []).find((r) => r.state.current === "PAUSED");
  if (!flowOfRevision || flowOfRevision.revision !== execution.flowRevision) {
    flowOfRevision = await api(`/api/v1/flows/${enc(execution.namespace)}/${enc(execution.flowId)}?revision=${execution.flowRevision}`);
  }
  const f = flowOfRevision;
  const task = paused && findTask([...(f.tasks || []), ...(f.errors || []), ...(f.finally || [])], paused.taskId);
  return { paused, task };
}

async function openResume() {
  let paused, task;
  try {
    ({ paused, task } = await waitingTask());
  } catch (error) {
    toast(error.message, "error");
    return;
  }
  if (task && task.type === APPROVAL) {
    openReview(paused, task);
    return;
  }
  const inputs = (task && task.onResume) || [];
  const dialog = el("resume-dialog");
  const fields = el("resume-fields");
  const general = el("resume-error");
  el("resume-task").textContent = paused ? paused.taskId : executionId;
  fields.replaceChildren(...(inputs.length ? inputs.map(field)
    : [h("p", { class: "muted" }, "The Pause task asks for no input: resume the execution?")]));
  general.hidden = true;
  el("resume-cancel").onclick = () => dialog.close();
  el("resume-form").onsubmit = async (event) => {
    event.preventDefault();
    for (const node of fields.querySelectorAll(".field-error")) node.hidden = true;
    for (const node of fields.querySelectorAll(".field.invalid")) node.classList.remove("invalid");
    general.hidden = true;
    try {
      await api(`${base}/resume`, { method: "POST", body: formData(el("resume-form"), inputs) });
      dialog.close();
      toast("Resumed", "success");
      if (!follow || follow.readyState === EventSource.CLOSED) followExecution();
    } catch (error) {
      showRefusal(fields, general, error);
    }
  };
  dialog.showModal();
}

// An Approval's review (Kestra's ReviewDialog): its inputs, a comment sent as
// kestra_review_comment, and the two decisions under the names the task gives them.
function openReview(paused, task) {
  const inputs = task.inputs || [];
  const dialog = el("review-dialog");
  const fields = el("review-fields");
  const general = el("review-error");
  const plain = (label, fallback) => (typeof label === "string" && !/\{\{|\{%/.test(label) ? label : fallback);
  const names = task.decisions || {};
  el("review-task").textContent = paused.taskId;
  el("review-approve").textContent = plain(names.approve, "Approve");
  el("review-deny").textContent = plain(names.deny, "Deny");
  const needed = { ALWAYS: " (required)", ON_DENY: " (required to deny)", ON_APPROVE: " (required to approve)" };
  el("review-comment-note").textContent = needed[task.commentRequired] || "";
  el("review-comment").value = "";
  fields.replaceChildren(...inputs.map(field));
  general.hidden = true;
  el("review-cancel").onclick = () => dialog.close();
  el("review-form").onsubmit = async (event) => {
    event.preventDefault();
    const decision = event.submitter && event.submitter.value === "DENY" ? "DENY" : "APPROVE";
    for (const node of fields.querySelectorAll(".field-error")) node.hidden = true;
    for (const node of fields.querySelectorAll(".field.invalid")) node.classList.remove("invalid");
    general.hidden = true;
    const body = formData(el("review-form"), inputs);
    const comment = el("review-comment").value;
    if (comment.trim()) body.append("kestra_review_comment", comment);
    try {
      await api(`${base}/actions/review?decision=${decision}&taskRunId=${enc(paused.id)}`, { method: "POST", body });
      dialog.close();
      toast(decision === "APPROVE" ? "Approved" : "Denied", "success");
      if (!follow || follow.readyState === EventSource.CLOSED) followExecution();
    } catch (error) {
      showRefusal(fields, general, error);
    }
  };
  dialog.showModal();
}

el("resume-button").addEventListener("click", openResume);

// -- labels -----------------------------------------------------------------------------

el("labels-button").addEventListener("click", () => {
  const dialog = el("labels-dialog");
  const text = el("labels-text");
  const problem = el("labels-error");
  text.value = (execution.labels || []).filter((l) => !String(l.key).startsWith("system."))
    .map((l) => `${l.key}:${l.value}`).join("\n");
  problem.hidden = true;
  el("labels-cancel").onclick = () => dialog.close();
  el("labels-form").onsubmit = async (event) => {
    event.preventDefault();
    const labels = [];
    for (const line of text.value.split("\n").map((l) => l.trim()).filter(Boolean)) {
      const at = line.indexOf(":");
      if (at < 1) {
        problem.textContent = `"${line}" is not key:value`;
        problem.hidden = false;
        return;
      }
      labels.push({ key: line.slice(0, at).trim(), value: line.slice(at + 1).trim() });
    }
    try {
      execution = await api(`${base}/labels`, { method: "POST", type: "application/json", body: JSON.stringify(labels) });
    } catch (error) {
      problem.textContent = error instanceof ApiError ? error.message : String(error);
      problem.hidden = false;
      return;
    }
    dialog.close();
    toast("Labels saved", "success");
    render();
  };
  dialog.showModal();
});

async function main() {
  try {
    execution = await api(base);
  } catch (error) {
    el("execution-summary").replaceChildren(h("p", { class: "error-text" }, error.message));
    return;
  }
  logs = followLogs(executionId, {
    container: el("logs"), level: el("log-level"), task: el("log-task"), search: el("log-search"), group: el("log-group"),
    runName: (entry) => {
      const run = (execution.taskRunList || []).find((r) => r.id === entry.taskRunId);
      return run && run.value !== null && run.value !== undefined ? `${run.taskId} [${run.value}]` : entry.taskId;
    },
  });
  setupExpression(executionId, () => execution);
  tabs((name) => { shown = name; render(); }, "gantt");
  if (TERMINATED.has(execution.state.current)) return;
  followExecution();
}

main();
