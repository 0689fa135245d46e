import { InvalidRequest } from "../errors";
import { pollAndIssue } from "./approval";
import type { GrantHandler } from "./types";

/**
 * RFC 8628 §3.4 device access token request: the device polls with its `device_code` until the user
 * approved it at `/device` (one ApprovalQueue call; approved → redeemed exactly once; `pollAndIssue`).
 * A public device's refresh tokens are bound to the DPoP key of the poll that got them (RFC 9449 §5).
 */
export const deviceCode: GrantHandler = {
  grant_type: "urn:ietf:params:oauth:grant-type:device_code",
  async handle(c) {
    const params = c.get("params");
    const deviceCode = params.get("device_code");
    if (!deviceCode) throw new InvalidRequest("device_code is required");
    return pollAndIssue(c, "device", deviceCode);
  },
};
