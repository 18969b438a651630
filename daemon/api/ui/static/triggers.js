// The Triggers page: every trigger of every flow, with its last event and next date,
// enable/disable, backfill, and a webhook's full URL to copy.
import { triggerTable } from "./triggertable.js";

const panel = document.getElementById("triggers");
const filter = document.getElementById("trigger-filter");
let timer = null;
filter.value = new URLSearchParams(location.search).get("q") || "";

function load() {
  const url = new URL(location.href);
  if (filter.value) url.searchParams.set("q", filter.value);
  else url.searchParams.delete("q");
  history.replaceState(null, "", url);
  triggerTable(panel, { q: filter.value }, { showFlow: true });
}

filter.addEventListener("input", () => {
  clearTimeout(timer);
  timer = setTimeout(load, 250);
});
load();
