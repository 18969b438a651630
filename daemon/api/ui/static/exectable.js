// A page of executions (GET /api/v1/executions/search) as a table, with a pager. Used by
// the Executions page (with bulk actions on the rows ticked) and a flow's Executions tab;
// refreshes while any row is running.
import { TERMINATED, api, badge, confirmAction, elapsed, enc, failure, h, human, labelChips, q, toast, when } from "./podium.js";

const SIZE = 25;
const REFRESH_MS = 2000;

const BULK = {
  kill: { label: "Kill", danger: true, when: (e) => !TERMINATED.has(e.state.current) && e.state.current !== "KILLING",
    call: (id) => api(`/api/v1/executions/${enc(id)}/kill`, { method: "DELETE" }) },
  restart: { label: "Restart", when: (e) => ["FAILED", "KILLED"].includes(e.state.current),
    call: (id) => api(`/api/v1/executions/${enc(id)}/restart`, { method: "POST" }) },
  replay: { label: "Replay", when: (e) => TERMINATED.has(e.state.current),
    call: (id) => api(`/api/v1/executions/${enc(id)}/replay`, { method: "POST" }) },
  delete: { label: "Delete", danger: true, when: (e) => TERMINATED.has(e.state.current),
    call: (id) => api(`/api/v1/executions/${enc(id)}`, { method: "DELETE" }) },
};

export function executionsTable(container, filters, { bulk = false } = {}) {
  let page = 1;
  let timer = null;
  let rows = [];
  const selected = new Set();

  async function load() {
    clearTimeout(timer);
    let data;
    try {
      data = await api(`/api/v1/executions/search${q({ ...filters, page, size: SIZE })}`);
    } catch (error) {
      failure(container, error);
      return;
    }
    rows = data.results || [];
    for (const id of [...selected]) if (!rows.some((r) => r.id === id)) selected.delete(id);
    if (!rows.length) {
      container.replaceChildren(h("p", { class: "muted" }, Object.keys(filters).length
        ? "No execution matches these filters." : "No executions yet."));
      return;
    }
    const pages = Math.max(1, Math.ceil((data.total || 0) / SIZE));
    const all = h("input", { type: "checkbox", "aria-label": "Select all", checked: rows.every((r) => selected.has(r.id)),
      onchange: (event) => { for (const r of rows) { if (event.target.checked) selected.add(r.id); else selected.delete(r.id); } load(); } });
    container.replaceChildren(
      bulk ? bulkBar() : null,
      h("div", { class: "table-wrap" }, h("table", { class: "executions" },
        h("thead", {}, h("tr", {}, bulk ? h("th", {}, all) : null, [["Id"], ["Start"], ["Duration", "wide"], ["Namespace", "wide"],
          ["Flow"], ["Labels", "wide"], ["State"]].map(([c, wide]) => h("th", { class: wide }, c)))),
        h("tbody", {}, rows.map(row)))),
      h("div", { class: "pager" },
        h("button", { type: "button", disabled: page <= 1, onclick: () => { page -= 1; load(); } }, "‹ Newer"),
        h("span", { class: "muted" }, `Page ${page} of ${pages} · ${data.total} executions`),
        h("button", { type: "button", disabled: page >= pages, onclick: () => { page += 1; load(); } }, "Older ›")));
    if (rows.some((r) => !TERMINATED.has(r.state.current))) timer = setTimeout(load, REFRESH_MS);
  }

  function bulkBar() {
    const chosen = rows.filter((r) => selected.has(r.id));
    return h("div", { class: "bulk", id: "bulk-actions" },
      h("span", { class: "muted" }, chosen.length ? `${chosen.length} selected` : "Tick executions to act on several at once"),
      Object.entries(BULK).map(([name, action]) => h("button", {
        type: "button", class: action.danger ? "danger" : null, "data-bulk": name,
        disabled: !chosen.some(action.when), onclick: () => runBulk(action, chosen.filter(action.when)),
      }, action.label)),
      h("button", { type: "button", "data-bulk": "labels", disabled: !chosen.some((e) => TERMINATED.has(e.state.current)),
        onclick: () => bulkLabels(chosen.filter((e) => TERMINATED.has(e.state.current))) }, "Add labels"));
  }

  async function runBulk(action, targets) {
    const count = `${targets.length} execution${targets.length > 1 ? "s" : ""}`;
    if (!await confirmAction(`${action.label} ${count}?`, `${action.label} applies to: ${targets.map((t) => t.id.slice(0, 8)).join(", ")}.`,
      action.label, Boolean(action.danger))) return;
    const failed = [];
    for (const target of targets) {
      try {
        await action.call(target.id);
      } catch (error) {
        failed.push(`${target.id.slice(0, 8)}: ${error.message}`);
      }
    }
    selected.clear();
    toast(failed.length ? `${action.label}: ${failed.length} failed (${failed.join("; ")})` : `${action.label}: ${count} done`,
      failed.length ? "error" : "success");
    load();
  }

  function bulkLabels(targets) {
    const dialog = document.getElementById("bulk-labels-dialog");
    const form = document.getElementById("bulk-labels-form");
    const text = document.getElementById("bulk-labels-text");
    const problem = form.querySelector(".error-text");
    text.value = "";
    problem.hidden = true;
    form.onsubmit = async (event) => {
      event.preventDefault();
      if (event.submitter && event.submitter.value === "cancel") { dialog.close(); return; }
      const labels = [];
      for (const line of text.value.split("\n").map((l) => l.trim()).filter(Boolean)) {
        const at = line.indexOf(":");
        if (at < 1) { problem.textContent = `"${line}" is not key:value`; problem.hidden = false; return; }
        labels.push({ key: line.slice(0, at).trim(), value: line.slice(at + 1).trim() });
      }
      const failed = [];
      for (const target of targets) {
        try {
          await api(`/api/v1/executions/${enc(target.id)}/labels`, { method: "POST", type: "application/json", body: JSON.stringify(labels) });
        } catch (error) {
          failed.push(error.message);
        }
      }
      dialog.close();
      toast(failed.length ? failed[0] : `Labels added to ${targets.length} executions`, failed.length ? "error" : "success");
      load();
    };
    dialog.showModal();
  }

  function row(execution) {
    const link = `/ui/executions/${enc(execution.id)}`;
    const replayOf = execution.parent && execution.parent.replayOf;
    return h("tr", { class: `state-row-${execution.state.current.toLowerCase()}`, "data-id": execution.id },
      bulk ? h("td", {}, h("input", { type: "checkbox", "aria-label": `Select ${execution.id}`, checked: selected.has(execution.id),
        onchange: (event) => { if (event.target.checked) selected.add(execution.id); else selected.delete(execution.id); load(); } })) : null,
      h("td", { class: "mono" }, h("a", { href: link }, execution.id.slice(0, 8)),
        replayOf ? h("div", { class: "muted small replay-of" }, "replay of ", h("a", { href: `/ui/executions/${enc(replayOf)}` }, replayOf.slice(0, 8))) : null),
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
