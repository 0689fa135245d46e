import type { Context } from "hono";
import type { JSX } from "hono/jsx/jsx-runtime";
import { type Client, DYNAMIC_CLIENT_ID } from "../../schemas/client";
import { findResource, registry } from "../clients/cache";
import { now } from "../clock";
import { ConsentRequired, LoginRequired, type OAuthError } from "../errors";
import type { AppEnv } from "../types";
import { ConsentPage, type ConsentView, LoginPage } from "../ui/pages";
import { audiences, consentHolder, issueCode, redirectTarget } from "./issue-code";
import { errorPage, page, redirectError } from "./respond";
import { activeSession, csrfToken, type Interaction, type Session, type SignedIn, sealInteraction } from "./session";

/**
 * Where an authorization request goes next, decided afresh each time the browser comes back:
 * sign in (no session, `prompt=login` not yet satisfied, or `max_age` exceeded), then consent (scopes
 * not yet allowed for this client and resource, or `prompt=consent`), then the code. With
 * `prompt=none` any needed page becomes `login_required` / `consent_required` (OIDC Core §3.1.2.6).
 */
export async function resume(c: Context<AppEnv>, client: Client, interaction: Interaction, sealed?: string): Promise<Response> {
  const token = sealed ?? (await sealInteraction(c, interaction, interaction.iat));
  const signedIn = await activeSession(c);
  if (!signedIn || needsLogin(signedIn.session, interaction)) {
    if (interaction.prompt.includes("none")) {
      const error = new LoginRequired("the user is not signed in");
      return errorForClient(c, client, signedIn !== null, interaction.redirect_uri, error, interaction.state);
    }
    return loginPage(c, client, interaction, token);
  }
  if (await needsConsent(c, client, signedIn.session, interaction)) {
    if (interaction.prompt.includes("none"))
      return redirectError(c, interaction.redirect_uri, new ConsentRequired("the user has not allowed this access"), interaction.state);
    return consentPage(c, client, signedIn, interaction, token);
  }
  return issueCode(c, client, interaction, signedIn.session, false);
}

/** How long a sign-in made for an interaction stands in for `max_age` however small: time to read the consent page. */
const SIGNED_IN_GRACE = 60;

/** Whether this interaction needs a sign-in first, given the browser's session. */
export function needsLogin(session: Session | null, interaction: Interaction): boolean {
  if (!session) return true;
  // OIDC Core §3.1.2.1 id_token_hint: the user it names must be the one signed in, however they signed in.
  if (interaction.id_token_hint_sub !== undefined && interaction.id_token_hint_sub !== session.sub) return true;
  const age = now() - session.auth_time;
  // A sign-in made for this interaction (POST /login) satisfies prompt=login, and max_age for at least
  // SIGNED_IN_GRACE seconds (max_age=0 would otherwise ask again at every step); a page left open longer
  // than max_age asks again, so no code carries an auth_time staler than the client asked for.
  const signed = interaction.signed_in;
  const forThis = signed?.sub === session.sub && signed.auth_time === session.auth_time;
  if (interaction.max_age !== undefined && age > Math.max(interaction.max_age, forThis ? SIGNED_IN_GRACE : 0)) return true;
  return interaction.prompt.includes("login") && !forThis;
}

/**
 * An error for the client: redirected to it (OAuth 2.1 §4.1.2.1), unless the client registered itself
 * and nobody is signed in. RFC 9700 §4.11.2: "The authorization server MUST always authenticate the user
 * first and, with the exception of the silent authentication use case, prompt the user for credentials
 * when needed, before redirecting the user." Anyone can register a phishing page as a redirect URI, so
 * such an error is shown here instead. `signedIn`, when not known, is looked up only for such a client.
 */
export async function errorForClient(
  c: Context<AppEnv>,
  client: Client,
  signedIn: boolean | undefined,
  redirectUri: string,
  error: OAuthError,
  state: string | undefined,
): Promise<Response> {
  if (client.registered_by !== "admin") {
    const userPresent = signedIn ?? (await activeSession(c)) !== null;
    if (!userPresent) return errorPage(c, error, { selfRegisteredClientAt: redirectTarget(redirectUri) });
  }
  return redirectError(c, redirectUri, error, state);
}

async function needsConsent(c: Context<AppEnv>, client: Client, session: Session, interaction: Interaction): Promise<boolean> {
  if (interaction.prompt.includes("consent")) return true;
  // Every unregistered client shares one client_id, so a yes to one of them is no yes to the next.
  if (interaction.client_id === DYNAMIC_CLIENT_ID) return true;
  const reg = registry(c.env);
  const holder = consentHolder(client, interaction.redirect_uri);
  for (const audience of audiences(interaction, c.get("cfg").ISSUER)) {
    const allowed = new Set(await reg.getConsent(session.sub, holder, audience));
    // An audience never consented to needs consent even for an empty scope.
    if (allowed.size === 0 || interaction.scope.some((s) => !allowed.has(s))) return true;
  }
  return false;
}

/** The sign-in page. Its form may end in a redirect to the client (consent already given), hence the redirect URI. */
export async function loginPage(
  c: Context<AppEnv>,
  client: Client,
  interaction: Interaction,
  token: string,
  error?: { message: string; email?: string; status?: 401 | 429 },
): Promise<Response> {
  const body = LoginPage({
    interaction: token,
    csrf: await csrfToken(c),
    clientName: displayName(client),
    unregistered: client.client_id === DYNAMIC_CLIENT_ID,
    // A URL client's name already comes with its host (`displayName`); one registered at /register has only its claim.
    ...(client.registered_by === "dynamic_registration" ? { selfRegisteredAt: redirectTarget(interaction.redirect_uri) } : {}),
    error: error?.message,
    email: error?.email,
  });
  return page(c, body as JSX.Element, error ? (error.status ?? 401) : 200, interaction.redirect_uri);
}

export async function consentPage(c: Context<AppEnv>, client: Client, signedIn: SignedIn, interaction: Interaction, token: string): Promise<Response> {
  const resources = await Promise.all(interaction.resources.map(async (uri) => ({ uri, name: (await findResource(c.env, uri))?.name ?? uri })));
  const unregistered = client.client_id === DYNAMIC_CLIENT_ID;
  const metadataDocumentHost = documentHost(client);
  const view: ConsentView = {
    clientName: unregistered ? displayName(client) : (client.client_name ?? metadataDocumentHost ?? client.client_id),
    // Only an administrator's registration vouches for a client_uri. What a client that registered itself
    // says about its origin is as unverified as its name: where the answer goes (its redirect URI) is the fact.
    clientOrigin: metadataDocumentHost ?? (client.client_uri && client.registered_by === "admin" ? new URL(client.client_uri).host : undefined),
    metadataDocumentHost,
    selfRegistered: client.registered_by !== "admin",
    redirectTo: redirectTarget(interaction.redirect_uri),
    unregistered: unregistered ? { redirectTo: redirectTarget(interaction.redirect_uri) } : undefined,
    userEmail: signedIn.user.email,
    userId: signedIn.user.id,
    scopes: interaction.scope,
    resources,
  };
  return page(c, ConsentPage({ interaction: token, csrf: await csrfToken(c), view }) as JSX.Element, 200, interaction.redirect_uri);
}

/** The host of a URL client_id (CIMD "OAuth Phishing Attacks": the AS "SHOULD display the hostname of the client_id"). */
function documentHost(client: Client): string | undefined {
  return client.registered_by === "client_id_metadata_document" ? new URL(client.client_id).host : undefined;
}

/** How the sign-in page names the client; a URL client's self-chosen name always comes with its host. */
function displayName(client: Client): string {
  if (client.client_id === DYNAMIC_CLIENT_ID) return client.client_name ?? "an unnamed application";
  const host = documentHost(client);
  if (host) return client.client_name ? `${client.client_name} (${host})` : host;
  return client.client_name ?? client.client_id;
}
