import { Hono } from "hono";
import type { ApprovalRequest } from "../../schemas/approval";
import { displayUserCode, newUserCode } from "../approvals/user-code";
import { now } from "../clock";
import { randomToken } from "../crypto";
import { ServerError, UnauthorizedClient } from "../errors";
import { attestationChallenge, claimedClientAndIp, clientAuth } from "../middleware/client-auth";
import { formBody } from "../middleware/form-body";
import { noStore } from "../middleware/headers";
import { methodNotAllowed } from "../middleware/method";
import { rateLimit } from "../middleware/rate-limit";
import { audit } from "../observe/audit";
import { enforceAttestationPolicy } from "../policy/attestation";
import { decide, parseResources, parseScope } from "../policy/scope";
import { mintHandle } from "../tokens/handles";
import type { AppEnv } from "../types";

/**
 * RFC 8628 §3.1 device authorization endpoint: a device without a browser asks for access; the user
 * enters the user code at `/device` on another device. The request waits in the ApprovalQueue named by
 * its user code (it has no user yet); the device polls the token endpoint with the `device_code`.
 */
export const deviceAuthorization = new Hono<AppEnv>();

/** Device authorization requests per client and IP per minute, as for CIBA (BACKCHANNEL_LIMIT): each one stores a request. */
const deviceLimit = rateLimit("device", (env) => env.BACKCHANNEL_LIMIT, claimedClientAndIp);

deviceAuthorization.post("/device_authorization", noStore, attestationChallenge, formBody, deviceLimit, clientAuth, async (c) => {
  const params = c.get("params");
  const client = c.get("client");
  const cfg = c.get("cfg");
  if (!client.grant_types.includes("urn:ietf:params:oauth:grant-type:device_code")) {
    throw new UnauthorizedClient("this client is not registered for the device_code grant");
  }
  const decision = await decide(c.env, client, parseScope(params.get("scope")), parseResources(params.all("resource")));
  // Refused before anyone is asked; the token request checks again with the attestation it carries.
  enforceAttestationPolicy(c, { scope: decision.scope, resources: decision.resources });
  const t = now();
  // A user code names its queue; a collision with a live code is retried with a fresh one.
  for (let attempt = 0; attempt < 5; attempt++) {
    const userCode = newUserCode();
    const id = c.env.APPROVALS.idFromName(`device:${userCode}`);
    const handle = await mintHandle("device", id.toString());
    const request: ApprovalRequest = {
      id: randomToken(12),
      kind: "device",
      handle_hash: handle.hash,
      client_id: client.client_id,
      client_name: client.client_name ?? client.client_id,
      ...(client.registered_by !== "admin" ? { self_registered: true as const } : {}),
      scope: decision.scope,
      resources: decision.resources.map((r) => r.resource),
      user_code: userCode,
      delivery: "poll",
      created_at: t,
      expires_at: t + cfg.DEVICE_CODE_TTL,
      interval: cfg.POLL_INTERVAL,
    };
    // `exists`: the code is still taken (live, or finished but not yet purged); draw another.
    const queued = await c.env.APPROVALS.get(id).enqueue(request);
    if (!queued.ok) continue;
    audit(c, { event: "approval.requested", outcome: "success", client_id: client.client_id, detail: `device scope=${request.scope.join(" ")}` });
    const shown = displayUserCode(userCode);
    return c.json({
      device_code: handle.token,
      user_code: shown,
      verification_uri: `${cfg.ISSUER}/device`,
      verification_uri_complete: `${cfg.ISSUER}/device?user_code=${shown}`,
      expires_in: cfg.DEVICE_CODE_TTL,
      interval: cfg.POLL_INTERVAL,
    });
  }
  throw new ServerError("could not assign a user code", "five collisions in a row");
});
deviceAuthorization.all("/device_authorization", methodNotAllowed("POST"));
