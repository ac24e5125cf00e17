// Bundles src/ into dist/ with esbuild: dashboard.js (uPlot included) and dashboard.css for
// /dashboard, docs.js (Swagger UI included) and docs.css for /docs, then copies the two page
// shells. Offline: everything comes from node_modules (npm ci --ignore-scripts, so
// swagger-ui-dist's @scarf/scarf dependency never runs its install-time analytics).
// index.html is written last, so its presence (and mtime, which the Makefile compares)
// marks a complete build; dist/ is emptied first so no stale file is ever served.
import { copyFileSync, mkdirSync, rmSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const here = dirname(fileURLToPath(import.meta.url));
const dist = join(here, "dist");

rmSync(dist, { recursive: true, force: true });
mkdirSync(dist);
await build({
  absWorkingDir: here,
  entryPoints: ["src/dashboard.js", "src/docs.js"],
  outdir: "dist",
  bundle: true,
  minify: true,
  format: "iife",
  target: ["es2020", "chrome100", "firefox100", "safari15"],
  legalComments: "eof", // uPlot's MIT notice and Swagger UI's pointer stay in the bundles
  logLevel: "warning",
});
copyFileSync(join(here, "src", "docs.html"), join(dist, "docs.html"));
copyFileSync(join(here, "src", "index.html"), join(dist, "index.html"));
for (const name of ["dashboard.js", "dashboard.css", "docs.js", "docs.css", "docs.html", "index.html"]) {
  console.log(`dist/${name}  ${(statSync(join(dist, name)).size / 1024).toFixed(1)} KiB`);
}
