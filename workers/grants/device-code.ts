import { now } from "../clock";
import { InvalidGrant, InvalidRequest } from "../errors";
import { approvedOrThrow, issueApproved, queueFor } from "./approval";
import type { GrantHandler } from "./types";

/**
 * RFC 8628 §3.4 device access token request: the device polls with its `device_code` until the user
 * approved it at `/device` (one ApprovalQueue call; approved → redeemed exactly once).
 */
export const deviceCode: GrantHandler = {
  grant_type: "urn:ietf:params:oauth:grant-type:device_code",
  async handle(c) {
    const params = c.get("params");
    const client = c.get("client");
    const cfg = c.get("cfg");
    const deviceCode = params.get("device_code");
    if (!deviceCode) throw new InvalidRequest("device_code is required");
    const queue = await queueFor(c.env, "device", deviceCode);
    if (!queue) throw new InvalidGrant("the device_code is invalid, expired or already used");
    const t = now();
    const { request, approval } = approvedOrThrow(await queue.stub.poll({ handle_hash: queue.hash, client_id: client.client_id, now: t }), "device_code");
    return issueApproved(c.env, cfg, { client, request, approval, resource: params.all("resource"), now: t });
  },
};
