// mlgate's /docs: Swagger UI rendering the gateway's own OpenAPI document (GET openapi.json,
// relative to the page). Bundled from node_modules by esbuild, so the page needs nothing
// but this origin: it works offline, and the page's Content-Security-Policy allows nothing
// else. The validator badge would send the document to validator.swagger.io: it is off.
import SwaggerUIBundle from "swagger-ui-dist/swagger-ui-bundle.js";
import "swagger-ui-dist/swagger-ui.css";

const root = document.getElementById("swagger-ui");
SwaggerUIBundle({
  url: root.dataset.spec,
  domNode: root,
  validatorUrl: null,
  deepLinking: true,
  displayRequestDuration: true, // "Try it out" calls this origin only (connect-src 'self')
});
