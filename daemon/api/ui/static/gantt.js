// The Gantt chart of an execution: one row per task run, its bar cut into the states of
// its history (created, running, retrying...), and below it one tick per attempt so that
// retries show. Times are relative to the execution's start; a running bar grows to now.
import { TERMINATED, h, human } from "./podium.js";

function ms(iso) { return Date.parse(iso); }

function spans(histories, endOfRun) {
  // [(state, from, to)] from a state history; the last state lasts until endOfRun.
  const out = [];
  histories.forEach((entry, i) => {
    const from = ms(entry.date);
    const to = i + 1 < histories.length ? ms(histories[i + 1].date) : endOfRun;
    if (to > from || (i + 1 === histories.length && !TERMINATED.has(entry.state))) {
      out.push({ state: entry.state, from, to: Math.max(to, from) });
    }
  });
  return out;
}

function coloured(parts, state) {
  // A finished run's last stretch of work takes the colour of how it ended, as in Kestra.
  if (!parts.length) {  // too quick for any stretch to show: a sliver in its end state
    const at = ms(state.histories[0].date);
    return [{ state: state.current, from: at, to: at }];
  }
  const last = parts.findLastIndex((p) => p.state === "RUNNING");
  if (TERMINATED.has(state.current) && last >= 0) parts[last] = { ...parts[last], state: state.current };
  return parts;
}

function runEnd(state, now) {
  return TERMINATED.has(state.current) ? ms(state.histories.at(-1).date) : now;
}

function axis(span) {
  const steps = [0.1, 0.25, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200];
  const step = steps.find((s) => span / 1000 / s <= 8) || 3600 * 6;
  const ticks = [];
  for (let t = 0; t <= span / 1000 + 1e-9; t += step) ticks.push(t);
  return ticks.map((t) => h("span", { class: "tick", style: `left:${(t * 1000 / span) * 100}%` },
    human(t)));
}

export function renderGantt(container, execution, now = Date.now()) {
  const runs = execution.taskRunList || [];
  if (!runs.length) {
    container.replaceChildren(h("p", { class: "muted" }, "No task has started yet."));
    return;
  }
  const start = ms(execution.state.startDate);
  const end = Math.max(runEnd(execution.state, now),
    ...runs.map((r) => runEnd(r.state, now)), start + 1);
  const span = end - start;
  const pct = (t) => `${(((t - start) / span) * 100).toFixed(3)}%`;
  const width = (a, b) => `${Math.max(((b - a) / span) * 100, 0.4).toFixed(3)}%`;
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
  const rows = runs.map((run) => {
    const stop = runEnd(run.state, now);
    const attempts = run.attempts || [];
    const name = run.value !== null && run.value !== undefined ? `${run.taskId} [${run.value}]` : run.taskId;
    const took = human((stop - ms(run.state.histories[0].date)) / 1000);
    return h("div", { class: "gantt-row", "data-task": run.taskId, "data-state": run.state.current },
      h("div", { class: "gantt-label", style: `padding-left:${depth.get(run.id) * 12}px`, title: name },
        h("span", { class: "name" }, name),
        attempts.length > 1 ? h("span", { class: "attempts" }, ` ×${attempts.length} attempts`) : null),
      h("div", { class: "gantt-track" },
        h("div", { class: "bar", title: `${name}: ${run.state.current}, ${took}` },
          coloured(spans(run.state.histories, stop), run.state).map((p) => h("span", {
            class: `seg state-${p.state.toLowerCase()}`, style: `left:${pct(p.from)};width:${width(p.from, p.to)}`,
            title: `${p.state} ${human((p.to - p.from) / 1000)}`,
          }))),
        attempts.length > 1 ? attempts.map((attempt, i) => {
          const histories = attempt.state.histories;
          const from = ms(histories[0].date);
          const to = runEnd(attempt.state, now);
          return h("span", {
            class: `attempt state-${attempt.state.current.toLowerCase()}`,
            style: `left:${pct(from)};width:${width(from, to)}`,
            title: `attempt ${i + 1}: ${attempt.state.current}, ${human((to - from) / 1000)}`,
          }, `#${i + 1}`);
        }) : null,
        h("span", { class: "took", style: tookAt(ms(run.state.histories[0].date), stop) }, took)));
  });
  container.replaceChildren(
    h("div", { class: "gantt-row gantt-axis" }, h("div", { class: "gantt-label muted" }, "Task"),
      h("div", { class: "gantt-track" }, axis(span))),
    ...rows);
}
