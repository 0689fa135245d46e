import { buildApp } from "./app";

export { ApprovalQueue } from "../durable-objects/approval-queue";
export { GrantObject } from "../durable-objects/grant";
export { KeyRing } from "../durable-objects/key-ring";
export { Registry } from "../durable-objects/registry";
export { ReplayGuard } from "../durable-objects/replay-guard";
export { VapidKeys } from "../durable-objects/vapid-keys";

const app = buildApp();

export default {
  fetch: app.fetch,
} satisfies ExportedHandler<Env>;
