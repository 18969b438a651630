// The Outputs tab: the flow's outputs, then each task run's outputs as a tree. A value
// that is a kestra:// URI is a file of the execution: downloadable, and previewed here
// (CSV as a table, JSON, text, images) from GET .../file/preview. Above them, an
// expression box renders `{{ ... }}` against the execution (POST .../eval).
import { api, enc, h, q } from "./podium.js";

function preview(executionId, uri) {
  const box = document.getElementById("preview");
  box.hidden = false;
  box.replaceChildren(h("p", { class: "muted" }, "Loading the preview…"));
  api(`/api/v1/executions/${enc(executionId)}/file/preview${q({ path: uri })}`).then((found) => {
    const name = uri.split("/").at(-1);
    const head = h("h3", {}, `Preview of ${name}`, h("button", { type: "button", class: "small", style: "margin-left:8px",
      onclick: () => { box.hidden = true; } }, "Close"));
    const more = found.truncated ? h("p", { class: "muted small" }, "The file goes on: only its beginning is shown.") : null;
    let body;
    if (found.type === "LIST") {
      const rows = found.content;
      const columns = [...new Set(rows.flatMap((r) => (r && typeof r === "object" ? Object.keys(r) : ["value"])))];
      body = h("div", { class: "table-wrap preview-table" }, h("table", { class: "preview-rows" },
        h("thead", {}, h("tr", {}, columns.map((c) => h("th", {}, c)))),
        h("tbody", {}, rows.map((r) => h("tr", {}, columns.map((c) => {
          const value = r && typeof r === "object" ? r[c] : r;
          return h("td", { class: "mono small" }, value === undefined || value === null ? "" : typeof value === "object" ? JSON.stringify(value) : String(value));
        }))))));
    } else if (found.type === "JSON") {
      body = h("pre", { class: "preview-json" }, JSON.stringify(found.content, null, 2));
    } else if (found.type === "IMAGE") {
      body = h("img", { src: `data:${found.mimeType};base64,${found.content}`, alt: name });
    } else if (found.type === "TEXT") {
      body = h("pre", { class: "preview-text" }, found.content);
    } else {
      body = h("p", { class: "muted" }, "No preview for this kind of file: download it.");
    }
    box.replaceChildren(head, body, more);
    box.scrollIntoView({ block: "nearest" });
  }).catch((error) => {
    box.replaceChildren(h("p", { class: "error-text" }, error.message));
  });
}

function value(executionId, item) {
  if (typeof item === "string" && item.startsWith("kestra://")) {
    const name = item.split("/").at(-1);
    return h("span", { class: "file" },
      h("a", { href: `/api/v1/executions/${enc(executionId)}/file?path=${enc(item)}`, download: name,
        class: "download" }, `⬇ ${name}`),
      " ",
      h("button", { type: "button", class: "preview-button small", onclick: () => preview(executionId, item) }, "Preview"),
      h("span", { class: "muted mono small" }, ` ${item}`));
  }
  if (item !== null && typeof item === "object") return tree(executionId, item);
  return h("span", { class: `scalar ${item === null ? "null" : typeof item}` }, JSON.stringify(item));
}

function tree(executionId, object) {
  const entries = Array.isArray(object) ? object.map((v, i) => [String(i), v]) : Object.entries(object);
  if (!entries.length) return h("span", { class: "muted" }, Array.isArray(object) ? "[]" : "{}");
  return h("ul", { class: "tree" }, entries.map(([key, item]) => {
    const nested = item !== null && typeof item === "object";
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
  const select = document.getElementById("expression-task");
  if (select && select.options.length !== (execution.taskRunList || []).length + 1) {
    const chosen = select.value;
    select.replaceChildren(h("option", { value: "" }, "the execution"),
      ...(execution.taskRunList || []).map((r) => h("option", { value: r.id }, `task run ${r.taskId}${r.value ? ` [${r.value}]` : ""}`)));
    select.value = chosen;
  }
}

export function setupExpression(executionId) {
  const form = document.getElementById("expression-form");
  const input = document.getElementById("expression");
  const result = document.getElementById("expression-result");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!input.value.trim()) return;
    const run = document.getElementById("expression-task").value;
    try {
      const found = await api(`/api/v1/executions/${enc(executionId)}/eval${run ? `/${enc(run)}` : ""}`,
        { method: "POST", body: input.value, type: "text/plain" });
      result.className = found.error ? "mono error-text" : "mono";
      result.textContent = found.error ? found.error : found.result;
    } catch (error) {
      result.className = "mono error-text";
      result.textContent = error.message;
    }
    result.hidden = false;
  });
}
