// The KV Store page: the pairs of one namespace (chosen from the flows' namespaces or
// typed; kept in the URL), viewed, edited, added and deleted.
import { kvTable } from "./kvtable.js";
import { api, h } from "./podium.js";

const form = document.getElementById("kv-namespace");
const panel = document.getElementById("kv");
const input = form.elements.namedItem("namespace");

function show(namespace) {
  const url = new URL(location.href);
  url.searchParams.set("namespace", namespace);
  history.replaceState(null, "", url);
  kvTable(panel, namespace).load();
}

async function main() {
  const names = await api("/api/v1/flows/distinct-namespaces").catch(() => []);
  document.getElementById("namespace-names").replaceChildren(...names.map((n) => h("option", { value: n })));
  const chosen = new URLSearchParams(location.search).get("namespace") || names[0];
  if (chosen) {
    input.value = chosen;
    show(chosen);
  }
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  if (input.value.trim()) show(input.value.trim());
});
main();
