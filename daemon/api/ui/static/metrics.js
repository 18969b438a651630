// The Metrics tab: what the execution's tasks reported (scripts' Kestra.counter / timer /
// gauge, `::{"metrics": [...]}::` lines), from GET /api/v1/metrics/{executionId}: one row
// per metric, grouped by task run in the order the runs started.
import { api, enc, failure, fill, h } from "./podium.js";

const PAGE = 1000;
let latest = null;
let busy = false;
let again = false;

// Called on every change of the execution while the tab is shown: one request at a time,
// and one more after it when something changed meanwhile.
export function renderMetrics(container, execution) {
  latest = execution;
  if (busy) {
    again = true;
    return;
  }
  busy = true;
  load(container, execution).finally(() => {
    busy = false;
    if (again) {
      again = false;
      renderMetrics(container, latest);
    }
  });
}

async function load(container, execution) {
  const entries = [];
  try {
    for (let page = 1; ; page += 1) {
      const found = await api(`/api/v1/metrics/${enc(execution.id)}?page=${page}&size=${PAGE}`);
      entries.push(...found.results);
      if (entries.length >= found.total || !found.results.length) break;
    }
  } catch (error) {
    failure(container, error);
    return;
  }
  if (!entries.length) {
    fill(container, h("p", { class: "muted" }, "No metrics. A script task reports them with "
      + "Kestra.counter() or Kestra.timer() (a ::{\"metrics\": [...]}:: line)."));
    return;
  }
  const runs = execution.taskRunList || [];
  const order = new Map(runs.map((run, index) => [run.id, index]));
  const byId = new Map(runs.map((run) => [run.id, run]));
  const sorted = entries.map((entry, index) => [entry, index])
    .sort(([a, i], [b, j]) => (order.get(a.taskRunId) ?? runs.length) - (order.get(b.taskRunId) ?? runs.length) || i - j)
    .map(([entry]) => entry);
  fill(container, h("div", { class: "table-wrap" }, h("table", { class: "metrics" },
    h("thead", {}, h("tr", {}, ["Task", "Name", "Type", "Value", "Tags"].map((title) => h("th", {}, title)))),
    h("tbody", {}, sorted.map((entry) => row(entry, byId.get(entry.taskRunId)))))));
}

function row(entry, run) {
  const task = run && run.value !== null && run.value !== undefined
    ? `${entry.taskId} [${run.value}]` : entry.taskId || "-";
  const tags = Object.entries(entry.tags || {});
  return h("tr", { "data-task": entry.taskId, "data-name": entry.name },
    h("td", { class: "mono" }, task),
    h("td", { class: "mono" }, entry.name),
    h("td", {}, entry.type),
    h("td", { class: "mono number" }, value(entry)),
    h("td", {}, tags.length ? tags.map(([key, text]) => h("span", { class: "chip" }, `${key}: ${text}`))
      : h("span", { class: "muted" }, "none")));
}

function value(entry) {
  const number = Number(entry.value);
  const text = Number.isInteger(number) ? String(number) : String(Number(number.toPrecision(6)));
  return entry.type === "timer" ? `${text} s` : text;
}
