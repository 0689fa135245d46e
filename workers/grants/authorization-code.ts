import { now } from "../clock";
import { sha256 } from "../crypto";
import { InvalidGrant, InvalidRequest, InvalidTarget, unreachable } from "../errors";
import { audit } from "../observe/audit";
import { enforceGrantIndependentPolicy } from "../policy/attestation";
import { mintHandle, parseHandle } from "../tokens/handles";
import { binding, grantStub, issueOrUndo, namedResource } from "./issue";
import type { GrantHandler } from "./types";

/** RFC 7636 §4.1: 43–128 unreserved characters. */
const VERIFIER = /^[A-Za-z0-9\-._~]{43,128}$/;

/**
 * OAuth 2.1 §4.1.3 authorization code redemption: exactly one GrantObject call, which checks the
 * code, client, PKCE verifier, redirect URI, DPoP key (`dpop_jkt`, RFC 9449 §10) and the requested
 * resource (RFC 8707, so a refused one leaves the code unspent) and rotates in the refresh token in one
 * transition. A public client's refresh tokens are bound to the key of the proof
 * it redeemed with (RFC 9449 §5); a confidential client's are already bound to its credentials.
 */
export const authorizationCode: GrantHandler = {
  grant_type: "authorization_code",
  async handle(c) {
    const params = c.get("params");
    const client = c.get("client");
    const auth_method = c.get("auth_method");
    const dpop = c.get("dpop");
    const code = params.get("code");
    const verifier = params.get("code_verifier");
    if (!code) throw new InvalidRequest("code is required");
    // OAuth 2.1 §4.1.3: PKCE is required for every client here, so a missing verifier is a bad request.
    if (!verifier) throw new InvalidRequest("code_verifier is required");
    if (!VERIFIER.test(verifier)) throw new InvalidRequest("code_verifier must be 43-128 unreserved characters (RFC 7636 §4.1)");
    const handle = await parseHandle("code", code);
    const stub = handle && grantStub(c.env, handle.object_id);
    if (!handle || !stub) throw new InvalidGrant("the authorization code is invalid, expired or already used");
    // Refusals that do not depend on the grant come before anything is spent: two token bindings, and a
    // client that may have no token (for the resource it names). The rest undo the redemption (`issueOrUndo`).
    binding(c);
    enforceGrantIndependentPolicy(c, await namedResource(c));
    const refresh = client.grant_types.includes("refresh_token") ? await mintHandle("refresh", handle.object_id) : undefined;
    const t = now();
    const result = await stub.redeemCode({
      code_hash: handle.hash,
      client_id: client.client_id,
      code_verifier_s256: await sha256(verifier),
      redirect_uri: params.get("redirect_uri"),
      refresh_hash: refresh?.hash,
      dpop_jkt: dpop?.jkt,
      bind_refresh_to_key: auth_method === "none",
      instance_jkt: c.get("attestation")?.facts.jkt,
      resource: params.all("resource"),
      now: t,
    });
    if (!result.ok) {
      switch (result.reason) {
        case "replayed":
          // OAuth 2.1 §4.1.3: the grant is now revoked; record it as a security event.
          audit(c, { event: "security.code_replayed", outcome: "failure", client_id: client.client_id, detail: `grant ${handle.object_id}` });
          throw new InvalidGrant("the authorization code is invalid, expired or already used", result.reason);
        case "unknown":
        case "expired":
        case "revoked":
          throw new InvalidGrant("the authorization code is invalid, expired or already used", result.reason);
        case "client_mismatch":
          throw new InvalidGrant("the authorization code was issued to another client");
        case "pkce_mismatch":
          throw new InvalidGrant("code_verifier does not match the code_challenge");
        case "redirect_uri_mismatch":
          throw new InvalidGrant("redirect_uri does not match the one in the authorization request");
        case "target_refused":
          throw new InvalidTarget(result.description);
        case "dpop_jkt_mismatch":
          throw new InvalidGrant(
            "the authorization code is bound to a DPoP key (dpop_jkt) this request did not prove",
            dpop ? "proof key differs" : "no DPoP proof",
          );
        default:
          unreachable(result);
      }
    }
    return issueOrUndo(
      c,
      { grant_id: handle.object_id, data: result.data, refresh_token: result.refresh_issued ? refresh?.token : undefined, id_token: true },
      () => stub.undoRedemption({ code_hash: handle.hash, redeemed_at: t }),
    );
  },
};
