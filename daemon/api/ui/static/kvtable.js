// A namespace's KV pairs (GET /api/v1/namespaces/{ns}/kv): key, type, value, last update
// and expiry; view and edit a value (JSON keeps its type, anything else is text), set a
// time to live, delete with a confirmation, add a key. Used by the KV Store page and a
// namespace's KV tab.
import { ApiError, api, confirmAction, enc, failure, h, toast, when } from "./podium.js";

const KEY = /^[a-zA-Z0-9][a-zA-Z0-9._-]*$/;

function valueText(found) {
  return found.type === "STRING" ? found.value : JSON.stringify(found.value, null, 2);
}

export function kvTable(container, namespace) {
  const base = `/api/v1/namespaces/${enc(namespace)}/kv`;

  async function load() {
    let entries;
    try {
      entries = await api(base);
    } catch (error) {
      failure(container, error);
      return;
    }
    const add = h("button", { type: "button", class: "primary", onclick: () => edit(null) }, "Add a key");
    if (!entries.length) {
      container.replaceChildren(h("div", { class: "bulk" }, add), h("p", { class: "muted" }, `No key in ${namespace}.`));
      return;
    }
    container.replaceChildren(h("div", { class: "bulk" }, add), h("div", { class: "table-wrap" }, h("table", { class: "kv" },
      h("thead", {}, h("tr", {}, [["Key"], ["Updated", "wide"], ["Expires"], [""]].map(([c, wide]) => h("th", { class: wide }, c)))),
      h("tbody", {}, entries.map((entry) => h("tr", { "data-key": entry.key },
        h("td", { class: "mono" }, entry.key),
        h("td", { class: "wide" }, when(entry.updateDate)),
        h("td", {}, entry.expirationDate ? when(entry.expirationDate) : h("span", { class: "muted" }, "never")),
        h("td", { class: "right" },
          h("button", { type: "button", onclick: () => edit(entry.key) }, "View / edit"),
          " ",
          h("button", { type: "button", class: "danger", onclick: () => remove(entry.key) }, "Delete"))))))));
  }

  async function remove(key) {
    if (!await confirmAction(`Delete ${key}?`, `The key ${key} of ${namespace} and its value are deleted.`, "Delete", true)) return;
    try {
      await api(`${base}/${enc(key)}`, { method: "DELETE" });
      toast(`Deleted ${key}`, "success");
    } catch (error) {
      toast(error.message, "error");
    }
    load();
  }

  async function edit(key) {
    let current = null;
    if (key !== null) {
      try {
        current = await api(`${base}/${enc(key)}`);
      } catch (error) {
        toast(error.message, "error");
        return;
      }
    }
    const dialog = document.getElementById("kv-dialog");
    const form = dialog.querySelector("form");
    const keyInput = form.elements.namedItem("key");
    const valueInput = form.elements.namedItem("value");
    const ttlInput = form.elements.namedItem("ttl");
    const problem = dialog.querySelector(".error-text");
    dialog.querySelector("h2").textContent = key === null ? `New key in ${namespace}` : `${key} in ${namespace}`;
    keyInput.value = key || "";
    keyInput.readOnly = key !== null;
    valueInput.value = current ? valueText(current) : "";
    ttlInput.value = "";
    dialog.querySelector(".kv-type").textContent = current ? `Stored as ${current.type}` : "";
    problem.hidden = true;
    form.onsubmit = async (event) => {
      event.preventDefault();
      if (event.submitter && event.submitter.value === "cancel") {
        dialog.close();
        return;
      }
      const name = keyInput.value.trim();
      if (!KEY.test(name)) {
        problem.textContent = "A key is letters, digits, '.', '_' or '-', starting with a letter or digit.";
        problem.hidden = false;
        return;
      }
      const headers = ttlInput.value.trim() ? { ttl: ttlInput.value.trim() } : {};
      // A string stays a string; otherwise JSON keeps its type and anything else is text.
      let body = valueInput.value;
      let type = "application/json";
      if (current && current.type === "STRING") body = JSON.stringify(body);
      else {
        try { JSON.parse(body); } catch { type = "text/plain"; }
      }
      try {
        await api(`${base}/${enc(name)}`, { method: "PUT", body, type, headers });
      } catch (error) {
        problem.textContent = error instanceof ApiError ? error.message : String(error);
        problem.hidden = false;
        return;
      }
      dialog.close();
      toast(`Saved ${name}`, "success");
      load();
    };
    dialog.showModal();
  }

  return { load };
}
