// A table of triggers with their context (GET /api/v1/triggers/search): last event, next
// date, enable/disable, a Schedule's backfill and a Webhook's full URL to copy. Used by
// the Triggers page (every flow) and a flow's Triggers tab.
import { api, enc, failure, h, q, shortType, toast, when } from "./podium.js";

function detail(trigger) {
  return Object.entries(trigger || {})
    .filter(([k]) => !["id", "type", "disabled", "description", "key"].includes(k))
    .map(([k, v]) => `${k}: ${typeof v === "object" ? JSON.stringify(v) : v}`).join(" · ");
}

function webhookUrl(context, source) {
  return `${location.origin}/api/v1/executions/webhook/${enc(context.namespace)}/${enc(context.flowId)}/${enc(source.key)}`;
}

function copyButton(url) {
  return h("button", { type: "button", class: "copy", title: url, onclick: async () => {
    try {
      await navigator.clipboard.writeText(url);
      toast("Webhook URL copied", "success");
    } catch {
      window.prompt("Copy the webhook URL", url);
    }
  } }, "Copy URL");
}

function backfillForm(context, refresh) {
  const start = h("input", { type: "datetime-local", required: true, "aria-label": "Backfill start" });
  const end = h("input", { type: "datetime-local", "aria-label": "Backfill end" });
  return h("form", { class: "backfill", onsubmit: (event) => {
    event.preventDefault();
    if (!start.value) return;
    const backfill = { start: new Date(start.value).toISOString() };
    if (end.value) backfill.end = new Date(end.value).toISOString();
    setTrigger(context, { backfill }, refresh);
  } }, start, end, h("button", { type: "submit" }, "Backfill"));
}

async function setTrigger(context, change, refresh) {
  try {
    await api("/api/v1/triggers", { method: "PUT", type: "application/json", body: JSON.stringify({
      namespace: context.namespace, flowId: context.flowId, triggerId: context.triggerId, ...change }) });
    toast(change.backfill ? `Backfill of ${context.triggerId} started` : `${context.triggerId} ${change.disabled ? "disabled" : "enabled"}`, "success");
  } catch (error) {
    toast(error.message, "error");
  }
  refresh();
}

// filters: {namespace, flowId, q}; showFlow adds the flow column.
export async function triggerTable(panel, filters, { showFlow = false } = {}) {
  const refresh = () => triggerTable(panel, filters, { showFlow });
  let rows;
  try {
    rows = (await api(`/api/v1/triggers/search${q({ ...filters, size: 1000 })}`)).results || [];
  } catch (error) {
    failure(panel, error);
    return;
  }
  if (filters.namespace && filters.flowId) rows = rows.filter((r) => r.triggerContext.namespace === filters.namespace);
  if (!rows.length) {
    panel.replaceChildren(h("p", { class: "muted" }, showFlow ? "No flow has a trigger."
      : "No triggers: this flow runs when started by hand, by the API or as a subflow."));
    return;
  }
  const heads = [showFlow ? ["Flow"] : null, ["Id"], ["Type", "wide"], ["Details", "wide"], ["Last event", "wide"], ["Next"], [""]].filter(Boolean);
  panel.replaceChildren(h("div", { class: "table-wrap" }, h("table", { class: "triggers" },
    h("thead", {}, h("tr", {}, heads.map(([c, wide]) => h("th", { class: wide }, c)))),
    h("tbody", {}, rows.map(({ abstractTrigger: source, triggerContext: context }) => h("tr", {
      "data-trigger": context.triggerId, "data-flow": `${context.namespace}/${context.flowId}` },
    showFlow ? h("td", {}, h("a", { href: `/ui/flows/${enc(context.namespace)}/${enc(context.flowId)}` },
      `${context.namespace}.${context.flowId}`)) : null,
    h("td", { class: "mono" }, context.triggerId),
    h("td", { title: context.type, class: "wide" }, shortType(context.type)),
    h("td", { class: "small wide" }, source?.description || detail(source)),
    h("td", { class: "wide" }, context.executionId ? h("a", { href: `/ui/executions/${enc(context.executionId)}` }, when(context.date))
      : h("span", { class: "muted" }, "none yet")),
    h("td", {}, context.disabled ? h("span", { class: "muted" }, "disabled")
      : context.backfill ? "backfilling" : when(context.nextExecutionDate)),
    h("td", { class: "right" },
      source && source.key ? copyButton(webhookUrl(context, source)) : null,
      source && "cron" in source && !context.disabled ? backfillForm(context, refresh) : null,
      h("button", { type: "button", onclick: () => setTrigger(context, { disabled: !context.disabled }, refresh) },
        context.disabled ? "Enable" : "Disable"))))))));
}
