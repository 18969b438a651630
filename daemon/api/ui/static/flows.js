// The Flows page: flows grouped by namespace, with their triggers, the state of their
// last execution and a Run button.
import { api, badge, enc, failure, h, labelChips, q, shortType, when } from "./podium.js";
import { openRunDialog } from "./rundialog.js";

const list = document.getElementById("flows");
const filter = document.getElementById("flow-filter");
let flows = [];
const last = new Map();
let files = { flows: [], invalid: [] };

async function load() {
  try {
    const [data, found] = await Promise.all([api(`/api/v1/flows/search${q({ size: 1000 })}`),
      api("/ui/api/flows/files")]);
    flows = data.results || [];
    files = found;
  } catch (error) {
    failure(list, error);
    return;
  }
  render();
  await Promise.all(flows.map(async (flow) => {
    const page = await api(`/api/v1/executions/search${q({
      namespace: flow.namespace, flowId: flow.id, size: 1 })}`);
    const found = (page.results || []).find((e) => e.namespace === flow.namespace);
    last.set(`${flow.namespace}/${flow.id}`, found || null);
  }));
  render();
}

function invalidFile(flow) {
  return files.invalid.find((f) => f.namespace === flow.namespace && f.id === flow.id);
}

function orphans() {
  // Files that do not validate and define no loaded flow: shown apart, so none goes unseen.
  const loaded = new Set(flows.map((f) => `${f.namespace}/${f.id}`));
  const broken = files.invalid.filter((f) => !loaded.has(`${f.namespace}/${f.id}`));
  if (!broken.length) return null;
  return h("section", { class: "banner error", id: "invalid-files" },
    h("strong", {}, "Flow files that do not validate"),
    h("ul", {}, broken.map((f) => h("li", { "data-file": f.file }, h("span", { class: "mono" }, f.file), ": ",
      f.errors.map((e) => `line ${e.line}: ${e.message}`).join("; ")))));
}

function render() {
  const text = filter.value.trim().toLowerCase();
  const shown = flows.filter((f) => !text || [f.id, f.namespace, f.description]
    .some((v) => String(v || "").toLowerCase().includes(text)));
  if (!shown.length) {
    list.replaceChildren(orphans() || "", h("p", { class: "muted" }, flows.length
      ? "No flow matches." : "No flows yet: create one, or drop a YAML file in the flows directory."));
    return;
  }
  const byNamespace = new Map();
  for (const flow of shown) {
    byNamespace.set(flow.namespace, [...(byNamespace.get(flow.namespace) || []), flow]);
  }
  list.replaceChildren(orphans() || "", ...[...byNamespace.entries()].map(([namespace, members]) =>
    h("section", { class: "namespace" },
      h("h2", {}, namespace),
      h("div", { class: "table-wrap" }, h("table", { class: "flows" },
        h("thead", {}, h("tr", {}, [["Id"], ["Labels", "wide"], ["Triggers", "wide"], ["Last execution"], [""]]
          .map(([c, wide]) => h("th", { class: wide }, c)))),
        h("tbody", {}, members.map(row)))))));
}

function row(flow) {
  const key = `${flow.namespace}/${flow.id}`;
  const execution = last.get(key);
  const href = `/ui/flows/${enc(flow.namespace)}/${enc(flow.id)}`;
  const broken = invalidFile(flow);
  return h("tr", { "data-flow": key },
    h("td", {}, h("a", { href }, flow.id), flow.disabled ? h("span", { class: "chip muted" }, "disabled") : null,
      broken ? h("a", { class: "chip invalid", href: `${href}#editor`,
        title: broken.errors.map((e) => `line ${e.line}: ${e.message}`).join("\n") }, `${broken.file} does not validate`) : null,
      flow.description ? h("div", { class: "muted small" }, flow.description) : null),
    h("td", { class: "wide" }, labelChips(flow.labels)),
    h("td", { class: "wide" }, (flow.triggers || []).map((t) => h("span", {
      class: `chip${t.disabled ? " muted" : ""}`, title: t.type }, `${t.id} · ${shortType(t.type)}`))),
    h("td", {}, execution === undefined ? "…" : execution === null ? h("span", { class: "muted" }, "never run")
      : h("a", { href: `/ui/executions/${enc(execution.id)}`, class: "last" },
        badge(execution.state.current), " ", when(execution.state.startDate))),
    h("td", { class: "right" }, h("button", {
      type: "button", class: "run", disabled: flow.disabled, onclick: () => openRunDialog(flow),
    }, "▶ Run")));
}

filter.addEventListener("input", render);
load();
