import { now } from "../clock";
import { InvalidGrant, InvalidRequest, InvalidScope, InvalidTarget, unreachable } from "../errors";
import { audit } from "../observe/audit";
import { enforceGrantIndependentPolicy } from "../policy/attestation";
import { parseScope } from "../policy/scope";
import { mintHandle, openSuccessor, parseHandle, sealSuccessor } from "../tokens/handles";
import { binding, grantStub, issueOrUndo, namedResource } from "./issue";
import type { GrantHandler } from "./types";

/**
 * OAuth 2.1 §4.3 refresh: exactly one GrantObject call. The successor token is minted here and
 * sealed under the presented token, so that a retry within the reuse window gets the same successor
 * back (see GrantObject.refresh) and a lost response never logs the user out. A family bound to a DPoP
 * key (a public client's, RFC 9449 §5) refreshes only with a proof by that key.
 */
export const refreshToken: GrantHandler = {
  grant_type: "refresh_token",
  async handle(c) {
    const params = c.get("params");
    const client = c.get("client");
    const dpop = c.get("dpop");
    const presented = params.get("refresh_token");
    if (!presented) throw new InvalidRequest("refresh_token is required");
    const handle = await parseHandle("refresh", presented);
    const stub = handle && grantStub(c.env, handle.object_id);
    if (!handle || !stub) throw new InvalidGrant("the refresh token is invalid, expired or revoked");
    // Refusals that do not depend on the grant come before anything is spent: two token bindings, and a
    // client that may have no token (for the resource it names). The rest undo the rotation (`issueOrUndo`).
    binding(c);
    enforceGrantIndependentPolicy(c, await namedResource(c));
    const requested = parseScope(params.get("scope"));
    const successor = await mintHandle("refresh", handle.object_id);
    const result = await stub.refresh({
      token_hash: handle.hash,
      client_id: client.client_id,
      successor_hash: successor.hash,
      sealed_successor: await sealSuccessor(presented, successor.token),
      ...(requested ? { scope: requested } : {}),
      dpop_jkt: dpop?.jkt,
      bind_refresh_to_key: c.get("auth_method") === "none",
      // draft-ietf-oauth-attestation-based-client-auth-11 §11: a family issued under attestation refreshes
      // only with an attestation for the same Client Instance Key.
      instance_jkt: c.get("attestation")?.facts.jkt,
      resource: params.all("resource"),
      now: now(),
    });
    if (!result.ok) {
      switch (result.reason) {
        case "reused":
          audit(c, { event: "security.refresh_reused", outcome: "failure", client_id: client.client_id, detail: `grant ${handle.object_id}` });
          throw new InvalidGrant("the refresh token is invalid, expired or revoked", result.reason);
        case "unknown":
        case "expired":
        case "revoked":
          throw new InvalidGrant("the refresh token is invalid, expired or revoked", result.reason);
        case "client_mismatch":
          throw new InvalidGrant("the refresh token was issued to another client");
        case "dpop_key_mismatch":
          throw new InvalidGrant("the refresh token is bound to a DPoP key this request did not prove", dpop ? "proof key differs" : "no DPoP proof");
        case "instance_key_mismatch":
          throw new InvalidGrant("the refresh token is bound to the client instance key of the attestation it was issued under");
        case "target_refused":
          throw new InvalidTarget(result.description);
        case "scope_exceeded":
          throw new InvalidScope(`scope ${result.exceeding.join(" ")} exceeds what was granted`);
        default:
          unreachable(result);
      }
    }
    const refresh_token = result.retry ? await openSuccessor(presented, result.sealed_successor) : successor.token;
    if (!refresh_token) throw new InvalidGrant("the refresh token is invalid, expired or revoked", "sealed successor did not open");
    // OAuth 2.1 §4.3.1: a refresh may narrow the scope (the grant checked it never widens); the grant keeps its own.
    // OIDC Core §12.2: an ID token from a refresh carries no nonce.
    const { nonce: _nonce, ...data } = requested ? { ...result.data, scope: requested } : result.data;
    const issue = { grant_id: handle.object_id, data, refresh_token, id_token: true };
    // A retry holds the successor of an earlier rotation; failing, it gives its hand-out back as the first request would.
    const successor_hash = result.retry ? result.successor_hash : successor.hash;
    return issueOrUndo(c, issue, () => stub.undoRotation({ token_hash: handle.hash, successor_hash }));
  },
};
