// The Logs tab: the execution's lines from GET /api/v1/logs/{id}/follow (stored lines
// first, then new ones live, `event: end` once the execution ended), shown to the
// millisecond, grouped by task run (or not), filtered in the page by text, minimum level
// and task; the Download button takes them all as text.
import { enc, h, stamp } from "./podium.js";

const LEVELS = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"];

// controls: {container, level, task, search, group, runName(entry) -> a task run's name}
export function followLogs(executionId, controls) {
  const { container, level: levelSelect, task: taskSelect, search, group } = controls;
  const runName = controls.runName || ((entry) => entry.taskId);
  let source = null;
  let ended = false;
  const lines = [];  // every entry, in order
  const tasks = new Set();

  function visible(entry) {
    const min = LEVELS.indexOf(levelSelect.value);
    const text = search.value.trim().toLowerCase();
    return LEVELS.indexOf(entry.level || "INFO") >= min
      && (!taskSelect.value || entry.taskId === taskSelect.value)
      && (!text || String(entry.message ?? "").toLowerCase().includes(text));
  }

  function marked(message) {
    const text = search.value.trim();
    if (!text) return message;
    const lower = message.toLowerCase();
    const needle = text.toLowerCase();
    const parts = [];
    let at = 0;
    for (let found = lower.indexOf(needle); found >= 0; found = lower.indexOf(needle, at)) {
      parts.push(message.slice(at, found), h("mark", {}, message.slice(found, found + needle.length)));
      at = found + needle.length;
    }
    parts.push(message.slice(at));
    return parts;
  }

  function line(entry) {
    const level = entry.level || "INFO";
    return h("div", {
      class: `log level-${level.toLowerCase()}`, "data-level": level, "data-task": entry.taskId || "",
      "data-task-run": entry.taskRunId || "",
    },
    h("span", { class: "ts" }, stamp(entry.timestamp)),
    h("span", { class: "level" }, level),
    entry.taskId && !group.checked ? h("span", { class: "task" }, entry.taskId) : null,
    h("span", { class: "message" }, marked(String(entry.message ?? ""))));
  }

  function render() {
    const stick = container.scrollTop + container.clientHeight >= container.scrollHeight - 8;
    const shown = lines.filter(visible);
    if (!shown.length) {
      container.replaceChildren(h("p", { class: "muted empty" }, ended || lines.length ? "No log lines." : "Waiting for log lines…"));
      return;
    }
    if (!group.checked) {
      container.replaceChildren(...shown.map(line));
    } else {
      const groups = new Map();
      for (const entry of shown) {
        const key = entry.taskRunId || "";
        if (!groups.has(key)) groups.set(key, { entry, items: [] });
        groups.get(key).items.push(entry);
      }
      container.replaceChildren(...[...groups.entries()].map(([key, { entry, items }]) => h("details", {
        class: "log-group", open: true, "data-task-run": key, "data-task": entry.taskId || "" },
      h("summary", {}, key ? runName(entry) : "execution",
        h("span", { class: "muted" }, ` · ${items.length} line${items.length > 1 ? "s" : ""}`)),
      items.map(line))));
    }
    if (stick) container.scrollTop = container.scrollHeight;
  }

  let pending = null;
  function soon() {
    // Lines arrive in bursts: draw once per frame, not once per line.
    if (pending) return;
    pending = requestAnimationFrame(() => { pending = null; render(); });
  }

  function add(entry) {
    lines.push(entry);
    if (entry.taskId && !tasks.has(entry.taskId)) {
      tasks.add(entry.taskId);
      taskSelect.append(h("option", { value: entry.taskId }, entry.taskId));
    }
    soon();
  }

  function open() {
    ended = false;
    source = new EventSource(`/api/v1/logs/${enc(executionId)}/follow`);
    source.addEventListener("open", () => {
      // A reconnection replays the stored lines: start over rather than repeat them.
      lines.length = 0;
      soon();
    });
    source.addEventListener("message", (event) => add(JSON.parse(event.data)));
    source.addEventListener("end", () => {
      source.close();
      ended = true;
      soon();
    });
  }

  for (const control of [levelSelect, taskSelect, group]) control.addEventListener("change", render);
  search.addEventListener("input", render);
  render();
  open();
  return {
    // After a restart the execution runs again: follow its new lines.
    reopen() { if (ended) open(); },
  };
}
