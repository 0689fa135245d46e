import { Hono } from "hono";
import type { RegistrationGate } from "../../schemas/registration";
import { networkOf } from "../clients/network";
import { registerClient } from "../clients/register";
import { now } from "../clock";
import { sha256 } from "../crypto";
import { Forbidden } from "../errors";
import { noStore } from "../middleware/headers";
import { methodNotAllowed } from "../middleware/method";
import { clientIp, rateLimit } from "../middleware/rate-limit";
import { readRegistrationBody, requireBearer } from "../middleware/registration-body";
import { audit } from "../observe/audit";
import type { AppEnv } from "../types";

/**
 * RFC 7591 §3 dynamic client registration: JSON metadata in, 201 with the client information out, plus
 * the RFC 7592 registration access token and client configuration URI. REGISTRATION_POLICY decides who
 * may register: anyone (`open`, counted per network and hour), holders of an initial access token the
 * admin API issued (`initial_access_token`), or nobody (`closed`).
 */
export const register = new Hono<AppEnv>();

/** Per-minute burst limit per IP at the edge (REGISTRATION_LIMIT); REGISTRATIONS_PER_IP_PER_HOUR is the global quota. */
const registrationLimit = rateLimit(
  "registration",
  (env) => env.REGISTRATION_LIMIT,
  (c) => clientIp(c),
);

register.post("/register", noStore, registrationLimit, async (c) => {
  const cfg = c.get("cfg");
  if (cfg.REGISTRATION_POLICY === "closed") throw new Forbidden("dynamic client registration is closed on this server");
  const gate: RegistrationGate = { now: now() };
  // RFC 7591 §3: the initial access token is an OAuth 2.0 Bearer token (RFC 6750).
  if (cfg.REGISTRATION_POLICY === "initial_access_token") gate.initial_access_token_hash = await sha256(requireBearer(c, "an initial access token"));
  else if (cfg.REGISTRATIONS_PER_IP_PER_HOUR > 0) gate.rate = { key: networkOf(c.req.header("cf-connecting-ip")), limit: cfg.REGISTRATIONS_PER_IP_PER_HOUR };
  const body = await readRegistrationBody(c);
  const registered = await registerClient(c.env, cfg, body, "dynamic_registration", gate);
  audit(c, { event: "client.registered", outcome: "success", client_id: registered.client_id, detail: "dynamic_registration" });
  return c.json(registered, 201);
});
register.all("/register", methodNotAllowed("POST"));
