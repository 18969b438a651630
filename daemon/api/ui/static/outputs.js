// The Outputs tab: the flow's outputs, then each task run's outputs as a tree. A value
// that is a kestra:// URI is a file of the execution, downloadable from the API.
import { enc, h } from "./podium.js";

function value(executionId, item) {
  if (typeof item === "string" && item.startsWith("kestra://")) {
    const name = item.split("/").at(-1);
    return h("span", { class: "file" },
      h("a", { href: `/api/v1/executions/${enc(executionId)}/file?path=${enc(item)}`, download: name,
        class: "download" }, `⬇ ${name}`),
      h("span", { class: "muted mono small" }, ` ${item}`));
  }
  if (item !== null && typeof item === "object") return tree(executionId, item);
  return h("span", { class: `scalar ${item === null ? "null" : typeof item}` }, JSON.stringify(item));
}

function tree(executionId, object) {
  const entries = Array.isArray(object) ? object.map((v, i) => [String(i), v]) : Object.entries(object);
  if (!entries.length) return h("span", { class: "muted" }, Array.isArray(object) ? "[]" : "{}");
  return h("ul", { class: "tree" }, entries.map(([key, item]) => {
    const nested = item !== null && typeof item === "object" && !(typeof item === "string");
    if (nested) {
      return h("li", {}, h("details", { open: true },
        h("summary", {}, h("span", { class: "key" }, key), h("span", { class: "muted" },
          Array.isArray(item) ? ` [${item.length}]` : ` {${Object.keys(item).length}}`)),
        tree(executionId, item)));
    }
    return h("li", { "data-key": key }, h("span", { class: "key" }, key), ": ", value(executionId, item));
  }));
}

export function renderOutputs(container, execution) {
  const runs = (execution.taskRunList || []).filter((r) => r.outputs && Object.keys(r.outputs).length);
  const sections = [];
  if (execution.outputs && Object.keys(execution.outputs).length) {
    sections.push(h("section", { class: "outputs flow-outputs" }, h("h3", {}, "Flow outputs"),
      tree(execution.id, execution.outputs)));
  }
  for (const run of runs) {
    const name = run.value !== null && run.value !== undefined ? `${run.taskId} [${run.value}]` : run.taskId;
    sections.push(h("details", { class: "outputs", open: true, "data-task": run.taskId },
      h("summary", {}, h("strong", {}, name)), tree(execution.id, run.outputs)));
  }
  container.replaceChildren(...(sections.length ? sections
    : [h("p", { class: "muted" }, "No outputs yet.")]));
}
