"""Keep the orders of at least a threshold: a namespace file of podium.examples, which
flows/namespace_files.yaml runs from its working directory."""

import csv
import json
import sys

threshold = int(sys.argv[1])
with open("orders.csv") as source, open("big_orders.csv", "w", newline="") as out:
    rows = csv.DictReader(source)
    writer = csv.DictWriter(out, fieldnames=rows.fieldnames)
    writer.writeheader()
    kept = [row for row in rows if int(row["amount"]) >= threshold]
    writer.writerows(kept)
print("::" + json.dumps({"outputs": {"bigOrders": len(kept)}}) + "::")
