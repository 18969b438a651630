// Shared helpers of the UI's pages: API calls, DOM building, states, times, tabs.
// Every text from the server goes into the page as a text node, never as HTML.

export class ApiError extends Error {
  constructor(status, body) {
    const message = body && typeof body === "object" && body.message
      ? body.message : `HTTP ${status}`;
    super(message);
    this.status = status;
    this.body = body;
    const embedded = body && typeof body === "object" && body._embedded;
    this.errors = embedded && Array.isArray(embedded.errors) ? embedded.errors : [];
  }
}

export async function api(path, { method = "GET", body, type, headers: more } = {}) {
  const headers = { Accept: "application/json", "X-Requested-With": "XMLHttpRequest", ...more };
  if (type) headers["Content-Type"] = type;
  const response = await fetch(path, { method, body, headers, credentials: "same-origin" });
  const text = await response.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch { data = text; }
  }
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

export function q(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value === undefined || value === null || value === "") continue;
    for (const one of Array.isArray(value) ? value : [value]) search.append(key, one);
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

export function enc(text) { return encodeURIComponent(text); }

// h("a", {href: "/x", class: "y"}, "text", child) -> element
export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (value === true) node.setAttribute(key, "");
    else node.setAttribute(key, String(value));
  }
  append(node, children);
  return node;
}

// Replace a node's children; null, false and nested lists are allowed as in h().
export function fill(node, ...children) {
  node.replaceChildren();
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(node, child);
    else node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

const SVG = "http://www.w3.org/2000/svg";

export function s(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value !== undefined && value !== null) node.setAttribute(key, String(value));
  }
  append(node, children);
  return node;
}

export const TERMINATED = new Set(["SUCCESS", "WARNING", "FAILED", "KILLED", "CANCELLED", "SKIPPED"]);

export function badge(state) {
  return h("span", { class: `badge state-${String(state || "").toLowerCase()}` }, state || "-");
}

export function seconds(iso) {
  // Kestra's durations: PT1.5S, PT2M3.1S, PT1H...
  const match = /^PT(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)S)?$/.exec(iso || "");
  if (!match) return null;
  return (Number(match[1] || 0) * 3600) + (Number(match[2] || 0) * 60) + Number(match[3] || 0);
}

export function human(total) {
  if (total === null || total === undefined || Number.isNaN(total)) return "-";
  if (total < 1) return `${Math.round(total * 1000)}ms`;
  if (total < 60) return `${total.toFixed(total < 10 ? 2 : 1)}s`;
  const minutes = Math.floor(total / 60);
  if (minutes < 60) return `${minutes}m ${String(Math.floor(total % 60)).padStart(2, "0")}s`;
  return `${Math.floor(minutes / 60)}h ${String(minutes % 60).padStart(2, "0")}m`;
}

export function elapsed(state) {
  // Seconds an execution or task run took, or has taken so far.
  if (!state) return null;
  const start = Date.parse(state.startDate || (state.histories || [])[0]?.date);
  if (Number.isNaN(start)) return null;
  const end = state.endDate ? Date.parse(state.endDate)
    : TERMINATED.has(state.current) ? Date.parse(state.histories.at(-1).date) : Date.now();
  return Math.max(0, (end - start) / 1000);
}

export function when(iso) {
  if (!iso) return "-";
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} `
    + `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
}

export function labelChips(labels) {
  const list = Array.isArray(labels) ? labels
    : Object.entries(labels || {}).map(([key, value]) => ({ key, value }));
  return h("span", { class: "labels" },
    list.filter((l) => !String(l.key).startsWith("system."))
      .map((l) => h("span", { class: "chip" }, `${l.key}:${l.value}`)));
}

export function shortType(type) { return String(type || "").split(".").at(-1); }

export function toast(message, kind = "info") {
  const node = document.getElementById("toast");
  if (!node) return;
  node.textContent = message;
  node.className = `toast ${kind}`;
  node.hidden = false;
  clearTimeout(node._timer);
  node._timer = setTimeout(() => { node.hidden = true; }, 4000);
}

export function failure(container, error) {
  container.replaceChildren(h("p", { class: "error-text" }, error.message || String(error)));
}

// Tabs: buttons with data-tab, panels with data-panel; the hash remembers the open one.
export function tabs(onShow, fallback) {
  const buttons = [...document.querySelectorAll("[data-tab]")];
  const show = (name) => {
    if (!buttons.some((b) => b.dataset.tab === name)) name = fallback;
    for (const button of buttons) {
      const active = button.dataset.tab === name;
      button.classList.toggle("active", active);
      button.setAttribute("aria-selected", String(active));
      if (active) button.scrollIntoView({ block: "nearest", inline: "nearest" });
    }
    for (const panel of document.querySelectorAll("[data-panel]")) {
      panel.hidden = panel.dataset.panel !== name;
    }
    onShow(name);
  };
  for (const button of buttons) {
    button.addEventListener("click", () => {
      history.replaceState(null, "", `#${button.dataset.tab}`);
      show(button.dataset.tab);
    });
  }
  window.addEventListener("hashchange", () => show(location.hash.slice(1)));
  show(location.hash.slice(1) || fallback);
  return show;
}

// Ask before doing something that cannot be undone: resolves true on the confirming button.
export function confirmAction(title, text, action = "Confirm", danger = false) {
  const dialog = document.getElementById("confirm-dialog");
  if (!dialog) return Promise.resolve(window.confirm(`${title}\n\n${text}`));
  document.getElementById("confirm-title").textContent = title;
  document.getElementById("confirm-text").textContent = text;
  const ok = document.getElementById("confirm-ok");
  ok.textContent = action;
  ok.className = danger ? "danger-solid" : "primary";
  dialog.returnValue = "";
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
    dialog.showModal();
  });
}

// Headers every call sends: JSON or YAML with a custom header, which cross-site forms
// cannot send (CSRF protection).
export const XHR = { "X-Requested-With": "XMLHttpRequest" };

// A log line's time to the millisecond: lines a few ms apart must read in order.
export function stamp(iso) {
  if (!iso) return "-";
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  return `${when(iso)}.${String(date.getMilliseconds()).padStart(3, "0")}`;
}
