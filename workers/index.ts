import { buildApp } from "./app";

export { GrantObject } from "../durable-objects/grant";
export { KeyRing } from "../durable-objects/key-ring";
export { PushedRequest } from "../durable-objects/pushed-request";
export { Registry } from "../durable-objects/registry";
export { ReplayGuard } from "../durable-objects/replay-guard";

const app = buildApp();

export default {
  fetch: app.fetch,
} satisfies ExportedHandler<Env>;
