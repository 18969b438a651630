// The dashboard: executions of the chosen period (24 hours, 7 or 30 days, kept in the
// URL) by state over time, the success ratio, durations, the latest failures and what
// runs or waits now. Counts come from POST /api/v1/stats/executions/daily; the charts are
// Chart.js (bundled in charts.bundle.js, never fetched from a CDN).
import { Chart } from "./charts.bundle.js";
import { api, badge, enc, failure, h, human, q, when } from "./podium.js";

const RANGES = { "24h": 24 * 3600e3, "7d": 7 * 86400e3, "30d": 30 * 86400e3 };
const COLOURS = {
  SUCCESS: "#16a34a", WARNING: "#eab308", FAILED: "#dc2626", KILLED: "#475569",
  RUNNING: "#3b82f6", PAUSED: "#8b5cf6", QUEUED: "#a78bfa", CREATED: "#94a3b8",
  RETRYING: "#f59e0b", CANCELLED: "#9ca3af", KILLING: "#fb7185", RESTARTED: "#f59e0b",
  SKIPPED: "#cbd5e1",
};
const charts = {};

function range() {
  const chosen = new URLSearchParams(location.search).get("range");
  return chosen in RANGES ? chosen : "7d";
}

function label(period) {
  const date = new Date(period.startDate);
  const pad = (n) => String(n).padStart(2, "0");
  return period.groupBy === "hour" ? `${pad(date.getHours())}:00`
    : `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
}

function draw(name, config) {
  if (charts[name]) charts[name].destroy();
  charts[name] = new Chart(document.getElementById(name), {
    ...config,
    options: { responsive: true, maintainAspectRatio: false, animation: false, ...config.options },
  });
}

function card(title, value, id) {
  return h("div", { class: "card", "data-card": id }, h("div", { class: "label" }, title),
    h("div", { class: "value" }, value));
}

async function load() {
  const chosen = range();
  for (const button of document.querySelectorAll("[data-range]")) {
    button.classList.toggle("active", button.dataset.range === chosen);
    button.setAttribute("aria-pressed", String(button.dataset.range === chosen));
  }
  const end = new Date();
  const start = new Date(end.getTime() - RANGES[chosen]);
  let periods;
  let running;
  let queued;
  let failed;
  try {
    [periods, running, queued, failed] = await Promise.all([
      api("/api/v1/stats/executions/daily", { method: "POST", type: "application/json",
        body: JSON.stringify({ startDate: start.toISOString(), endDate: end.toISOString() }) }),
      api(`/api/v1/executions/search${q({ state: ["RUNNING", "PAUSED", "RETRYING", "KILLING"], size: 10 })}`),
      api(`/api/v1/executions/search${q({ state: ["QUEUED", "CREATED"], size: 10 })}`),
      api(`/api/v1/executions/search${q({ state: "FAILED", size: 10 })}`),
    ]);
  } catch (error) {
    failure(document.getElementById("cards"), error);
    return;
  }
  const totals = {};
  for (const period of periods) {
    for (const [state, count] of Object.entries(period.executionCounts)) totals[state] = (totals[state] || 0) + count;
  }
  const total = Object.values(totals).reduce((a, b) => a + b, 0);
  const ended = (totals.SUCCESS || 0) + (totals.WARNING || 0) + (totals.FAILED || 0) + (totals.KILLED || 0);
  const ratio = ended ? `${Math.round(((totals.SUCCESS || 0) + (totals.WARNING || 0)) / ended * 100)}%` : "–";
  const durations = periods.reduce((acc, p) => ({ sum: acc.sum + p.duration.sum, count: acc.count + p.duration.count }), { sum: 0, count: 0 });
  document.getElementById("cards").replaceChildren(
    card("Executions", String(total), "total"),
    card("Success ratio", ratio, "ratio"),
    card("Failed", String(totals.FAILED || 0), "failed"),
    card("Running now", String(running.total), "running"),
    card("Queued now", String(queued.total), "queued"),
    card("Average duration", durations.count ? human(durations.sum / durations.count) : "–", "duration"));

  const labels = periods.map(label);
  const shown = Object.keys(COLOURS).filter((state) => totals[state]);
  draw("chart-states", {
    type: "bar",
    data: { labels, datasets: shown.map((state) => ({ label: state, backgroundColor: COLOURS[state],
      data: periods.map((p) => p.executionCounts[state] || 0) })) },
    options: { scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true, ticks: { precision: 0 } } },
      plugins: { legend: { position: "bottom" } } },
  });
  draw("chart-ratio", {
    type: "doughnut",
    data: { labels: shown, datasets: [{ data: shown.map((s) => totals[s]), backgroundColor: shown.map((s) => COLOURS[s]) }] },
    options: { plugins: { legend: { position: "bottom" } } },
  });
  draw("chart-durations", {
    type: "line",
    data: { labels, datasets: [
      { label: "average (s)", borderColor: "#6d28d9", backgroundColor: "rgba(109,40,217,.15)", fill: true,
        data: periods.map((p) => (p.duration.count ? p.duration.avg : null)), spanGaps: true },
      { label: "longest (s)", borderColor: "#dc2626", data: periods.map((p) => (p.duration.count ? p.duration.max : null)), spanGaps: true },
    ] },
    options: { scales: { y: { beginAtZero: true } }, plugins: { legend: { position: "bottom" } } },
  });

  const failures = document.getElementById("failures");
  failures.replaceChildren(failed.results.length ? h("div", { class: "table-wrap" }, h("table", { class: "failures" },
    h("tbody", {}, failed.results.map((e) => h("tr", { "data-id": e.id },
      h("td", {}, h("a", { href: `/ui/executions/${enc(e.id)}` }, e.id.slice(0, 8))),
      h("td", {}, `${e.namespace}.${e.flowId}`),
      h("td", { class: "wide" }, when(e.state.endDate || e.state.startDate)),
      h("td", { class: "small error-text wide" }, e.error || "")))))) : h("p", { class: "muted" }, "No failed execution."));
  const now = [...running.results, ...queued.results];
  document.getElementById("running").replaceChildren(now.length ? h("div", { class: "table-wrap" }, h("table", {},
    h("tbody", {}, now.map((e) => h("tr", {},
      h("td", {}, h("a", { href: `/ui/executions/${enc(e.id)}` }, e.id.slice(0, 8))),
      h("td", {}, `${e.namespace}.${e.flowId}`), h("td", {}, badge(e.state.current))))))) : h("p", { class: "muted" }, "Nothing runs or waits."));
}

for (const button of document.querySelectorAll("[data-range]")) {
  button.addEventListener("click", () => {
    const url = new URL(location.href);
    url.searchParams.set("range", button.dataset.range);
    history.replaceState(null, "", url);
    load();
  });
}
load();
