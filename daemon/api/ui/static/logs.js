// The Logs tab: the execution's lines from GET /api/v1/logs/{id}/follow (stored lines
// first, then new ones live, `event: end` once the execution ended), filtered in the page
// by minimum level and task.
import { enc, h, when } from "./podium.js";

const LEVELS = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"];

export function followLogs(executionId, container, levelSelect, taskSelect) {
  let source = null;
  let ended = false;
  const tasks = new Set();

  function visible(line) {
    const min = LEVELS.indexOf(levelSelect.value);
    return LEVELS.indexOf(line.dataset.level) >= min
      && (!taskSelect.value || line.dataset.task === taskSelect.value);
  }

  function refilter() {
    for (const line of container.children) {
      if (line.classList.contains("log")) line.hidden = !visible(line);
    }
    empty();
  }

  function empty() {
    const any = [...container.children].some((c) => c.classList.contains("log") && !c.hidden);
    let note = container.querySelector(".empty");
    if (any && note) note.remove();
    if (!any && !note) {
      note = h("p", { class: "muted empty" }, ended ? "No log lines." : "Waiting for log lines…");
      container.append(note);
    } else if (note) {
      note.textContent = ended ? "No log lines." : "Waiting for log lines…";
    }
  }

  function add(entry) {
    const level = entry.level || "INFO";
    const line = h("div", {
      class: `log level-${level.toLowerCase()}`, "data-level": level, "data-task": entry.taskId || "",
    },
    h("span", { class: "ts" }, when(entry.timestamp)),
    h("span", { class: "level" }, level),
    entry.taskId ? h("span", { class: "task" }, entry.taskId) : null,
    h("span", { class: "message" }, entry.message ?? ""));
    line.hidden = !visible(line);
    const stick = container.scrollTop + container.clientHeight >= container.scrollHeight - 8;
    container.append(line);
    if (stick) container.scrollTop = container.scrollHeight;
    if (entry.taskId && !tasks.has(entry.taskId)) {
      tasks.add(entry.taskId);
      taskSelect.append(h("option", { value: entry.taskId }, entry.taskId));
    }
    empty();
  }

  function open() {
    ended = false;
    source = new EventSource(`/api/v1/logs/${enc(executionId)}/follow`);
    source.addEventListener("open", () => {
      // A reconnection replays the stored lines: start over rather than repeat them.
      for (const line of [...container.querySelectorAll(".log")]) line.remove();
      empty();
    });
    source.addEventListener("message", (event) => add(JSON.parse(event.data)));
    source.addEventListener("end", () => {
      source.close();
      ended = true;
      empty();
    });
  }

  levelSelect.addEventListener("change", refilter);
  taskSelect.addEventListener("change", refilter);
  empty();
  open();
  return {
    // After a restart the execution runs again: follow its new lines.
    reopen() { if (ended) open(); },
  };
}
