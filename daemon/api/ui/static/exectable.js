// A page of executions (GET /api/v1/executions/search) as a table, with a pager. Used by
// the Executions page and by a flow's Executions tab; refreshes while any row is running.
import { TERMINATED, api, badge, elapsed, enc, failure, h, human, labelChips, q, when } from "./podium.js";

const SIZE = 25;
const REFRESH_MS = 2000;

export function executionsTable(container, filters) {
  let page = 1;
  let timer = null;

  async function load() {
    clearTimeout(timer);
    let data;
    try {
      data = await api(`/api/v1/executions/search${q({ ...filters, page, size: SIZE })}`);
    } catch (error) {
      failure(container, error);
      return;
    }
    const rows = data.results || [];
    if (!rows.length) {
      container.replaceChildren(h("p", { class: "muted" }, Object.keys(filters).length
        ? "No execution matches these filters." : "No executions yet."));
      return;
    }
    const pages = Math.max(1, Math.ceil((data.total || 0) / SIZE));
    container.replaceChildren(
      h("div", { class: "table-wrap" }, h("table", { class: "executions" },
        h("thead", {}, h("tr", {}, [["Id"], ["Start"], ["Duration", "wide"], ["Namespace", "wide"],
          ["Flow"], ["Labels", "wide"], ["State"]].map(([c, wide]) => h("th", { class: wide }, c)))),
        h("tbody", {}, rows.map(row)))),
      h("div", { class: "pager" },
        h("button", { type: "button", disabled: page <= 1, onclick: () => { page -= 1; load(); } }, "‹ Newer"),
        h("span", { class: "muted" }, `Page ${page} of ${pages} · ${data.total} executions`),
        h("button", { type: "button", disabled: page >= pages, onclick: () => { page += 1; load(); } }, "Older ›")));
    if (rows.some((r) => !TERMINATED.has(r.state.current))) timer = setTimeout(load, REFRESH_MS);
  }

  function row(execution) {
    const link = `/ui/executions/${enc(execution.id)}`;
    return h("tr", { class: `state-row-${execution.state.current.toLowerCase()}`, "data-id": execution.id },
      h("td", { class: "mono" }, h("a", { href: link }, execution.id.slice(0, 8))),
      h("td", {}, when(execution.state.startDate)),
      h("td", { class: "wide" }, human(elapsed(execution.state))),
      h("td", { class: "wide" }, execution.namespace),
      h("td", {}, h("a", { href: `/ui/flows/${enc(execution.namespace)}/${enc(execution.flowId)}` },
        execution.flowId)),
      h("td", { class: "wide" }, labelChips(execution.labels)),
      h("td", {}, badge(execution.state.current)));
  }

  return {
    load,
    filter(next) { filters = next; page = 1; load(); },
    stop() { clearTimeout(timer); },
  };
}
