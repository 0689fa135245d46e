import { now } from "../clock";
import { InvalidGrant, InvalidRequest, UnauthorizedClient } from "../errors";
import { approvedOrThrow, issueApproved, queueFor } from "./approval";
import type { GrantHandler } from "./types";

/**
 * OpenID CIBA Core 1.0 §10.1 token request, for poll and ping clients: one ApprovalQueue call turns
 * an approved request into `redeemed` (exactly once), then the tokens are issued as in the code flow.
 */
export const ciba: GrantHandler = {
  grant_type: "urn:openid:params:grant-type:ciba",
  async handle(c) {
    const params = c.get("params");
    const client = c.get("client");
    const cfg = c.get("cfg");
    // CIBA §10.3: "the Client MUST NOT ... poll the token endpoint" in push mode; such requests are unauthorized.
    if (client.backchannel_token_delivery_mode === "push") throw new UnauthorizedClient("this client receives its tokens by push, not from the token endpoint");
    const authReqId = params.get("auth_req_id");
    if (!authReqId) throw new InvalidRequest("auth_req_id is required");
    const queue = await queueFor(c.env, "auth_req", authReqId);
    if (!queue) throw new InvalidGrant("the auth_req_id is invalid, expired or already used");
    const t = now();
    const { request, approval } = approvedOrThrow(await queue.stub.poll({ handle_hash: queue.hash, client_id: client.client_id, now: t }), "auth_req_id");
    return issueApproved(c.env, cfg, { client, request, approval, resource: params.all("resource"), now: t });
  },
};
