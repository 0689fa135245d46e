import type { Context } from "hono";
import type { ConsumeResult } from "../../durable-objects/pushed-request";
import { type Client, DYNAMIC_CLIENT_ID, type PushedRegistration } from "../../schemas/client";
import { markUsed } from "../clients/last-used";
import { dynamicClient, pushedClient } from "../clients/pushed-registration";
import { matchRedirectUri } from "../clients/redirect-uri";
import { resolveClient } from "../clients/resolve";
import { now } from "../clock";
import { InvalidRequest, InvalidRequestUri, OAuthError, unreachable } from "../errors";
import { Params } from "../middleware/form-body";
import { parseHandle } from "../tokens/handles";
import type { AppEnv } from "../types";
import { UntrustedRedirect, validateAuthorizationParameters } from "./request";
import { browserBinding, INTERACTION_TTL, type Interaction, type PushedReference } from "./session";

/** RFC 9126 §2.2: the `request_uri` is a URN; the part after this prefix is a `lkp_` handle. */
export const REQUEST_URI_PREFIX = "urn:ietf:params:oauth:request_uri:";

/** Parameters that only authenticate the client at the PAR endpoint and are not part of the request. */
export const CLIENT_AUTHENTICATION_PARAMETERS = ["client_secret", "client_assertion", "client_assertion_type"] as const;

function stub(env: Env, objectId: string) {
  try {
    return env.PUSHED_REQUESTS.get(env.PUSHED_REQUESTS.idFromString(objectId));
  } catch {
    return null;
  }
}

/**
 * The authorization endpoint given `client_id` and `request_uri` (RFC 9126 §4): opens the pushed
 * request in this browser and validates its parameters again, as for any authorization request, so a
 * client or resource changed since the push is noticed. Parameters sent beside `request_uri` are
 * ignored: only the pushed ones count.
 *
 * An unknown, expired, used or foreign `request_uri` is an error page, never a redirect: the redirect
 * URI is known only from a pushed request that this one is not (or no longer), and the unregistered
 * client of pushed client registration has no registered redirect URI at all.
 */
export async function openPushedRequest(c: Context<AppEnv>, clientId: string, requestUri: string): Promise<{ client: Client; interaction: Interaction }> {
  const refuse = (description: string, detail: string) => new UntrustedRedirect(new InvalidRequestUri(description, detail));
  const handle = await parseHandle("request", requestUri.slice(REQUEST_URI_PREFIX.length));
  const pushedRequest = handle && stub(c.env, handle.object_id);
  if (!handle || !pushedRequest) throw refuse("the request_uri is unknown, expired or already used; start again from the application", "malformed");
  const opened = await pushedRequest.open({
    hash: handle.hash,
    client_id: clientId,
    browser: await browserBinding(c),
    interaction_ttl: INTERACTION_TTL,
    now: now(),
  });
  if (!opened.ok) {
    switch (opened.reason) {
      case "client_mismatch":
        throw refuse("the request_uri was not issued to this client", opened.reason);
      case "unknown":
      case "expired":
      case "used":
      case "other_browser":
        throw refuse("the request_uri is unknown, expired or already used; start again from the application", opened.reason);
      default:
        unreachable(opened.reason);
    }
  }
  const params = new Params(new URLSearchParams(opened.params));
  const named = await resolveClient(c.env, clientId);
  if (!named) throw new UntrustedRedirect(new InvalidRequest("the client is not known to this server"));
  markUsed(c, named);
  let client = named;
  let registration: PushedRegistration | undefined;
  if (clientId === DYNAMIC_CLIENT_ID) {
    try {
      ({ client, registration } = pushedClient(params));
    } catch (error) {
      throw error instanceof OAuthError ? new UntrustedRedirect(error) : error;
    }
  }
  // RFC 9126 §4: "The authorization server MUST validate authorization requests arising from a pushed
  // request as it would any other authorization request."
  const request = await validateAuthorizationParameters(c.env, client, params);
  const pushed: PushedReference = { object_id: handle.object_id, hash: handle.hash, ...(registration ? { registration } : {}) };
  return { client, interaction: { ...request, iat: now(), pushed } };
}

/**
 * Marks the pushed request used, in the browser that opened it, as its authorization code is issued
 * (or the user refuses it): one push, one answer.
 */
export async function consumePushedRequest(c: Context<AppEnv>, pushed: PushedReference): Promise<ConsumeResult> {
  const pushedRequest = stub(c.env, pushed.object_id);
  if (!pushedRequest) return { ok: false, reason: "unknown" };
  return pushedRequest.consume({ hash: pushed.hash, browser: await browserBinding(c), now: now() });
}

/** The error page for a pushed request that could not be consumed (another tab finished it, or it expired). */
export function pushedRequestUsedUp(reason: Exclude<ConsumeResult, { ok: true }>["reason"]): InvalidRequestUri {
  return new InvalidRequestUri("this authorization request was already answered or has expired; start again from the application", reason);
}

/**
 * The client an interaction is for, as it is now: an unregistered client is rebuilt from what it pushed. A
 * client changed since the request (an RFC 7592 update, a new metadata document) that no longer has the
 * request's redirect URI, or the code grant, is refused: the answer must not go where the client no longer is.
 */
export async function interactionClient(env: Env, interaction: Interaction): Promise<Client | null> {
  const client = await resolveClient(env, interaction.client_id);
  if (client?.client_id === DYNAMIC_CLIENT_ID) return dynamicClient(interaction.pushed?.registration, interaction.redirect_uri);
  if (client && (!matchRedirectUri(client.redirect_uris, interaction.redirect_uri) || !client.grant_types.includes("authorization_code"))) {
    throw new InvalidRequest("the client changed since this request began and no longer accepts it; start again from the application");
  }
  return client;
}
