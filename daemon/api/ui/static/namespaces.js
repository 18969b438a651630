// The Namespaces page: every namespace flows live in (and the ones above them), with how
// many flows each holds; each leads to its page (flows, KV pairs, namespace files).
import { api, enc, failure, h, q } from "./podium.js";

const panel = document.getElementById("namespaces");
const filter = document.getElementById("namespace-filter");
let names = [];
let flows = [];

function render() {
  const text = filter.value.trim().toLowerCase();
  const shown = names.filter((n) => n.toLowerCase().includes(text));
  if (!shown.length) {
    panel.replaceChildren(h("p", { class: "muted" }, names.length ? "No namespace matches." : "No namespace yet: create a flow."));
    return;
  }
  panel.replaceChildren(h("div", { class: "table-wrap" }, h("table", { class: "namespaces" },
    h("thead", {}, h("tr", {}, h("th", {}, "Namespace"), h("th", {}, "Flows"))),
    h("tbody", {}, shown.map((name) => {
      const own = flows.filter((f) => f.namespace === name).length;
      const below = flows.filter((f) => f.namespace.startsWith(`${name}.`)).length;
      const depth = name.split(".").length - 1;
      return h("tr", { "data-namespace": name },
        h("td", { style: `padding-left:${10 + depth * 16}px` }, h("a", { href: `/ui/namespaces/${enc(name)}` }, name)),
        h("td", {}, below ? `${own} (+${below} below)` : String(own)));
    })))));
}

async function main() {
  try {
    [names, flows] = await Promise.all([api("/api/v1/flows/distinct-namespaces"),
      api(`/api/v1/flows/search${q({ size: 1000 })}`).then((d) => d.results)]);
  } catch (error) {
    failure(panel, error);
    return;
  }
  render();
}

filter.addEventListener("input", render);
main();
