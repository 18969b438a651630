// A flow's page: Overview, Topology, Editor, Executions and Triggers tabs, and Run.
// The same module drives "New flow", which is the Editor alone.
import { ApiError, api, enc, failure, fill, h, labelChips, q, shortType, tabs, toast, when } from "./podium.js";
import { executionsTable } from "./exectable.js";
import { openRunDialog } from "./rundialog.js";
import { drawGraph } from "./topology.js";
import { createEditor } from "./yaml.js";

const body = document.body.dataset;
const isNew = body.new === "true";
const namespace = body.namespace;
const flowId = body.flow;
const flowPath = isNew ? "" : `/api/v1/flows/${enc(namespace)}/${enc(flowId)}`;

const STARTER = `id: hello
namespace: company.team

inputs:
  - id: name
    type: STRING
    defaults: World

tasks:
  - id: hello
    type: io.kestra.plugin.core.log.Log
    message: "Hello, {{ inputs.name }}!"
`;

let flow = null;
let editor = null;
let table = null;
let drawnRevision = null;
const problemsList = document.getElementById("problems");
const status = document.getElementById("editor-status");

async function loadFlow() {
  flow = await api(`${flowPath}?source=true`);
  return flow;
}

function overview(panel) {
  const inputs = flow.inputs || [];
  const outputs = flow.outputs || [];
  fill(panel,
    flow.description ? h("p", { class: "description" }, flow.description) : null,
    h("dl", { class: "summary" },
      h("dt", {}, "Namespace"), h("dd", {}, flow.namespace),
      h("dt", {}, "Revision"), h("dd", { id: "flow-revision" }, String(flow.revision ?? "-")),
      h("dt", {}, "State"), h("dd", {}, flow.disabled ? "disabled" : "enabled"),
      h("dt", {}, "Labels"), h("dd", {}, labelChips(flow.labels)),
      flow.concurrency ? [h("dt", {}, "Concurrency"),
        h("dd", {}, `${flow.concurrency.limit} (${flow.concurrency.behavior || "QUEUE"})`)] : null),
    h("h3", {}, "Inputs"),
    inputs.length ? h("div", { class: "table-wrap" }, h("table", {},
      h("thead", {}, h("tr", {}, ["Id", "Type", "Required", "Default", "Description"].map((c) => h("th", {}, c)))),
      h("tbody", {}, inputs.map((i) => h("tr", {},
        h("td", { class: "mono" }, i.id), h("td", {}, i.type),
        h("td", {}, i.required === false ? "no" : "yes"),
        h("td", { class: "mono" }, i.defaults === undefined ? "" : JSON.stringify(i.defaults)),
        h("td", {}, i.description || ""))))))
      : h("p", { class: "muted" }, "No inputs."),
    h("h3", {}, "Outputs"),
    outputs.length ? h("ul", {}, outputs.map((o) => h("li", { class: "mono" }, `${o.id} (${o.type || "STRING"})`)))
      : h("p", { class: "muted" }, "No flow outputs."));
}

async function topology(panel) {
  if (drawnRevision === flow.revision) return;
  const target = panel.querySelector(".topology");
  try {
    const graph = await api(`/ui/api/flows/${enc(namespace)}/${enc(flowId)}/graph`);
    drawGraph(target, graph);
    drawnRevision = flow.revision;
  } catch (error) {
    failure(target, error);
  }
}

async function triggers(panel) {
  if (!(flow.triggers || []).length) {
    panel.replaceChildren(h("p", { class: "muted" }, "No triggers: this flow runs when started by hand, by the API or as a subflow."));
    return;
  }
  let rows;
  try {
    rows = (await api(`/api/v1/triggers/search${q({ namespace, flowId, size: 100 })}`)).results || [];
  } catch (error) {
    failure(panel, error);
    return;
  }
  rows = rows.filter((r) => r.triggerContext.namespace === namespace);
  const detail = (t) => Object.entries(t || {})
    .filter(([k]) => !["id", "type", "disabled", "description"].includes(k))
    .map(([k, v]) => `${k}: ${typeof v === "object" ? JSON.stringify(v) : v}`).join(" · ");
  panel.replaceChildren(h("div", { class: "table-wrap" }, h("table", { class: "triggers" },
    h("thead", {}, h("tr", {}, [["Id"], ["Type", "wide"], ["Details", "wide"], ["Last event", "wide"], ["Next"], [""]]
      .map(([c, wide]) => h("th", { class: wide }, c)))),
    h("tbody", {}, rows.map(({ abstractTrigger: source, triggerContext: context }) => h("tr", { "data-trigger": context.triggerId },
      h("td", { class: "mono" }, context.triggerId),
      h("td", { title: context.type, class: "wide" }, shortType(context.type)),
      h("td", { class: "small wide" }, source?.description || detail(source)),
      h("td", { class: "wide" }, context.executionId ? h("a", { href: `/ui/executions/${enc(context.executionId)}` }, when(context.date))
        : h("span", { class: "muted" }, "none yet")),
      h("td", {}, context.disabled ? h("span", { class: "muted" }, "disabled")
        : context.backfill ? "backfilling" : when(context.nextExecutionDate)),
      h("td", { class: "right" },
        source && "cron" in source && !context.disabled ? backfillForm(context) : null,
        h("button", { type: "button", onclick: () => setTrigger(panel, context, { disabled: !context.disabled }) },
          context.disabled ? "Enable" : "Disable"))))))));
}

function backfillForm(context) {
  const start = h("input", { type: "datetime-local", required: true, "aria-label": "Backfill start" });
  const end = h("input", { type: "datetime-local", "aria-label": "Backfill end" });
  return h("form", { class: "backfill", onsubmit: (event) => {
    event.preventDefault();
    if (!start.value) return;
    const backfill = { start: new Date(start.value).toISOString() };
    if (end.value) backfill.end = new Date(end.value).toISOString();
    setTrigger(event.currentTarget.closest("[data-panel]"), context, { backfill });
  } }, start, end, h("button", { type: "submit" }, "Backfill"));
}

async function setTrigger(panel, context, change) {
  try {
    await api("/api/v1/triggers", { method: "PUT", type: "application/json", body: JSON.stringify({
      namespace: context.namespace, flowId: context.flowId, triggerId: context.triggerId, ...change }) });
    toast(change.backfill ? `Backfill of ${context.triggerId} started` : `${context.triggerId} ${change.disabled ? "disabled" : "enabled"}`, "success");
  } catch (error) {
    toast(error.message, "error");
  }
  triggers(panel);
}

// -- editor -----------------------------------------------------------------------------

function topLevel(text, key) {
  const lines = text.split("\n");
  const index = lines.findIndex((l) => new RegExp(`^${key}:\\s*`).test(l));
  if (index < 0) return null;
  const value = lines[index].replace(new RegExp(`^${key}:\\s*`), "").replace(/\s+#.*$/, "")
    .trim().replace(/^(["'])(.*)\1$/, "$2");
  return { line: index + 1, value };
}

function showProblems(list) {
  editor.setProblems(list);
  problemsList.replaceChildren(...list.map((p) => h("li", {
    "data-line": p.line, onclick: () => editor.goTo(p.line),
  }, h("span", { class: "where" }, `Line ${p.line}${p.column ? `, column ${p.column}` : ""}`),
  p.path ? h("span", { class: "path mono" }, p.path) : null, h("span", {}, p.message))));
  problemsList.hidden = !list.length;
}

function identityProblems(text) {
  if (isNew) return [];
  const problems = [];
  for (const [key, was] of [["id", flowId], ["namespace", namespace]]) {
    const found = topLevel(text, key);
    if (found && found.value !== was) {
      problems.push({ line: found.line, column: 1, path: key,
        message: `the ${key} of a saved flow cannot change (it is '${was}')` });
    }
  }
  return problems;
}

async function save() {
  const text = editor.value;
  const button = document.getElementById("save-button");
  button.disabled = true;
  status.textContent = "Validating…";
  try {
    let problems = identityProblems(text);
    if (!problems.length) {
      const results = await api("/api/v1/flows/validate", { method: "POST", body: text, type: "application/x-yaml" });
      problems = results.flatMap((r) => r.errors || []);
    }
    showProblems(problems);
    if (problems.length) {
      status.textContent = `Not saved: ${problems.length} problem${problems.length > 1 ? "s" : ""}`;
      return;
    }
    status.textContent = "Saving…";
    const saved = await api(isNew ? "/api/v1/flows" : flowPath,
      { method: isNew ? "POST" : "PUT", body: text, type: "application/x-yaml" });
    if (isNew) {
      location.assign(`/ui/flows/${enc(saved.namespace)}/${enc(saved.id)}#editor`);
      return;
    }
    flow = saved;
    status.textContent = `Saved revision ${saved.revision}`;
    toast(`Saved ${saved.namespace}.${saved.id} revision ${saved.revision}`, "success");
  } catch (error) {
    const list = error instanceof ApiError && error.errors.length
      ? error.errors.map((e) => ({ line: e.line || 1, column: e.column, path: e.path, message: e.message }))
      : [{ line: 1, message: error.message }];
    showProblems(list);
    status.textContent = "Not saved";
  } finally {
    button.disabled = false;
  }
}

function startEditor(text) {
  editor = createEditor(document.getElementById("editor"), text);
  document.getElementById("save-button").addEventListener("click", save);
  editor.textarea.addEventListener("keydown", (event) => {
    if ((event.ctrlKey || event.metaKey) && event.key === "s") {
      event.preventDefault();
      save();
    }
  });
}

// -- page -------------------------------------------------------------------------------

async function main() {
  if (isNew) {
    startEditor(STARTER);
    return;
  }
  try {
    await loadFlow();
  } catch (error) {
    failure(document.querySelector('[data-panel="overview"]'), error);
    return;
  }
  startEditor(flow.source || "");
  document.getElementById("run-button").addEventListener("click", () => openRunDialog(flow));
  tabs((name) => {
    const panel = document.querySelector(`[data-panel="${name}"]`);
    if (table && name !== "executions") table.stop();
    if (name === "overview") overview(panel);
    else if (name === "topology") topology(panel);
    else if (name === "triggers") triggers(panel);
    else if (name === "executions") {
      table = table || executionsTable(panel.querySelector(".executions-table"), { namespace, flowId });
      table.load();
    }
  }, "overview");
}

main();
