// Plug-in documentation, generated from the same JSON Schema as the editor's completion
// (GET /api/v1/plugins/schemas/flow): every task, trigger and condition type with its
// description, its properties (type, default, required, description) and an example;
// searchable by type name, property and text.
import { FlowSchema, describeType, typesOf } from "./flowschema.js";
import { api, enc, failure, h } from "./podium.js";

const KINDS = [["tasks", "Tasks"], ["triggers", "Triggers"], ["conditions", "Conditions"]];
const index = document.getElementById("plugin-index");
const doc = document.getElementById("plugin-doc");
const filter = document.getElementById("plugin-filter");
let schema = null;
let entries = [];

function yamlOf(value, indent = "") {
  if (Array.isArray(value)) {
    if (!value.length) return "[]";
    return value.map((v) => `\n${indent}- ${yamlOf(v, `${indent}  `).trimStart()}`).join("");
  }
  if (value && typeof value === "object") {
    const keys = Object.entries(value);
    if (!keys.length) return "{}";
    return keys.map(([k, v], i) => {
      const inner = yamlOf(v, `${indent}  `);
      const nested = v && typeof v === "object" && Object.keys(v).length;
      return `${i || indent ? `\n${indent}` : ""}${k}:${nested ? inner : ` ${inner}`}`;
    }).join("");
  }
  return typeof value === "string" && /^[\w./-]+$/.test(value) ? value : JSON.stringify(value);
}

function collect() {
  entries = [];
  for (const [kind, label] of KINDS) {
    for (const option of schema.alternatives(schema.definitions[kind] || {})) {
      const types = typesOf(option);
      if (!types.length) continue;
      const text = [types.join(" "), option.description || "", ...Object.entries(option.properties || {})
        .map(([name, p]) => `${name} ${p.description || ""}`)].join(" ").toLowerCase();
      entries.push({ kind, label, type: types[0], names: types, schema: option, text });
    }
  }
}

function renderIndex() {
  const text = filter.value.trim().toLowerCase();
  const shown = entries.filter((e) => !text || e.text.includes(text));
  const chosen = document.body.dataset.type;
  index.replaceChildren(...KINDS.flatMap(([kind, label]) => {
    const members = shown.filter((e) => e.kind === kind);
    if (!members.length) return [];
    return [h("li", { class: "muted", role: "presentation" }, label),
      ...members.map((e) => h("li", { class: e.type === chosen ? "active" : "", "data-type": e.type, title: e.type },
        h("a", { href: `/ui/plugins/${enc(e.type)}` }, e.schema.title || e.type),
        h("span", { class: "muted small" }, ` ${e.type.split(".").slice(0, -1).join(".")}`)))];
  }));
  if (!shown.length) index.replaceChildren(h("li", { class: "muted" }, "No plugin matches."));
  if (!chosen) {
    doc.replaceChildren(h("p", {}, `${entries.length} plugin types. Pick one, or search for a word: `
      + "a type, a property or something it does."),
    h("ul", { class: "plugin-list" }, shown.map((e) => h("li", { "data-type": e.type },
      h("a", { href: `/ui/plugins/${enc(e.type)}` }, e.schema.title || e.type),
      h("div", { class: "muted small" }, (e.schema.description || "").split("\n")[0])))));
  }
}

function renderOne(type) {
  const entry = entries.find((e) => e.names.includes(type));
  if (!entry) {
    doc.replaceChildren(h("p", { class: "error-text" }, `No plugin of type ${type}.`));
    return;
  }
  const object = entry.schema;
  document.getElementById("plugin-title").textContent = object.title || type;
  document.title = `${object.title || type} · podium`;
  const required = new Set(object.required || []);
  const properties = Object.entries(object.properties || {}).filter(([, p]) => !p.deprecated);
  doc.replaceChildren(
    h("p", { class: "mono small" }, entry.type),
    entry.names.length > 1 ? h("p", { class: "muted small" }, `Also accepted: ${entry.names.slice(1).join(", ")}`) : null,
    h("p", { class: "description" }, object.description || ""),
    h("h3", {}, "Properties"),
    h("div", { class: "table-wrap" }, h("table", { class: "props" },
      h("thead", {}, h("tr", {}, ["Name", "Type", "Default", "Description"].map((c) => h("th", {}, c)))),
      h("tbody", {}, properties.map(([name, p]) => h("tr", { "data-property": name },
        h("td", { class: "mono" }, name, required.has(name) || p.$required ? h("span", { class: "req" }, " *") : null),
        h("td", { class: "small" }, describeType(schema, p)),
        h("td", { class: "mono small" }, p.default === undefined ? "" : JSON.stringify(p.default)),
        h("td", { class: "small" }, p.description || "")))))),
    h("h3", {}, "Example"),
    ...(object.examples || []).map((example) => h("pre", { class: "example" }, yamlOf(example).trim())));
}

async function main() {
  try {
    schema = new FlowSchema(await api("/api/v1/plugins/schemas/flow"));
  } catch (error) {
    failure(doc, error);
    return;
  }
  collect();
  filter.value = new URLSearchParams(location.search).get("q") || "";
  renderIndex();
  if (document.body.dataset.type) renderOne(document.body.dataset.type);
}

filter.addEventListener("input", () => {
  const url = new URL(location.href);
  if (filter.value) url.searchParams.set("q", filter.value); else url.searchParams.delete("q");
  history.replaceState(null, "", url);
  renderIndex();
});
main();
