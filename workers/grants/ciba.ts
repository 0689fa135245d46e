import { InvalidRequest, UnauthorizedClient } from "../errors";
import { pollAndIssue } from "./approval";
import type { GrantHandler } from "./types";

/**
 * OpenID CIBA Core 1.0 §10.1 token request, for poll and ping clients: one ApprovalQueue call turns
 * an approved request into `redeemed` (exactly once), then the tokens are issued and bound as in the code
 * flow (`pollAndIssue`: a request with two token bindings is refused before the poll, and a failure to
 * issue releases the approval again).
 */
export const ciba: GrantHandler = {
  grant_type: "urn:openid:params:grant-type:ciba",
  async handle(c) {
    const params = c.get("params");
    const client = c.get("client");
    // CIBA §10.3: "the Client MUST NOT ... poll the token endpoint" in push mode; such requests are unauthorized.
    if (client.backchannel_token_delivery_mode === "push") throw new UnauthorizedClient("this client receives its tokens by push, not from the token endpoint");
    const authReqId = params.get("auth_req_id");
    if (!authReqId) throw new InvalidRequest("auth_req_id is required");
    return pollAndIssue(c, "auth_req", authReqId);
  },
};
