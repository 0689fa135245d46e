import { Hono } from "hono";
import { currentChallenge } from "../attestation/challenge";
import { now } from "../clock";
import { nonceToProvide } from "../dpop/accept";
import { noStore } from "../middleware/headers";
import { methodNotAllowed } from "../middleware/method";
import type { AppEnv } from "../types";

/**
 * draft-ietf-oauth-attestation-based-client-auth-11 §8.1 challenge endpoint: "a POST request ... the
 * response ... with a JSON object containing attestation_challenge", with `Cache-Control: no-store`
 * and, since Latchkey uses DPoP nonces, a `DPoP-Nonce` for DPoP combined mode. No authentication:
 * a challenge is a recent server value, not a secret.
 */
export const challenge = new Hono<AppEnv>();

challenge.post("/challenge", noStore, async (c) => {
  const t = now();
  const nonce = await nonceToProvide(c);
  if (nonce !== undefined) c.header("DPoP-Nonce", nonce);
  return c.json({ attestation_challenge: await currentChallenge(c.get("cfg").SESSION_SECRET, t) });
});
challenge.all("/challenge", methodNotAllowed("POST"));
