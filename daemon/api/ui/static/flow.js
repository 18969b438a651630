// A flow's page: Overview, Topology, Editor, Revisions, Executions and Triggers tabs, and
// Run; which file defines the flow, and whether that file still validates. The same module
// drives "New flow", which is the Editor alone.
import { ApiError, api, confirmAction, enc, failure, fill, h, labelChips, tabs, toast } from "./podium.js";
import { lineDiff } from "./diff.js";
import { createEditor } from "./editor.js";
import { executionsTable } from "./exectable.js";
import { openRunDialog } from "./rundialog.js";
import { drawGraph } from "./topology.js";
import { triggerTable } from "./triggertable.js";

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
let saved = "";  // the text as last saved (or opened): what "unsaved changes" compares with
let fileSha = null;  // the file on disk when the editor opened it or last saved it
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
        h("td", { class: "mono" }, i.defaults === undefined ? "" : typeof i.defaults === "string" ? i.defaults : JSON.stringify(i.defaults)),
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

function triggers(panel) {
  if (!(flow.triggers || []).length) {
    panel.replaceChildren(h("p", { class: "muted" }, "No triggers: this flow runs when started by hand, by the API or as a subflow."));
    return;
  }
  triggerTable(panel, { namespace, flowId });
}

// -- the file that defines the flow -----------------------------------------------------

async function fileState() {
  try {
    return await api(`/ui/api/flows/${enc(namespace)}/${enc(flowId)}/file`);
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) return null;
    throw error;
  }
}

function showFile(file) {
  const where = document.getElementById("flow-file");
  const banner = document.getElementById("file-invalid");
  if (!file) {
    where.hidden = true;
    banner.hidden = true;
    return;
  }
  fill(where, "Defined in ", h("span", { class: "mono" }, file.file));
  where.hidden = false;
  banner.hidden = !file.errors.length;
  if (file.errors.length) {
    fill(banner, h("strong", {}, `${file.file} no longer validates`),
      ` — revision ${flow.revision} still runs. Fix it in the editor or on disk:`,
      h("ul", {}, file.errors.map((e) => h("li", {}, `line ${e.line}: ${e.path ? `${e.path}: ` : ""}${e.message}`))));
  }
}

// -- revisions --------------------------------------------------------------------------

let revisions = null;

async function revisionsTab() {
  const from = document.getElementById("revision-from");
  const to = document.getElementById("revision-to");
  const target = document.getElementById("revision-diff");
  try {
    revisions = await api(`${flowPath}/revisions`);
  } catch (error) {
    failure(target, error);
    return;
  }
  const options = (select) => select.replaceChildren(...revisions.map((r) => h("option", { value: r.revision }, `Revision ${r.revision}`)));
  const keepFrom = from.value;
  const keepTo = to.value;
  options(from);
  options(to);
  const last = revisions.at(-1)?.revision;
  from.value = keepFrom || String(revisions.length > 1 ? revisions.at(-2).revision : last);
  to.value = keepTo || String(last);
  from.onchange = showDiff;
  to.onchange = showDiff;
  showDiff();
}

function showDiff() {
  const target = document.getElementById("revision-diff");
  const a = revisions.find((r) => String(r.revision) === document.getElementById("revision-from").value);
  const b = revisions.find((r) => String(r.revision) === document.getElementById("revision-to").value);
  if (!a || !b) {
    target.replaceChildren(h("p", { class: "muted" }, "No revisions."));
    return;
  }
  const rows = lineDiff(a.source || "", b.source || "");
  const changed = rows.filter((r) => r.kind !== "same").length;
  target.replaceChildren(
    h("p", { class: "muted small" }, changed ? `${changed} changed lines between revision ${a.revision} and revision ${b.revision}`
      : `Revisions ${a.revision} and ${b.revision} are the same`),
    h("div", { class: "table-wrap" }, h("table", { class: "diff-table mono" }, h("tbody", {}, rows.map((r) =>
      h("tr", { class: `diff-${r.kind}` },
        h("td", { class: "ln" }, r.old ?? ""), h("td", { class: "ln" }, r.new ?? ""),
        h("td", { class: "sign" }, r.kind === "add" ? "+" : r.kind === "del" ? "−" : " "),
        h("td", { class: "code" }, r.text)))))));
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

function showProblems(list) {
  problemsList.replaceChildren(...list.map((p) => h("li", {
    "data-line": p.line, onclick: () => editor.goTo(p.line),
  }, h("span", { class: "where" }, `Line ${p.line}${p.column ? `, column ${p.column}` : ""}`),
  p.path ? h("span", { class: "path mono" }, p.path) : null, h("span", {}, p.message))));
  problemsList.hidden = !list.length;
}

function dirty() { return editor && editor.value !== saved; }

function markDirty() {
  const changed = dirty();
  document.title = `${changed ? "● " : ""}${document.title.replace(/^● /, "")}`;
  if (changed) status.textContent = "Unsaved changes";
  else if (status.textContent === "Unsaved changes") status.textContent = "";
}

async function problemsOf(text) {
  const own = identityProblems(text);
  if (own.length) return own;
  const results = await api("/api/v1/flows/validate", { method: "POST", body: text, type: "application/x-yaml" });
  return results.flatMap((r) => r.errors || []);
}

async function changedOnDisk() {
  if (isNew || fileSha === null) return false;
  const file = await fileState();
  return Boolean(file && file.sha256 !== fileSha);
}

let saving = false;

async function save() {
  if (saving) return;
  saving = true;
  const text = editor.value;
  const button = document.getElementById("save-button");
  button.disabled = true;
  status.textContent = "Validating…";
  try {
    const problems = await problemsOf(text);
    showProblems(problems);
    if (problems.length) {
      status.textContent = `Not saved: ${problems.length} problem${problems.length > 1 ? "s" : ""}`;
      return;
    }
    if (await changedOnDisk()) {
      const overwrite = await confirmAction("The file changed on disk",
        "Someone changed this flow's file since you opened it. Saving replaces their change with yours.",
        "Save over it", true);
      if (!overwrite) {
        status.textContent = "Not saved: the file changed on disk";
        return;
      }
    }
    status.textContent = "Saving…";
    const result = await api(isNew ? "/api/v1/flows" : flowPath,
      { method: isNew ? "POST" : "PUT", body: text, type: "application/x-yaml" });
    saved = text;
    if (isNew) {
      location.assign(`/ui/flows/${enc(result.namespace)}/${enc(result.id)}#editor`);
      return;
    }
    flow = result;
    const file = await fileState();
    fileSha = file ? file.sha256 : null;
    showFile(file);
    markDirty();
    status.textContent = `Saved revision ${result.revision}`;
    toast(`Saved ${result.namespace}.${result.id} revision ${result.revision}`, "success");
  } catch (error) {
    const list = error instanceof ApiError && error.errors.length
      ? error.errors.map((e) => ({ line: e.line || 1, column: e.column, path: e.path, message: e.message }))
      : [{ line: 1, message: error.message }];
    showProblems(list);
    status.textContent = "Not saved";
  } finally {
    button.disabled = false;
    saving = false;
  }
}

function startEditor(text) {
  saved = text;
  editor = createEditor(document.getElementById("editor"), text, {
    onSave: save,
    onChange: markDirty,
    onProblems: showProblems,
    extraProblems: identityProblems,
  });
  document.getElementById("save-button").addEventListener("click", save);
  window.addEventListener("beforeunload", (event) => {
    if (!dirty()) return;
    event.preventDefault();
    event.returnValue = "";
  });
}

// -- page -------------------------------------------------------------------------------

async function main() {
  if (isNew) {
    startEditor(STARTER);
    return;
  }
  let file = null;
  try {
    await loadFlow();
    file = await fileState();
  } catch (error) {
    const panel = document.querySelector('[data-panel="overview"]');
    panel.hidden = false;
    failure(panel, error);
    return;
  }
  fileSha = file ? file.sha256 : null;
  showFile(file);
  // A file that no longer validates opens as it is on disk, to be fixed.
  startEditor(file && file.errors.length && file.text !== null ? file.text : flow.source || "");
  document.getElementById("run-button").addEventListener("click", () => openRunDialog(flow));
  tabs((name) => {
    const panel = document.querySelector(`[data-panel="${name}"]`);
    if (table && name !== "executions") table.stop();
    if (name === "overview") overview(panel);
    else if (name === "topology") topology(panel);
    else if (name === "triggers") triggers(panel);
    else if (name === "revisions") revisionsTab();
    else if (name === "executions") {
      table = table || executionsTable(panel.querySelector(".executions-table"), { namespace, flowId });
      table.load();
    }
  }, "overview");
}

main();
