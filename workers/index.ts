import { buildApp } from "./app";

export { GrantObject } from "../durable-objects/grant";
export { KeyRing } from "../durable-objects/key-ring";
export { Registry } from "../durable-objects/registry";

const app = buildApp();

export default {
  fetch: app.fetch,
} satisfies ExportedHandler<Env>;
