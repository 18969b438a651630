// One namespace: its flows, its KV pairs, and its namespace files (Kestra's
// /api/v1/namespaces/{ns}/files API: list a directory, read, write, delete, make a
// folder), edited in the browser.
import { createTextEditor } from "./editor.js";
import { kvTable } from "./kvtable.js";
import { ApiError, api, confirmAction, enc, failure, h, labelChips, q, tabs, toast } from "./podium.js";

const namespace = document.body.dataset.namespace;
const filesBase = `/api/v1/namespaces/${enc(namespace)}/files`;
let kv = null;
let editor = null;
let openPath = null;
let savedText = "";

async function flowsTab(panel) {
  let flows;
  try {
    flows = (await api(`/api/v1/flows/search${q({ namespace, size: 1000 })}`)).results;
  } catch (error) {
    failure(panel, error);
    return;
  }
  if (!flows.length) {
    panel.replaceChildren(h("p", { class: "muted" }, `No flow in ${namespace} or below it.`));
    return;
  }
  panel.replaceChildren(h("div", { class: "table-wrap" }, h("table", { class: "flows" },
    h("thead", {}, h("tr", {}, h("th", {}, "Flow"), h("th", { class: "wide" }, "Labels"), h("th", { class: "wide" }, "Description"))),
    h("tbody", {}, flows.map((f) => h("tr", { "data-flow": `${f.namespace}/${f.id}` },
      h("td", {}, h("a", { href: `/ui/flows/${enc(f.namespace)}/${enc(f.id)}` },
        f.namespace === namespace ? f.id : `${f.namespace.slice(namespace.length + 1)}.${f.id}`)),
      h("td", { class: "wide" }, labelChips(f.labels)),
      h("td", { class: "wide small" }, f.description || "")))))));
}

// -- namespace files ----------------------------------------------------------------------

async function listing(path) {
  return api(`${filesBase}/directory${q({ path })}`);
}

async function tree(container, path = "/") {
  let entries;
  try {
    entries = await listing(path);
  } catch (error) {
    failure(container, error);
    return false;
  }
  entries.sort((a, b) => (a.type === b.type ? a.fileName.localeCompare(b.fileName) : a.type === "Directory" ? -1 : 1));
  container.replaceChildren(...entries.map((entry) => {
    const full = `${path.replace(/\/$/, "")}/${entry.fileName}`;
    if (entry.type === "Directory") {
      const children = h("ul", { class: "tree-list" });
      let open = false;
      return h("li", { "data-path": full, class: "folder" },
        h("span", { onclick: async () => {
          open = !open;
          if (open) await tree(children, full); else children.replaceChildren();
        } }, `▸ ${entry.fileName}/`), children);
    }
    return h("li", { "data-path": full, class: full === openPath ? "active" : "", onclick: () => openFile(full) }, entry.fileName);
  }));
  if (!entries.length && path === "/") container.replaceChildren(h("li", { class: "muted" }, "No file yet."));
  return true;
}

async function openFile(path) {
  if (editor && editor.value !== savedText
    && !await confirmAction("Unsaved changes", `Your changes to ${openPath} are not saved. Open ${path} anyway?`, "Discard them", true)) return;
  let text;
  try {
    const response = await fetch(`${filesBase}${q({ path })}`, { headers: { "X-Requested-With": "XMLHttpRequest" }, credentials: "same-origin" });
    if (!response.ok) throw new ApiError(response.status, await response.json().catch(() => null));
    text = await response.text();
  } catch (error) {
    toast(error.message, "error");
    return;
  }
  showFile(path, text);
}

function showFile(path, text) {
  openPath = path;
  savedText = text;
  if (editor) editor.destroy();
  const host = document.getElementById("file-editor");
  host.replaceChildren();
  editor = createTextEditor(host, text, { yaml: /\.ya?ml$/.test(path), label: path,
    onSave: save, onChange: () => { document.getElementById("file-status").textContent = editor.value === savedText ? "" : "Unsaved changes"; } });
  document.getElementById("file-name").textContent = path;
  document.getElementById("file-status").textContent = "";
  document.getElementById("file-save").disabled = false;
  document.getElementById("file-delete").disabled = false;
  for (const item of document.querySelectorAll("#file-tree li[data-path]")) item.classList.toggle("active", item.dataset.path === path);
}

async function upload(path, blob) {
  const form = new FormData();
  form.append("fileContent", blob, path.split("/").at(-1));
  await api(`${filesBase}${q({ path })}`, { method: "POST", body: form });
}

async function save() {
  if (!openPath) return;
  try {
    await upload(openPath, new Blob([editor.value], { type: "application/octet-stream" }));
    savedText = editor.value;
    document.getElementById("file-status").textContent = "Saved";
    toast(`Saved ${openPath}`, "success");
  } catch (error) {
    toast(error.message, "error");
  }
}

async function filesTab() {
  const treeRoot = document.getElementById("file-tree");
  if (!treeRoot || !await tree(treeRoot)) return;
  document.getElementById("file-save").onclick = save;
  document.getElementById("file-delete").onclick = async () => {
    if (!openPath || !await confirmAction(`Delete ${openPath}?`, "The file is deleted from the namespace.", "Delete", true)) return;
    try {
      await api(`${filesBase}${q({ path: openPath })}`, { method: "DELETE" });
      toast(`Deleted ${openPath}`, "success");
      openPath = null;
      editor?.destroy();
      editor = null;
      document.getElementById("file-name").textContent = "No file open";
      document.getElementById("file-save").disabled = true;
      document.getElementById("file-delete").disabled = true;
    } catch (error) {
      toast(error.message, "error");
    }
    tree(treeRoot);
  };
  document.getElementById("file-new").onclick = async () => {
    const name = window.prompt("New file's path (e.g. /scripts/clean.py)");
    if (!name) return;
    const path = name.startsWith("/") ? name : `/${name}`;
    try {
      await upload(path, new Blob([""]));
      await tree(treeRoot);
      showFile(path, "");
    } catch (error) {
      toast(error.message, "error");
    }
  };
  document.getElementById("folder-new").onclick = async () => {
    const name = window.prompt("New folder's path (e.g. /scripts)");
    if (!name) return;
    try {
      await api(`${filesBase}/directory${q({ path: name.startsWith("/") ? name : `/${name}` })}`, { method: "POST" });
      tree(treeRoot);
    } catch (error) {
      toast(error.message, "error");
    }
  };
  document.getElementById("file-upload").onchange = async (event) => {
    const file = event.target.files[0];
    if (!file) return;
    try {
      await upload(`/${file.name}`, file);
      toast(`Uploaded ${file.name}`, "success");
      tree(treeRoot);
    } catch (error) {
      toast(error.message, "error");
    }
    event.target.value = "";
  };
}

tabs((name) => {
  const panel = document.querySelector(`[data-panel="${name}"]`);
  if (name === "flows") flowsTab(panel);
  else if (name === "kv") {
    kv = kv || kvTable(panel, namespace);
    kv.load();
  } else if (name === "files") filesTab();
}, "flows");
