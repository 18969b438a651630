// Bundles the UI's third-party code into daemon/api/ui/static/*.bundle.js (run by `make ui`).
// Each bundle starts with a line naming the sha256 of what it was built from (this file,
// package-lock.json and its entry module), which tests/test_ui_bundle.py checks, so a
// change of the sources without a rebuild fails the suite.
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const here = dirname(fileURLToPath(import.meta.url));
// `node build.mjs [DIR]`: into DIR instead (the tests compare a fresh build with the bundles).
const out = process.argv[2] || join(here, "..", "static");
const BUNDLES = { codemirror: "src/codemirror.js", charts: "src/charts.js" };

function sourcesHash(entry) {
  const hash = createHash("sha256");
  for (const name of ["build.mjs", "package-lock.json", entry]) {
    hash.update(name + "\0");
    hash.update(readFileSync(join(here, name)));
    hash.update("\0");
  }
  return hash.digest("hex");
}

for (const [name, entry] of Object.entries(BUNDLES)) {
  await build({
    entryPoints: [join(here, entry)],
    bundle: true,
    format: "esm",
    minify: true,
    legalComments: "eof",
    target: "es2020",
    outfile: join(out, `${name}.bundle.js`),
    banner: { js: `// podium-bundle-sources: ${sourcesHash(entry)}` },
    logLevel: "warning",
  });
  console.log(`built ${name}.bundle.js`);
}
