// The Logs page: log lines of every execution (GET /api/v1/logs/search), newest first,
// searched by text, minimum level, namespace, flow and the executions' start time; the
// filters live in the URL so that a search can be shared or reloaded.
import { api, enc, failure, h, q, stamp } from "./podium.js";

const SIZE = 100;
const form = document.getElementById("log-filters");
const results = document.getElementById("log-results");
const pager = document.getElementById("log-pager");
let page = 1;

function fromUrl() {
  const params = new URLSearchParams(location.search);
  for (const [key, value] of params.entries()) {
    const element = form.elements.namedItem(key);
    if (element) element.value = key.endsWith("Date") ? value.slice(0, 16) : value;
  }
  page = Number(params.get("page")) || 1;
}

function filters() {
  const out = {};
  for (const [key, value] of new FormData(form).entries()) {
    if (value) out[key] = key.endsWith("Date") ? new Date(value).toISOString() : value;
  }
  return out;
}

function highlighted(message, text) {
  if (!text) return message;
  const parts = [];
  const lower = message.toLowerCase();
  const needle = text.toLowerCase();
  let at = 0;
  for (let found = lower.indexOf(needle); found >= 0; found = lower.indexOf(needle, at)) {
    parts.push(message.slice(at, found), h("mark", {}, message.slice(found, found + needle.length)));
    at = found + needle.length;
  }
  parts.push(message.slice(at));
  return parts;
}

async function load() {
  const chosen = filters();
  const url = new URL(location.href);
  url.search = q({ ...Object.fromEntries(Object.entries(chosen).map(([k, v]) => [k, k.endsWith("Date") ? form.elements.namedItem(k).value : v])), page: page > 1 ? page : "" });
  history.replaceState(null, "", url);
  let data;
  try {
    data = await api(`/api/v1/logs/search${q({ ...chosen, page, size: SIZE })}`);
  } catch (error) {
    failure(results, error);
    return;
  }
  if (!data.results.length) {
    results.replaceChildren(h("p", { class: "muted empty" }, "No log line matches."));
  } else {
    results.replaceChildren(...data.results.map((line) => h("div", {
      class: `log level-${(line.level || "INFO").toLowerCase()}`, "data-level": line.level,
    },
    h("span", { class: "ts" }, stamp(line.timestamp)),
    h("span", { class: "level" }, line.level),
    h("a", { class: "task", href: `/ui/executions/${enc(line.executionId)}#logs` },
      `${line.namespace}.${line.flowId}${line.taskId ? ` · ${line.taskId}` : ""}`),
    h("span", { class: "message" }, highlighted(line.message ?? "", chosen.q)))));
  }
  const pages = Math.max(1, Math.ceil(data.total / SIZE));
  pager.replaceChildren(
    h("button", { type: "button", disabled: page <= 1, onclick: () => { page -= 1; load(); } }, "‹ Newer"),
    h("span", { class: "muted", id: "log-total" }, `Page ${page} of ${pages} · ${data.total} lines`),
    h("button", { type: "button", disabled: page >= pages, onclick: () => { page += 1; load(); } }, "Older ›"));
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  page = 1;
  load();
});
fromUrl();
load();
