// The Gantt chart of an execution: one row per task run, its bar cut into the states of
// its history (created, running, retrying...), and below it one tick per attempt so that
// retries show. Times run from the earliest moment of the execution or any task run (a
// replay keeps task runs from before it started), a running bar grows to now, the wait
// between a failure and a restart is drawn as a wait, and a click on a row shows that
// task run's log lines.
import { TERMINATED, api, enc, h, human, stamp } from "./podium.js";

function ms(iso) { return Date.parse(iso); }

const RESUMING = new Set(["RESTARTED", "RETRYING"]);

function spans(histories, endOfRun) {
  // [(state, from, to, wait)] from a state history; the last state lasts until endOfRun.
  const out = [];
  histories.forEach((entry, i) => {
    const from = ms(entry.date);
    const to = i + 1 < histories.length ? ms(histories[i + 1].date) : endOfRun;
    const next = histories[i + 1]?.state;
    // ended, then restarted: the time in between was spent waiting, not failing
    const wait = TERMINATED.has(entry.state) && next !== undefined && RESUMING.has(next);
    if (to > from || (i + 1 === histories.length && !TERMINATED.has(entry.state))) {
      out.push({ state: entry.state, from, to: Math.max(to, from), wait });
    }
  });
  return out;
}

function coloured(parts, state) {
  // A finished run's last stretch of work takes the colour of how it ended, as in Kestra.
  if (!parts.length) {  // too quick for any stretch to show: a sliver in its end state
    const at = ms(state.histories[0].date);
    return [{ state: state.current, from: at, to: at, wait: false }];
  }
  const last = parts.findLastIndex((p) => p.state === "RUNNING");
  if (TERMINATED.has(state.current) && last >= 0) parts[last] = { ...parts[last], state: state.current };
  return parts;
}

function runEnd(state, now) {
  return TERMINATED.has(state.current) ? ms(state.histories.at(-1).date) : now;
}

const STEPS = [0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 15, 30, 60,
  120, 300, 600, 900, 1800, 3600, 7200, 14400, 21600, 43200, 86400];

export function axis(span) {
  // At most 8 ticks, at a step that reads well: 10ms, 25ms, 1s, 5m...
  const seconds = span / 1000;
  const step = STEPS.find((s) => seconds / s <= 8) || 86400 * Math.ceil(seconds / 86400 / 8);
  const ticks = [];
  for (let i = 0; i * step <= seconds + 1e-9; i += 1) ticks.push(i * step);
  return ticks.map((t) => {
    const at = (t * 1000 / span) * 100;
    return h("span", { class: at > 88 ? "tick end" : "tick", style: `left:${at}%` }, human(t));
  });
}

function legend(container, states, waited) {
  container.replaceChildren(...states.map((state) => h("span", { "data-state": state },
    h("span", { class: `swatch state-${state.toLowerCase()}` }), state.toLowerCase())),
  waited ? h("span", { "data-state": "wait" }, h("span", { class: "swatch wait" }), "waiting for a restart") : null);
}

let openRun = null;  // the task run whose logs are shown under its row
let holder = null;  // its log lines, kept across redraws (a running chart redraws often)
let fetched = 0;
const REFETCH_MS = 2000;

async function showLogs(target, executionId, run) {
  const holder = target;
  if (!holder.children.length) holder.replaceChildren(h("p", { class: "muted" }, "Loading…"));
  try {
    const lines = await api(`/api/v1/logs/${enc(executionId)}?taskRunId=${enc(run.id)}`);
    holder.replaceChildren(...(lines.length ? lines.map((line) => h("div", {
      class: `log level-${(line.level || "INFO").toLowerCase()}` },
    h("span", { class: "ts" }, stamp(line.timestamp)), h("span", { class: "level" }, line.level),
    h("span", { class: "message" }, line.message ?? ""))) : [h("p", { class: "muted" }, "No log line.")]));
  } catch (error) {
    holder.replaceChildren(h("p", { class: "error-text" }, error.message));
  }
}

export function renderGantt(container, execution, { legend: legendBox = null, executionId = execution.id, now = Date.now() } = {}) {
  const runs = execution.taskRunList || [];
  if (!runs.length) {
    container.replaceChildren(h("p", { class: "muted" }, "No task has started yet."));
    if (legendBox) legendBox.replaceChildren();
    return;
  }
  const start = Math.min(ms(execution.state.startDate || execution.state.histories[0].date),
    ...runs.map((r) => ms(r.state.histories[0].date)));
  const end = Math.max(runEnd(execution.state, now),
    ...runs.map((r) => runEnd(r.state, now)), start + 1);
  const span = end - start;
  const pct = (t) => `${(((t - start) / span) * 100).toFixed(3)}%`;
  // A bar at least 0.4% wide, kept inside the chart at its right edge.
  const place = (a, b) => {
    const width = Math.max(((b - a) / span) * 100, 0.4);
    const left = Math.min(((a - start) / span) * 100, 100 - width);
    return `left:${left.toFixed(3)}%;width:${width.toFixed(3)}%`;
  };
  // The duration after its bar, or inside a long bar that reaches the right edge, or
  // before a short one there.
  const tookAt = (from, to) => {
    const left = (from - start) / span;
    const right = (to - start) / span;
    if (right < 0.85) return `left:calc(${pct(to)} + 4px)`;
    if (right - left > 0.12) return `right:calc(${(100 - right * 100).toFixed(3)}% + 4px);color:#fff`;
    return `right:calc(${(100 - left * 100).toFixed(3)}% + 4px)`;
  };
  const depth = new Map();
  for (const run of runs) {
    depth.set(run.id, run.parentTaskRunId ? (depth.get(run.parentTaskRunId) ?? 0) + 1 : 0);
  }
  const seen = new Set();
  let waited = false;
  const rows = runs.flatMap((run) => {
    const stop = runEnd(run.state, now);
    const attempts = run.attempts || [];
    const name = run.value !== null && run.value !== undefined ? `${run.taskId} [${run.value}]` : run.taskId;
    const took = human((stop - ms(run.state.histories[0].date)) / 1000);
    const parts = coloured(spans(run.state.histories, stop), run.state);
    for (const part of parts) {
      if (part.wait) waited = true;
      else seen.add(part.state);
    }
    const row = h("div", {
      class: `gantt-row clickable${openRun === run.id ? " selected" : ""}`, "data-task": run.taskId,
      "data-state": run.state.current, "data-run": run.id, role: "button", tabindex: "0",
      title: "Show this task run's logs",
    },
    h("div", { class: "gantt-label", style: `padding-left:${depth.get(run.id) * 12}px`, title: name },
      h("span", { class: "name" }, name),
      attempts.length > 1 ? h("span", { class: "attempts" }, ` ×${attempts.length} attempts`) : null),
    h("div", { class: "gantt-track" },
      h("div", { class: "bar", title: `${name}: ${run.state.current}, ${took}` },
        parts.map((p) => h("span", {
          class: `seg state-${p.state.toLowerCase()}${p.wait ? " wait" : ""}`,
          style: place(p.from, p.to),
          title: p.wait ? `waiting ${human((p.to - p.from) / 1000)} for a restart` : `${p.state} ${human((p.to - p.from) / 1000)}`,
        }))),
      attempts.length > 1 ? attempts.map((attempt, i) => {
        const histories = attempt.state.histories || [];
        if (!histories.length) return null;
        const from = ms(histories[0].date);
        const to = runEnd(attempt.state, now);
        return h("span", {
          class: `attempt state-${attempt.state.current.toLowerCase()}`,
          style: place(from, to),
          title: `attempt ${i + 1}: ${attempt.state.current}, ${human((to - from) / 1000)}`,
        }, `#${i + 1}`);
      }) : null,
      h("span", { class: "took", style: tookAt(ms(run.state.histories[0].date), stop) }, took)));
    const toggle = () => {
      openRun = openRun === run.id ? null : run.id;
      renderGantt(container, execution, { legend: legendBox, executionId });
    };
    row.addEventListener("click", toggle);
    row.addEventListener("keydown", (event) => { if (event.key === "Enter" || event.key === " ") { event.preventDefault(); toggle(); } });
    if (openRun !== run.id) return [row];
    if (!holder || holder.dataset.logsOf !== run.id) {
      holder = h("div", { class: "logs gantt-logs", "data-logs-of": run.id });
      fetched = 0;
    }
    if (Date.now() - fetched > REFETCH_MS) {
      fetched = Date.now();
      showLogs(holder, executionId, run);
    }
    return [row, holder];
  });
  container.replaceChildren(
    h("div", { class: "gantt-row gantt-axis" }, h("div", { class: "gantt-label muted" }, "Task"),
      h("div", { class: "gantt-track" }, axis(span))),
    ...rows);
  if (legendBox) legend(legendBox, [...seen], waited);
}
