// Validates Kubernetes objects against the Kubernetes OpenAPI schema carried by the
// kubernetes-models package (JSON schema, ajv; ESM only, hence a child process for jest).
// Input on stdin: a JSON array of objects. Output: a JSON array, per object null (valid) or the
// validation message.
import { Job } from 'kubernetes-models/batch/v1/Job';

const KINDS = { 'batch/v1 Job': Job };
let text = '';
for await (const chunk of process.stdin) text += chunk;
const results = JSON.parse(text).map((doc) => {
  const Model = KINDS[`${doc.apiVersion} ${doc.kind}`];
  if (!Model) return `no schema here for ${doc.apiVersion} ${doc.kind}`;
  try {
    new Model(doc).validate();
    return null;
  } catch (err) {
    return err.message;
  }
});
process.stdout.write(JSON.stringify(results));
