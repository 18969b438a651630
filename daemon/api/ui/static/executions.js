// The Executions page: every flow's executions, filtered by the form above the table.
import { executionsTable } from "./exectable.js";

const form = document.getElementById("execution-filters");
const table = executionsTable(document.querySelector(".executions-table"), {});

function filters() {
  const data = new FormData(form);
  const out = {};
  for (const [key, value] of data.entries()) {
    if (!value) continue;
    out[key] = key === "startDate" || key === "endDate" ? new Date(value).toISOString() : value;
  }
  return out;
}

const params = new URLSearchParams(location.search);
for (const [key, value] of params.entries()) {
  const element = form.elements.namedItem(key);
  if (element) element.value = value;
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  table.filter(filters());
});
table.filter(filters());
