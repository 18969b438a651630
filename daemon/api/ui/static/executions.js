// The Executions page: every flow's executions, filtered by the form above the table
// (text found in the id, namespace or flow; exact namespace, flow, state, label, start
// period), the filters kept in the URL; with bulk kill, restart, replay, delete and labels.
import { executionsTable } from "./exectable.js";

const form = document.getElementById("execution-filters");
const DATES = ["startDate", "endDate"];
const table = executionsTable(document.querySelector(".executions-table"), {}, { bulk: true });

function filters() {
  const out = {};
  for (const [key, value] of new FormData(form).entries()) {
    if (!value) continue;
    out[key] = DATES.includes(key) ? new Date(value).toISOString() : value;
  }
  return out;
}

function remember() {
  const url = new URL(location.href);
  url.search = "";
  for (const [key, value] of new FormData(form).entries()) if (value) url.searchParams.set(key, value);
  history.replaceState(null, "", url);
}

const params = new URLSearchParams(location.search);
for (const [key, value] of params.entries()) {
  const element = form.elements.namedItem(key);
  if (element) element.value = value;
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  remember();
  table.filter(filters());
});
table.filter(filters());
