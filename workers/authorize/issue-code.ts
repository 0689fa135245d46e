import type { Context } from "hono";
import { type Client, DYNAMIC_CLIENT_ID } from "../../schemas/client";
import { registry } from "../clients/cache";
import { isLoopbackIpRedirect } from "../clients/redirect-uri";
import { now } from "../clock";
import { AccessDenied, InvalidRequest, ServerError } from "../errors";
import { audit } from "../observe/audit";
import { claimOnce, wasClaimed } from "../replay";
import { mintHandle } from "../tokens/handles";
import type { AppEnv } from "../types";
import { consumePushedRequest, pushedRequestUsedUp } from "./pushed";
import { errorPage, redirectToClient } from "./respond";
import { clearSession, INTERACTION_TTL, type Interaction, type Session } from "./session";

/** Where a sign-in made for an interaction is marked used once it has yielded a code (`replay.ts`). */
const SIGNED_IN_USED = "signed-in-interaction";

/** Whether the sign-in made for this interaction has yielded its code: its continue URL is then spent. */
export async function signInUsed(env: Env, interaction: Interaction): Promise<boolean> {
  return interaction.signed_in !== undefined && (await wasClaimed(env, SIGNED_IN_USED, interaction.signed_in.id, now()));
}

/**
 * The user said yes (now or before): create the grant with its code and send the code to the client.
 * A pushed request is consumed first, in one transition of its object, so it yields one code at most.
 * The grant is indexed (and consent remembered) before it exists, so a failure in between leaves at
 * worst an index entry pointing at nothing — never a grant that deleting its user would miss.
 * Consent to an unregistered client is never remembered: its `client_id` is shared by every such client.
 */
export async function issueCode(c: Context<AppEnv>, client: Client, interaction: Interaction, session: Session, consented: boolean): Promise<Response> {
  const cfg = c.get("cfg");
  // A sign-in made for the interaction lets it past prompt=login, for one code: a /authorize/continue URL
  // replayed from the browser's history gets an error, not a code. A consent form posted twice (a double
  // click) still gets its code, but marks the sign-in used all the same.
  if (interaction.signed_in) {
    const first = await claimOnce(c.env, SIGNED_IN_USED, interaction.signed_in.id, interaction.iat + INTERACTION_TTL, now());
    if (!first && !consented) return errorPage(c, new InvalidRequest("this sign-in was already used; start again from the application"));
  }
  if (interaction.pushed) {
    const consumed = await consumePushedRequest(c, interaction.pushed);
    if (!consumed.ok) return errorPage(c, pushedRequestUsedUp(consumed.reason));
  }
  const t = now();
  const id = c.env.GRANTS.newUniqueId();
  const grant_id = id.toString();
  const code = await mintHandle("code", grant_id);
  const recorded = await registry(c.env).recordGrant({
    grant_id,
    sub: session.sub,
    client_id: client.client_id,
    ...(consented && client.client_id !== DYNAMIC_CLIENT_ID
      ? { consent: { holder: consentHolder(client, interaction.redirect_uri), audiences: audiences(interaction, cfg.ISSUER), scopes: interaction.scope } }
      : {}),
  });
  if (!recorded.ok) {
    // The account or the client was deleted after it was checked.
    if (recorded.reason === "no_client") return errorPage(c, new InvalidRequest("the client is not known to this server"));
    clearSession(c);
    return errorPage(c, new AccessDenied("the signed-in account no longer exists"));
  }
  const wantsOidc = interaction.scope.includes("openid");
  const created = await c.env.GRANTS.get(id).create({
    data: {
      client_id: client.client_id,
      sub: session.sub,
      scope: interaction.scope,
      resources: interaction.resources,
      auth_time: session.auth_time,
      amr: session.amr,
      ...(interaction.nonce !== undefined ? { nonce: interaction.nonce } : {}),
      // OIDC Core §11: with openid, refresh tokens need offline_access; other clients get them by registration.
      refresh: client.grant_types.includes("refresh_token") && (!wantsOidc || interaction.scope.includes("offline_access")),
    },
    code: {
      hash: code.hash,
      expires_at: t + cfg.AUTHORIZATION_CODE_TTL,
      code_challenge: interaction.code_challenge,
      redirect_uri: interaction.redirect_uri,
      ...(interaction.dpop_jkt !== undefined ? { dpop_jkt: interaction.dpop_jkt } : {}),
    },
    lifetimes: { expires_at: t + cfg.REFRESH_TOKEN_TTL, idle_ttl: cfg.REFRESH_TOKEN_IDLE_TTL, reuse_window: cfg.REFRESH_TOKEN_REUSE_WINDOW },
    now: t,
  });
  // The user or client was deleted between indexing the grant and creating it: its revocation came first.
  if (!created.ok && created.reason === "revoked") return errorPage(c, new AccessDenied("this authorization was revoked while it was being made"));
  if (!created.ok) throw new ServerError("could not create the grant", "unique grant id already existed");
  audit(c, {
    event: "authorization.granted",
    outcome: "success",
    client_id: client.client_id,
    subject: session.sub,
    detail: `grant ${grant_id} scope=${interaction.scope.join(" ")}`,
  });
  return redirectToClient(c, interaction.redirect_uri, { code: code.token, state: interaction.state });
}

/** Consent is remembered per resource; a request without one is for the issuer itself (OIDC). */
export function audiences(interaction: Pick<Interaction, "resources">, issuer: string): string[] {
  return interaction.resources.length ? interaction.resources : [issuer];
}

/**
 * Whose consent is remembered: the client's, and for a client that registered itself the client's at the
 * host its answer goes to, since that host is what the consent page showed the user (another redirect URI
 * of the same registration asks again).
 */
export function consentHolder(client: Client, redirectUri: string): string {
  if (client.registered_by === "admin") return client.client_id;
  // A native app's loopback port changes from run to run (RFC 8252 §7.3); the address is what the user saw.
  return `${client.client_id} ${isLoopbackIpRedirect(redirectUri) ? new URL(redirectUri).hostname : redirectTarget(redirectUri)}`;
}

/** The host (or, for a private-use scheme, the scheme) a redirect URI sends the browser to. */
export function redirectTarget(uri: string): string {
  const u = new URL(uri);
  return u.protocol === "http:" || u.protocol === "https:" ? u.host : u.protocol.slice(0, -1);
}
