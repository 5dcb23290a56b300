// Validates KEDA resources against the schema of KEDA's CRDs (as @kubernetes-models/keda
// publishes them): a JSON array of resources on standard input, one line per resource on
// standard output, exit status 1 when any is invalid. tests/it/deploy.rs runs it.
"use strict";
const { ScaledObject, TriggerAuthentication } = require("@kubernetes-models/keda/keda.sh/v1alpha1");

const kinds = { ScaledObject, TriggerAuthentication };
let input = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (chunk) => (input += chunk));
process.stdin.on("end", () => {
  let failed = false;
  for (const resource of JSON.parse(input)) {
    const name = `${resource.kind}/${resource.metadata && resource.metadata.name}`;
    const Model = kinds[resource.kind];
    if (!Model) {
      console.log(`${name}: no KEDA schema for this kind`);
      failed = true;
      continue;
    }
    try {
      new Model(resource).validate();
      console.log(`${name}: valid`);
    } catch (err) {
      console.log(`${name}: INVALID ${err.message}`);
      failed = true;
    }
  }
  process.exit(failed ? 1 : 0);
});
