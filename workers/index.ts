import { buildApp } from "./app";

export { ApprovalQueue } from "../durable-objects/approval-queue";
export { GrantObject } from "../durable-objects/grant";
export { KeyRing } from "../durable-objects/key-ring";
export { NotifyKeys } from "../durable-objects/notify-keys";
export { PushedRequest } from "../durable-objects/pushed-request";
export { Registry } from "../durable-objects/registry";
export { ReplayGuard } from "../durable-objects/replay-guard";

const app = buildApp();

export default {
  fetch: app.fetch,
} satisfies ExportedHandler<Env>;
